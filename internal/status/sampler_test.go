package status

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// node is a registry holding the node's metrics under their real names (those of
// internal/realtime, internal/kafka and the process collector that serve registers).
type node struct {
	reg         *prometheus.Registry
	connections *prometheus.GaugeVec
	records     *prometheus.CounterVec
	deliveries  prometheus.Counter
	deadLetters *prometheus.CounterVec
	replays     *prometheus.CounterVec
	resyncs     *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	lag         *prometheus.GaugeVec
}

func newNode() *node {
	n := &node{
		reg:         prometheus.NewRegistry(),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "realtime_connections"}, []string{"transport"}),
		records:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kafka_consumer_records_total"}, []string{"topic"}),
		deliveries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "realtime_deliveries_total"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kafka_consumer_dead_letters_total"}, []string{"topic", "code"}),
		replays:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realtime_replays_total"}, []string{"source"}),
		resyncs:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realtime_resyncs_total"}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realtime_disconnects_total"}, []string{"reason"}),
		lag:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kafka_consumer_lag"}, []string{"topic", "partition"}),
	}
	n.reg.MustRegister(n.connections, n.records, n.deliveries, n.deadLetters, n.replays, n.resyncs, n.disconnects, n.lag)
	return n
}

var t0 = time.UnixMilli(1_700_000_000_000)

func TestSampleRatesFromCounterDeltas(t *testing.T) {
	n := newNode()
	s := New(Config{Gatherer: n.reg, Node: "n1"})
	n.records.WithLabelValues("concept").Add(100) // before the first sample: not a rate
	n.connections.WithLabelValues("websocket").Set(2)
	s.Sample(t0)

	n.records.WithLabelValues("concept").Add(30)
	n.records.WithLabelValues("session").Add(10)
	n.deliveries.Add(80)
	n.deadLetters.WithLabelValues("concept", "invalid-json").Add(4)
	n.replays.WithLabelValues("memory").Add(2)
	n.resyncs.WithLabelValues("expired").Inc()
	n.lag.WithLabelValues("concept", "0").Set(7)
	n.lag.WithLabelValues("concept", "1").Set(0)
	n.connections.WithLabelValues("sse").Set(1)
	s.Sample(t0.Add(2 * time.Second))

	r := s.Report(time.Time{})
	if len(r.Samples) != 2 {
		t.Fatalf("%d samples, want 2", len(r.Samples))
	}
	first, got := r.Samples[0], r.Samples[1]
	if first.NotificationsIn != 0 || first.Connections["websocket"] != 2 {
		t.Errorf("first sample %+v, want rates 0 and 2 WebSocket connections", first)
	}
	want := Sample{Time: t0.Add(2 * time.Second).UnixMilli(), NotificationsIn: 20, DeliveriesOut: 40, DeadLetters: 2, Resumes: 1, Resyncs: 0.5}
	if got.Time != want.Time || got.NotificationsIn != want.NotificationsIn || got.DeliveriesOut != want.DeliveriesOut ||
		got.DeadLetters != want.DeadLetters || got.Resumes != want.Resumes || got.Resyncs != want.Resyncs {
		t.Errorf("second sample %+v, want the rates of %+v (per second over 2 s)", got, want)
	}
	if got.Connections["websocket"] != 2 || got.Connections["sse"] != 1 {
		t.Errorf("connections %v, want websocket 2, sse 1", got.Connections)
	}
	if got.Lag["concept/0"] != 7 || got.Lag["concept/1"] != 0 || len(got.Lag) != 2 {
		t.Errorf("lag %v, want concept/0 7, concept/1 0", got.Lag)
	}
	tot := r.Totals
	if tot.Notifications["concept"] != 130 || tot.Notifications["session"] != 10 || tot.Deliveries != 80 ||
		tot.DeadLetters["invalid-json"] != 4 || tot.Resumes["memory"] != 2 || tot.Resyncs["expired"] != 1 {
		t.Errorf("totals %+v", tot)
	}
	if r.Node != "n1" || r.Interval != 1000 {
		t.Errorf("node %q interval %d, want n1 and 1000", r.Node, r.Interval)
	}
}

// A counter that goes back (a consumer's metrics re-registered) is a reset, not a negative rate.
func TestSampleCounterResetIsNoNegativeRate(t *testing.T) {
	n := newNode()
	s := New(Config{Gatherer: n.reg})
	n.deliveries.Add(50)
	s.Sample(t0)
	n.reg.Unregister(n.deliveries)
	n.deliveries = prometheus.NewCounter(prometheus.CounterOpts{Name: "realtime_deliveries_total"})
	n.reg.MustRegister(n.deliveries)
	n.deliveries.Add(3)
	s.Sample(t0.Add(time.Second))
	if got := s.Report(time.Time{}).Samples[1].DeliveriesOut; got != 0 {
		t.Errorf("rate after a reset %v, want 0", got)
	}
}

func TestRingKeepsTheLastSize(t *testing.T) {
	n := newNode()
	s := New(Config{Gatherer: n.reg})
	for i := range DefaultSize + 25 {
		s.Sample(t0.Add(time.Duration(i) * time.Second))
	}
	got := s.Report(time.Time{}).Samples
	if len(got) != DefaultSize {
		t.Fatalf("%d samples kept, want %d", len(got), DefaultSize)
	}
	for i, smp := range got { // oldest first, the first 25 dropped
		if want := t0.Add(time.Duration(25+i) * time.Second).UnixMilli(); smp.Time != want {
			t.Fatalf("sample %d at %d, want %d", i, smp.Time, want)
		}
	}
}

func TestReportSince(t *testing.T) {
	n := newNode()
	s := New(Config{Gatherer: n.reg, Size: 5})
	for i := range 8 {
		s.Sample(t0.Add(time.Duration(i) * time.Second))
	}
	for _, tc := range []struct {
		since time.Time
		want  []int64 // seconds after t0
	}{
		{time.Time{}, []int64{3, 4, 5, 6, 7}},
		{t0.Add(5 * time.Second), []int64{6, 7}},
		{t0.Add(5500 * time.Millisecond), []int64{6, 7}},
		{t0.Add(7 * time.Second), nil},
		{t0, []int64{3, 4, 5, 6, 7}},
	} {
		var got []int64
		for _, smp := range s.Report(tc.since).Samples {
			got = append(got, (smp.Time-t0.UnixMilli())/1000)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("since %v: samples at %v, want %v", tc.since.Sub(t0), got, tc.want)
		}
	}
}

// The report's JSON has the members the status page reads, with empty lists as [] not null.
func TestReportJSON(t *testing.T) {
	s := New(Config{Gatherer: newNode().reg, Node: "n1", Errors: NewErrorLog(0)})
	b, _ := json.Marshal(s.Report(time.Time{}))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node", "started", "interval", "totals", "samples", "errors"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report %s has no %q", b, k)
		}
	}
	if _, ok := m["samples"].([]any); !ok {
		t.Errorf("samples %v, want []", m["samples"])
	}
	if _, ok := m["errors"].([]any); !ok {
		t.Errorf("errors %v, want []", m["errors"])
	}
}

// BenchmarkSample is one sample of a registry shaped like a running node's: the Go and process
// collectors, the hub's, the consumer's and a dozen partitions' lag, and kprom-sized client
// histograms. At one sample a second, ns/op divided by 1e9 is the fraction of a core it costs.
func BenchmarkSample(b *testing.B) {
	n := newNode()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, tr := range []string{"websocket", "sse", "socketio"} {
		n.connections.WithLabelValues(tr).Set(100)
	}
	for p := range 12 {
		n.lag.WithLabelValues("concept-notifications", string(rune('0'+p%10))+string(rune('0'+p/10))).Set(float64(p))
	}
	n.records.WithLabelValues("concept-notifications").Add(1e6)
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kafka_client_request_duration_seconds", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)},
		[]string{"role", "node_id", "request"})
	n.reg.MustRegister(hist)
	for _, role := range []string{"producer", "consumer"} {
		for node := range 3 {
			for _, req := range []string{"Produce", "Fetch", "Metadata", "OffsetCommit", "Heartbeat"} {
				hist.WithLabelValues(role, string(rune('0'+node)), req).Observe(0.002)
			}
		}
	}
	s := New(Config{Gatherer: n.reg})
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Sample(now.Add(time.Duration(i) * time.Second))
	}
}
