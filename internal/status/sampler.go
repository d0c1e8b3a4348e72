// Package status keeps the recent figures of this node for the status page (GET /status, whose
// data comes from GET /v1/status): once a second a Sampler reads the node's own Prometheus
// registry in-process (no scraping of the text exposition) and keeps the last ten minutes of
// samples in a ring, rates computed from counter deltas; an ErrorLog keeps the last warnings and
// errors the node logged.
package status

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Defaults of Config's zero fields.
const (
	DefaultInterval = time.Second
	DefaultSize     = 600 // ten minutes at one sample a second
)

// Config configures a Sampler. Gatherer is required.
type Config struct {
	// Gatherer is the node's registry, read once per Interval.
	Gatherer prometheus.Gatherer
	// Node names this node in reports (KAFKA_NODE_ID).
	Node string
	// Interval between samples; zero: DefaultInterval (1s).
	Interval time.Duration
	// Size is how many samples the ring keeps; zero: DefaultSize (600).
	Size int
	// Errors, if set, supplies the report's last warnings and errors.
	Errors *ErrorLog
}

// Sample is one second of the node: gauges as read, rates per second over the time since the
// previous sample. Lag keys are "<topic>/<partition>".
type Sample struct {
	Time            int64              `json:"t"`               // Unix milliseconds
	Connections     map[string]float64 `json:"connections"`     // realtime_connections by transport
	NotificationsIn float64            `json:"notificationsIn"` // records handed off per second (kafka_consumer_records_total)
	DeliveriesOut   float64            `json:"deliveriesOut"`   // frames queued to connections per second (realtime_deliveries_total)
	DeadLetters     float64            `json:"deadLetters"`     // records sent to the DLQ per second
	Resumes         float64            `json:"resumes"`         // resumes that replayed missed events per second
	Resyncs         float64            `json:"resyncs"`         // resumes not honoured per second
	Lag             map[string]float64 `json:"lag"`             // kafka_consumer_lag by topic/partition
	CPU             float64            `json:"cpu"`             // cores used (process_cpu_seconds_total rate)
	ResidentBytes   float64            `json:"residentBytes"`   // process_resident_memory_bytes
	Goroutines      float64            `json:"goroutines"`      // go_goroutines
}

// Totals are the node's counters since it started, as of the last sample, by label.
type Totals struct {
	Connections   map[string]float64 `json:"connections"`   // by transport (a gauge: open now)
	Notifications map[string]float64 `json:"notifications"` // records handed off, by topic
	Deliveries    float64            `json:"deliveries"`
	DeadLetters   map[string]float64 `json:"deadLetters"` // by error code
	Resumes       map[string]float64 `json:"resumes"`     // by source (memory, kafka)
	Resyncs       map[string]float64 `json:"resyncs"`     // by reason
	Disconnects   map[string]float64 `json:"disconnects"` // by reason
}

// Report is what GET /v1/status answers.
type Report struct {
	Node     string      `json:"node"`
	Started  int64       `json:"started"`  // Unix milliseconds of the sampler's start
	Interval int64       `json:"interval"` // milliseconds between samples
	Totals   Totals      `json:"totals"`
	Samples  []Sample    `json:"samples"` // oldest first
	Errors   []LogRecord `json:"errors"`  // oldest first
}

// Sampler keeps the node's recent samples. Its methods are safe for concurrent use.
type Sampler struct {
	cfg     Config
	started time.Time

	mu     sync.Mutex
	ring   []Sample // len ≤ cfg.Size; ring[next] is the oldest once full
	next   int
	prev   counters
	prevAt time.Time
	totals Totals
}

// New returns a Sampler that samples nothing until Run or Sample is called.
func New(cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	return &Sampler{cfg: cfg, started: time.Now(), ring: make([]Sample, 0, cfg.Size)}
}

// Run samples at once and then every Interval until ctx is done. A failed gather (a collector
// error) still records what was gathered.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.Sample(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// counters are the cumulative figures rates are computed from.
type counters struct {
	in, out, deadLetters, resumes, resyncs, cpu float64
}

// Sample reads the registry once and appends a sample stamped now, dropping the oldest past
// Size. The first sample's rates are zero.
func (s *Sampler) Sample(now time.Time) {
	families, _ := s.cfg.Gatherer.Gather() // on error the families gathered are still returned
	smp := Sample{Time: now.UnixMilli(), Connections: map[string]float64{}, Lag: map[string]float64{}}
	tot := Totals{Connections: smp.Connections, Notifications: map[string]float64{}, DeadLetters: map[string]float64{},
		Resumes: map[string]float64{}, Resyncs: map[string]float64{}, Disconnects: map[string]float64{}}
	var c counters
	for _, f := range families {
		switch f.GetName() {
		case "realtime_connections":
			byLabel(f, "transport", smp.Connections)
		case "kafka_consumer_records_total":
			c.in = byLabel(f, "topic", tot.Notifications)
		case "realtime_deliveries_total":
			c.out = byLabel(f, "", nil)
			tot.Deliveries = c.out
		case "kafka_consumer_dead_letters_total":
			c.deadLetters = byLabel(f, "code", tot.DeadLetters)
		case "realtime_replays_total":
			c.resumes = byLabel(f, "source", tot.Resumes)
		case "realtime_resyncs_total":
			c.resyncs = byLabel(f, "reason", tot.Resyncs)
		case "realtime_disconnects_total":
			byLabel(f, "reason", tot.Disconnects)
		case "kafka_consumer_lag":
			for _, m := range f.GetMetric() {
				smp.Lag[label(m, "topic")+"/"+label(m, "partition")] = value(m)
			}
		case "process_cpu_seconds_total":
			c.cpu = byLabel(f, "", nil)
		case "process_resident_memory_bytes":
			smp.ResidentBytes = byLabel(f, "", nil)
		case "go_goroutines":
			smp.Goroutines = byLabel(f, "", nil)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.prevAt.IsZero() {
		if dt := now.Sub(s.prevAt).Seconds(); dt > 0 {
			rate := func(cur, prev float64) float64 { return max(cur-prev, 0) / dt } // a reset counts as 0
			smp.NotificationsIn = rate(c.in, s.prev.in)
			smp.DeliveriesOut = rate(c.out, s.prev.out)
			smp.DeadLetters = rate(c.deadLetters, s.prev.deadLetters)
			smp.Resumes = rate(c.resumes, s.prev.resumes)
			smp.Resyncs = rate(c.resyncs, s.prev.resyncs)
			smp.CPU = rate(c.cpu, s.prev.cpu)
		}
	}
	s.prev, s.prevAt, s.totals = c, now, tot
	if len(s.ring) < s.cfg.Size {
		s.ring = append(s.ring, smp)
	} else {
		s.ring[s.next] = smp
		s.next = (s.next + 1) % s.cfg.Size
	}
}

// Report returns the totals, the samples taken after since (all of them when since is zero) and
// the error log.
func (s *Sampler) Report(since time.Time) Report {
	r := Report{Node: s.cfg.Node, Started: s.started.UnixMilli(), Interval: s.cfg.Interval.Milliseconds(), Samples: []Sample{}, Errors: []LogRecord{}}
	if s.cfg.Errors != nil {
		r.Errors = s.cfg.Errors.Records()
	}
	after := int64(-1 << 63)
	if !since.IsZero() {
		after = since.UnixMilli()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Totals = s.totals
	for i := range s.ring {
		if smp := s.ring[(s.next+i)%len(s.ring)]; smp.Time > after {
			r.Samples = append(r.Samples, smp)
		}
	}
	return r
}

// byLabel sums the family's values and, when into is not nil, adds each to into[its value of
// the label].
func byLabel(f *dto.MetricFamily, name string, into map[string]float64) float64 {
	var sum float64
	for _, m := range f.GetMetric() {
		v := value(m)
		sum += v
		if into != nil {
			into[label(m, name)] += v
		}
	}
	return sum
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
