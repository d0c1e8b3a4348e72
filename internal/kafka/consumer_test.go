package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// recorder is a ConsumerConfig that remembers every call and checks that Assigned came before
// any hand-off of a partition, with a starting offset at or below it.
type recorder struct {
	mu         sync.Mutex
	assigned   map[string]map[int32]int64
	handed     []*kgo.Record
	revoked    map[string][]int32
	violations []string
	fail       func(*kgo.Record) error // the Handler's answer; nil: always nil
}

func newRecorder(fail func(*kgo.Record) error) *recorder {
	return &recorder{assigned: map[string]map[int32]int64{}, revoked: map[string][]int32{}, fail: fail}
}

func (r *recorder) config() ConsumerConfig {
	return ConsumerConfig{
		Handler: func(_ context.Context, rec *kgo.Record) error {
			r.mu.Lock()
			start, ok := r.assigned[rec.Topic][rec.Partition]
			if !ok || rec.Offset < start {
				r.violations = append(r.violations, fmt.Sprintf("%s/%d@%d handed off before Assigned (start %d, assigned %v)",
					rec.Topic, rec.Partition, rec.Offset, start, ok))
			}
			r.handed = append(r.handed, rec)
			r.mu.Unlock()
			if r.fail != nil {
				return r.fail(rec)
			}
			return nil
		},
		Assigned: func(start map[string]map[int32]int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for t, ps := range start {
				for p, o := range ps {
					set(r.assigned, t, p, o)
				}
			}
		},
		Revoked: func(parts map[string][]int32) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for t, ps := range parts {
				r.revoked[t] = append(r.revoked[t], ps...)
				for _, p := range ps {
					delete(r.assigned[t], p)
				}
			}
		},
		HealthGrace: 200 * time.Millisecond,
	}
}

func (r *recorder) nAssigned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ps := range r.assigned {
		n += len(ps)
	}
	return n
}

func (r *recorder) starts() map[string]map[int32]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[int32]int64{}
	for t, ps := range r.assigned {
		out[t] = maps.Clone(ps)
	}
	return out
}

func (r *recorder) records() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.handed)
}

func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.violations {
		t.Error(v)
	}
}

// runConsumer starts a Consumer; the returned stop cancels Run and waits for it (also at the
// end of the test).
func runConsumer(t testing.TB, cfg config.Kafka, addr string, cc ConsumerConfig, reg prometheus.Registerer) (*Consumer, func()) {
	t.Helper()
	return runConsumerLog(t, cfg, addr, cc, reg, testLogger(t))
}

// runConsumerLog is runConsumer logging to log.
func runConsumerLog(t testing.TB, cfg config.Kafka, addr string, cc ConsumerConfig, reg prometheus.Registerer, log *slog.Logger) (*Consumer, func()) {
	t.Helper()
	c, err := NewConsumer(cfg, []string{addr}, cc, reg, log)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// partitionsOf lists every partition of the consumed test topics.
func allPartitions(cfg config.Kafka) map[string][]int32 {
	out := map[string][]int32{}
	for _, t := range cfg.TopicNames() {
		for p := range cfg.EmbeddedPartitions {
			out[t] = append(out[t], p)
		}
	}
	return out
}

// ends returns the high watermarks of the consumed topics.
func ends(t *testing.T, adm *kadm.Client, cfg config.Kafka) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	for _, topic := range cfg.TopicNames() {
		out[topic] = endOffsets(t, adm, topic)
	}
	return out
}

// committed returns the group's committed offsets on the consumed topics.
func committed(t testing.TB, adm *kadm.Client, group string) map[string]map[int32]int64 {
	t.Helper()
	os, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil {
			set(out, o.Topic, o.Partition, o.At)
		}
	})
	return out
}

func equalOffsets(a, b map[string]map[int32]int64) bool {
	return maps.EqualFunc(a, b, func(x, y map[int32]int64) bool { return maps.Equal(x, y) })
}

// checkOrder fails if records of one partition were handed off out of offset order or twice.
func checkOrder(t *testing.T, recs []*kgo.Record) {
	t.Helper()
	last := map[string]int64{}
	for _, r := range recs {
		k := r.Topic + "/" + strconv.Itoa(int(r.Partition))
		if prev, ok := last[k]; ok && r.Offset <= prev {
			t.Errorf("%s: offset %d handed off after %d", k, r.Offset, prev)
		}
		last[k] = r.Offset
	}
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestConsumerFirstStartAndResume(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	sessions, concepts := notification.TopicSessions, notification.TopicConcepts

	// History from before the node's first start: never handed off.
	produceAt(t, prod, sessions, 0, "pre-1")
	produceAt(t, prod, sessions, 1, "pre-2")
	produceAt(t, prod, concepts, 0, "pre-3")
	wantStarts := ends(t, adm, cfg)

	rec1 := newRecorder(nil)
	_, stop1 := runConsumer(t, cfg, b.Addr(), rec1.config(), nil)
	eventually(t, "first assignment", func() bool { return rec1.nAssigned() == 6 })
	if got := rec1.starts(); !equalOffsets(got, wantStarts) {
		t.Fatalf("first start: Assigned got %v, want the end offsets %v", got, wantStarts)
	}

	var live []string
	for i, tp := range []struct {
		topic string
		p     int32
	}{{sessions, 0}, {sessions, 0}, {concepts, 1}, {sessions, 0}, {concepts, 1}} {
		v := fmt.Sprintf("live-%d", i)
		produceAt(t, prod, tp.topic, tp.p, v)
		live = append(live, v)
	}
	eventually(t, "live records", func() bool { return len(rec1.records()) >= len(live) })
	stop1()
	got := rec1.records()
	if !slices.Equal(values(got), sorted(live)) {
		t.Fatalf("first run handed off %v, want exactly %v", values(got), live)
	}
	checkOrder(t, got)
	rec1.check(t)
	if want := allPartitions(cfg); len(rec1.revoked) != len(want) ||
		!maps.EqualFunc(rec1.revoked, want, func(a, b []int32) bool { slices.Sort(a); return slices.Equal(a, b) }) {
		t.Errorf("Revoked at shutdown: got %v, want %v", rec1.revoked, want)
	}
	stopEnds := ends(t, adm, cfg)
	if got := committed(t, adm, cfg.ConsumerGroup()); !equalOffsets(got, stopEnds) {
		t.Fatalf("committed after stop: got %v, want %v", got, stopEnds)
	}

	// While the node is down: records on partitions with and without earlier records.
	var missed []string
	for i, tp := range []struct {
		topic string
		p     int32
	}{{sessions, 0}, {sessions, 2}, {sessions, 2}, {concepts, 2}, {concepts, 1}, {sessions, 0}} {
		v := fmt.Sprintf("missed-%d", i)
		produceAt(t, prod, tp.topic, tp.p, v)
		missed = append(missed, v)
	}

	rec2 := newRecorder(nil)
	_, stop2 := runConsumer(t, cfg, b.Addr(), rec2.config(), nil)
	eventually(t, "second assignment", func() bool { return rec2.nAssigned() == 6 })
	if got := rec2.starts(); !equalOffsets(got, stopEnds) {
		t.Fatalf("restart: Assigned got %v, want where the first run stopped %v", got, stopEnds)
	}
	// A sentinel after the missed records on every partition: once all are in, any record
	// handed off twice on a partition would have come before its sentinel.
	want := slices.Clone(missed)
	for topic, ps := range allPartitions(cfg) {
		for _, p := range ps {
			v := fmt.Sprintf("sentinel-%s-%d", topic, p)
			produceAt(t, prod, topic, p, v)
			want = append(want, v)
		}
	}
	eventually(t, "missed records and sentinels", func() bool { return len(rec2.records()) >= len(want) })
	stop2()
	got = rec2.records()
	if !slices.Equal(values(got), sorted(want)) {
		t.Fatalf("restart handed off %v,\nwant exactly %v", values(got), sorted(want))
	}
	checkOrder(t, got)
	rec2.check(t)
	if got, want := committed(t, adm, cfg.ConsumerGroup()), ends(t, adm, cfg); !equalOffsets(got, want) {
		t.Errorf("committed after the second stop: got %v, want %v", got, want)
	}
}

func TestConsumerDeadLetter(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	reg := prometheus.NewRegistry()

	dec := notification.NewDecoder(notification.NewValidator(), map[string]string{
		notification.TopicSessions: notification.EventSessionStartingSoon,
		notification.TopicConcepts: notification.EventConceptMastered,
	})
	rec := newRecorder(func(r *kgo.Record) error {
		if string(r.Value) == "plain-fail" {
			return errors.New("boom")
		}
		_, err := dec.Decode(r)
		return err
	})
	c, stop := runConsumer(t, cfg, b.Addr(), rec.config(), reg)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })

	good := func(id string) []byte {
		return fmt.Appendf(nil, `{"sessionId":%q,"userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, id)
	}
	binary := []byte{0, 1, 2, 0xff, 0xfe}
	in := []*kgo.Record{
		{Topic: notification.TopicSessions, Partition: 1, Key: []byte("k1"), Value: good("s1")},
		{Topic: notification.TopicSessions, Partition: 1, Key: []byte("k-bad"), Value: []byte(`{"sessionId":"s2","userIds":["u1"`),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: binary}, {Key: "empty", Value: nil}, {Key: "trace", Value: []byte("again")}}},
		{Topic: notification.TopicSessions, Partition: 1, Key: []byte("k3"), Value: good("s3")},
		{Topic: notification.TopicSessions, Partition: 2}, // no key, no headers, empty value
		{Topic: notification.TopicConcepts, Partition: 0, Key: binary, Value: []byte("plain-fail")},
	}
	if err := prod.ProduceSync(context.Background(), in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all records handed to the Handler", func() bool { return len(rec.records()) == len(in) })

	// Offsets are committed past all of them, the poison ones included.
	eventually(t, "commits past every record", func() bool {
		got := committed(t, adm, cfg.ConsumerGroup())
		return got[notification.TopicSessions][1] == in[2].Offset+1 &&
			got[notification.TopicSessions][2] == in[3].Offset+1 &&
			got[notification.TopicConcepts][0] == in[4].Offset+1
	})

	// The dead-letter topic holds the three poison records, byte for byte, with the reasons.
	dlq := rawClient(t, b.Addr(), kgo.ConsumeTopics(cfg.DLQTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var dead []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(dead) < 3 && ctx.Err() == nil {
		dead = append(dead, dlq.PollFetches(ctx).Records()...)
	}
	if len(dead) != 3 {
		t.Fatalf("dead-letter topic: got %d records, want 3", len(dead))
	}
	for _, d := range dead {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		var src *kgo.Record
		for _, r := range in {
			if r.Topic == h[HeaderDLQSourceTopic] && strconv.Itoa(int(r.Partition)) == h[HeaderDLQSourcePartition] &&
				strconv.FormatInt(r.Offset, 10) == h[HeaderDLQSourceOffset] {
				src = r
			}
		}
		if src == nil {
			t.Fatalf("dead letter %v points at no produced record", h)
		}
		if !bytes.Equal(d.Key, src.Key) || !bytes.Equal(d.Value, src.Value) || (d.Key == nil) != (src.Key == nil) {
			t.Errorf("%s/%d@%d: key %q value %q, want %q %q", src.Topic, src.Partition, src.Offset, d.Key, d.Value, src.Key, src.Value)
		}
		if len(d.Headers) != len(src.Headers)+6 {
			t.Fatalf("%s/%d@%d: headers %v, want the %d original ones and 6 dlq-*", src.Topic, src.Partition, src.Offset, d.Headers, len(src.Headers))
		}
		for i, oh := range src.Headers {
			if d.Headers[i].Key != oh.Key || !bytes.Equal(d.Headers[i].Value, oh.Value) {
				t.Errorf("%s/%d@%d: header %d is %q=%q, want %q=%q", src.Topic, src.Partition, src.Offset, i, d.Headers[i].Key, d.Headers[i].Value, oh.Key, oh.Value)
			}
		}
		wantCode := "invalid-json"
		if string(src.Value) == "plain-fail" {
			wantCode = DLQCodeHandlerError
		}
		if h[HeaderDLQErrorCode] != wantCode || h[HeaderDLQReason] == "" {
			t.Errorf("%s/%d@%d: code %q reason %q, want code %q and a reason", src.Topic, src.Partition, src.Offset, h[HeaderDLQErrorCode], h[HeaderDLQReason], wantCode)
		}
		if wantTS := src.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"); h[HeaderDLQSourceTimestamp] != wantTS {
			t.Errorf("%s/%d@%d: source timestamp %q, want %q", src.Topic, src.Partition, src.Offset, h[HeaderDLQSourceTimestamp], wantTS)
		}
	}
	stop()
	rec.check(t)
	checkOrder(t, rec.records())

	// Metrics.
	if got := metricValue(t, c.m.records.WithLabelValues(notification.TopicSessions)); got != 4 {
		t.Errorf("records_total{sessions}: got %v, want 4", got)
	}
	if got := metricValue(t, c.m.deadLetters.WithLabelValues(notification.TopicSessions, "invalid-json")); got != 2 {
		t.Errorf("dead_letters_total{sessions,invalid-json}: got %v, want 2", got)
	}
	if got := metricValue(t, c.m.deadLetters.WithLabelValues(notification.TopicConcepts, DLQCodeHandlerError)); got != 1 {
		t.Errorf("dead_letters_total{concepts,handler-error}: got %v, want 1", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == "kafka_consumer_records_total" || mf.GetName() == "kafka_consumer_dead_letters_total" {
			n += len(mf.GetMetric())
		}
	}
	if n != 4 {
		t.Errorf("registered consumer series on reg: got %d, want 4", n)
	}
}

func TestConsumerLag(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	block := make(chan struct{})
	var once sync.Once
	rec := newRecorder(func(r *kgo.Record) error {
		if string(r.Value) == "first" {
			<-block // hold the partition so that the rest pile up behind it
		}
		return nil
	})
	cc := rec.config()
	cc.MaxPollRecords = 1
	c, _ := runConsumer(t, cfg, b.Addr(), cc, nil)
	t.Cleanup(func() { once.Do(func() { close(block) }) })
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	for _, v := range []string{"first", "2", "3", "4"} {
		produceAt(t, prod, notification.TopicConcepts, 2, v)
	}
	eventually(t, "first record handed", func() bool { return len(rec.records()) == 1 })
	once.Do(func() { close(block) })
	eventually(t, "lag", func() bool {
		return len(rec.records()) == 4 && metricValue(t, c.m.lag.WithLabelValues(notification.TopicConcepts, "2")) == 0
	})
	if n := countSeries(c.m.lag); n != 1 {
		t.Errorf("lag series: got %d, want 1 (only the partition with records)", n)
	}
}

func TestConsumerHealth(t *testing.T) {
	cfg := testConfig(t)
	cfg.RequestTimeout = 1500 * time.Millisecond
	b, err := StartEmbedded(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := newRecorder(nil)
	c, stop := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
	eventually(t, "healthy", func() bool { return c.Health() == nil })
	b.Close()
	eventually(t, "unhealthy with the broker down", func() bool { return errors.Is(c.Health(), ErrUnavailable) })
	stop()
	if err := c.Health(); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("after Run: got %v, want not running", err)
	}
}

func TestConsumerNotRunning(t *testing.T) {
	cfg := testConfig(t)
	rec := newRecorder(nil)
	c, err := NewConsumer(cfg, []string{"127.0.0.1:1"}, rec.config(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(); err == nil {
		t.Error("Health before Run: got nil, want an error")
	}
}

func TestConsumerRunTwice(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	rec := newRecorder(nil)
	c, _ := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
	eventually(t, "running", func() bool { return c.running.Load() })
	if err := c.Run(context.Background()); err == nil {
		t.Error("second concurrent Run: got nil, want an error")
	}
}

func TestNewConsumerErrors(t *testing.T) {
	ok := func(context.Context, *kgo.Record) error { return nil }
	tests := []struct {
		name string
		edit func(*config.Kafka, *ConsumerConfig)
	}{
		{"no handler", func(_ *config.Kafka, cc *ConsumerConfig) { cc.Handler = nil }},
		{"no topics", func(k *config.Kafka, _ *ConsumerConfig) { k.Topics = nil }},
		{"no dead-letter topic", func(k *config.Kafka, _ *ConsumerConfig) { k.DLQTopic = "" }},
		{"dead-letter topic consumed", func(k *config.Kafka, _ *ConsumerConfig) { k.DLQTopic = k.Topics[0].Topic }},
		{"bad SASL", func(k *config.Kafka, _ *ConsumerConfig) { k.SASL.Mechanism = "GSSAPI" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cc := ConsumerConfig{Handler: ok}
			tc.edit(&cfg, &cc)
			if _, err := NewConsumer(cfg, []string{"127.0.0.1:9092"}, cc, nil, nil); err == nil {
				t.Error("got nil, want an error")
			}
		})
	}
}

// metricValue reads a counter's or gauge's value.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// countSeries counts the series a collector has.
func countSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

func TestConsumerStopMidBatch(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	blocked := make(chan struct{})
	var first sync.Once
	rec := newRecorder(nil)
	cc := rec.config()
	handler := cc.Handler
	cc.Handler = func(ctx context.Context, r *kgo.Record) error {
		if string(r.Value) == "2" {
			first.Do(func() { close(blocked) })
			<-ctx.Done() // shutdown arrives while this record is being handed off
			return fmt.Errorf("hub: %w", ctx.Err())
		}
		return handler(ctx, r)
	}
	reg := prometheus.NewRegistry()
	c, stop := runConsumer(t, cfg, b.Addr(), cc, reg)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	in := make([]*kgo.Record, 5)
	for i := range in {
		in[i] = &kgo.Record{Topic: notification.TopicConcepts, Partition: 1, Value: []byte(strconv.Itoa(i))}
	}
	if err := prod.ProduceSync(context.Background(), in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	<-blocked
	stop()
	if got := values(rec.records()); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("handed off before the stop: %v, want [0 1]", got)
	}
	if got := committed(t, adm, cfg.ConsumerGroup())[notification.TopicConcepts][1]; got != in[2].Offset {
		t.Fatalf("committed: got %d, want %d (after the two records handed off)", got, in[2].Offset)
	}
	if n := countSeries(c.m.deadLetters); n != 0 {
		t.Errorf("a record interrupted by shutdown went to the dead-letter topic")
	}

	rec2 := newRecorder(nil)
	_, stop2 := runConsumer(t, cfg, b.Addr(), rec2.config(), reg)
	eventually(t, "the rest", func() bool { return len(rec2.records()) == 3 })
	stop2()
	if got := values(rec2.records()); !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Errorf("after restart: %v, want [2 3 4]", got)
	}
}

func TestConsumerDeadLetterFails(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	cfg.DLQTopic = "no-such-dlq" // the copy cannot be written
	rec := newRecorder(func(r *kgo.Record) error {
		if string(r.Value) == "bad" {
			return errors.New("bad record")
		}
		return nil
	})
	c, stop := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	produceAt(t, prod, notification.TopicSessions, 0, "bad")
	last := produceAt(t, prod, notification.TopicSessions, 0, "good")
	eventually(t, "the good record after the bad one", func() bool { return len(rec.records()) == 2 })
	eventually(t, "commit past both", func() bool {
		return committed(t, adm, cfg.ConsumerGroup())[notification.TopicSessions][0] == last+1
	})
	stop()
	if got := metricValue(t, c.m.deadLetterErrors.WithLabelValues(notification.TopicSessions)); got != 1 {
		t.Errorf("dead_letter_errors_total: got %v, want 1", got)
	}
	if got := values(rec.records()); !slices.Equal(got, []string{"bad", "good"}) {
		t.Errorf("handed off %v, want [bad good], each once", got)
	}
}

func TestConsumerTopicCreatedLater(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg) // creates the two default topics, not "late"
	cfg.Topics = append(cfg.Topics, config.TopicEvent{Topic: "late", Event: "late"})
	rec := newRecorder(nil)
	_, stop := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })

	c := newTestClient(t, cfg, b.Addr(), nil)
	if err := c.CreateTopic(context.Background(), "late", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	prod := rawClient(t, b.Addr())
	produceAt(t, prod, "late", 0, "early-bird") // before the consumer is assigned the topic
	eventually(t, "the new topic's first record", func() bool { return len(rec.records()) == 1 })
	stop()
	if got := rec.records()[0]; got.Topic != "late" || got.Offset != 0 {
		t.Errorf("got %s@%d, want late@0: a topic created after the first start is read from its start", got.Topic, got.Offset)
	}
}

// TestSharedRegistry wires a Client and a running Consumer on one registry, as main does.
func TestSharedRegistry(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	reg := prometheus.NewRegistry()
	c := newTestClient(t, cfg, b.Addr(), reg)
	rec := newRecorder(nil)
	_, stop := runConsumer(t, cfg, b.Addr(), rec.config(), reg)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	if err := c.Produce(context.Background(), &kgo.Record{Topic: notification.TopicSessions, Value: []byte("x")})[0]; err != nil {
		t.Fatal(err)
	}
	eventually(t, "hand-off", func() bool { return len(rec.records()) == 1 })
	roles := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" {
					roles[l.GetValue()] = true
				}
			}
		}
	}
	if !roles["producer"] || !roles["consumer"] {
		t.Errorf("client metrics by role: got %v, want producer and consumer", roles)
	}
	stop()
}
