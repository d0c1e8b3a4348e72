package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/realtime-service/realtime-service/internal/notification"
)

func TestDeadLetterRecord(t *testing.T) {
	ts := time.Date(2026, 11, 29, 10, 0, 0, 7_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name     string
		rec      *kgo.Record
		reason   error
		wantCode string
	}{
		{"decode error", &kgo.Record{Topic: "t", Partition: 2, Offset: 41, Timestamp: ts, Key: []byte("k"), Value: []byte("{"),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{0, 0xff}}}},
			&notification.DecodeError{Code: "invalid-json", Detail: "cut short"}, "invalid-json"},
		{"wrapped decode error", &kgo.Record{Topic: "t", Timestamp: ts, Value: []byte("x")},
			fmt.Errorf("hub: %w", &notification.DecodeError{Code: "invalid-value", Detail: "no users"}), "invalid-value"},
		{"other error, no key, no value", &kgo.Record{Topic: "t", Timestamp: ts}, errors.New("boom"), DLQCodeHandlerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, code := deadLetterRecord("dlq", tc.rec, tc.reason)
			if code != tc.wantCode || d.Topic != "dlq" {
				t.Errorf("got code %q topic %q, want %q dlq", code, d.Topic, tc.wantCode)
			}
			if !bytes.Equal(d.Key, tc.rec.Key) || (d.Key == nil) != (tc.rec.Key == nil) || !bytes.Equal(d.Value, tc.rec.Value) {
				t.Errorf("key/value changed: %q %q", d.Key, d.Value)
			}
			n := len(tc.rec.Headers)
			if len(d.Headers) != n+6 {
				t.Fatalf("headers: %v", d.Headers)
			}
			for i, h := range tc.rec.Headers {
				if d.Headers[i].Key != h.Key || !bytes.Equal(d.Headers[i].Value, h.Value) {
					t.Errorf("original header %d changed: %v", i, d.Headers[i])
				}
			}
			want := map[string]string{
				HeaderDLQReason:          tc.reason.Error(),
				HeaderDLQErrorCode:       tc.wantCode,
				HeaderDLQSourceTopic:     tc.rec.Topic,
				HeaderDLQSourcePartition: fmt.Sprint(tc.rec.Partition),
				HeaderDLQSourceOffset:    fmt.Sprint(tc.rec.Offset),
				HeaderDLQSourceTimestamp: "2026-11-29T09:00:00.007Z",
			}
			for _, h := range d.Headers[n:] {
				if w, ok := want[h.Key]; !ok || w != string(h.Value) {
					t.Errorf("header %s=%q, want %q", h.Key, h.Value, w)
				}
				delete(want, h.Key)
			}
			if len(want) > 0 {
				t.Errorf("missing headers %v", want)
			}
			if !d.Timestamp.IsZero() {
				t.Errorf("timestamp %v: want zero (the producer stamps it)", d.Timestamp)
			}
		})
	}
}

// TestTwoEventTypeHeadersAreDeadLettered: the decoder refuses a record with two event-type headers
// and its dead letter says why, with code invalid-event-type and both headers kept.
func TestTwoEventTypeHeadersAreDeadLettered(t *testing.T) {
	dec := notification.NewDecoder(notification.NewValidator(), map[string]string{"t": "custom-event"})
	rec := &kgo.Record{Topic: "t", Value: []byte(`{"userIds":["u1"]}`), Headers: []kgo.RecordHeader{
		{Key: notification.HeaderEventType, Value: []byte("a")}, {Key: notification.HeaderEventType, Value: []byte("b")}}}
	_, err := dec.Decode(rec)
	if err == nil {
		t.Fatal("decoded a record with two event-type headers")
	}
	d, code := deadLetterRecord("dlq", rec, err)
	if code != "invalid-event-type" {
		t.Errorf("code %q, want invalid-event-type", code)
	}
	var reason string
	for _, h := range d.Headers {
		if h.Key == HeaderDLQReason {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "the event-type header appears 2 times") {
		t.Errorf("dlq-reason %q does not say the header appears 2 times", reason)
	}
	if len(d.Headers) < 2 || string(d.Headers[0].Value) != "a" || string(d.Headers[1].Value) != "b" {
		t.Errorf("original headers not kept first: %v", d.Headers)
	}
}

// TestDeadLetterRecordDropsItsOwnDLQHeaders: a poison record carrying dlq-* headers of its own
// (forged) must not have them read as the service's reason and source.
func TestDeadLetterRecordDropsItsOwnDLQHeaders(t *testing.T) {
	rec := &kgo.Record{Topic: "concept-notifications", Partition: 1, Offset: 7, Value: []byte("x"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}, {Key: HeaderDLQReason, Value: []byte("forged reason")}, {Key: HeaderDLQSourceTopic, Value: []byte("elsewhere")}}}
	d, _ := deadLetterRecord("realtime-service.dlq", rec, &notification.DecodeError{Code: "invalid-json", Detail: "x"})
	counts := map[string]int{}
	for _, h := range d.Headers {
		counts[h.Key]++
		if h.Key == HeaderDLQReason && string(h.Value) == "forged reason" || h.Key == HeaderDLQSourceTopic && string(h.Value) != "concept-notifications" {
			t.Errorf("forged header kept: %s=%s", h.Key, h.Value)
		}
	}
	if counts["trace"] != 1 || counts[HeaderDLQReason] != 1 || counts[HeaderDLQSourceTopic] != 1 {
		t.Errorf("headers %v: want trace once and one of each dlq-* header", d.Headers)
	}
}

func TestTruncatedDeadLetter(t *testing.T) {
	big := bytes.Repeat([]byte("v"), 5000)
	tests := []struct {
		name      string
		rec       *kgo.Record
		wantOwn   int // original headers kept
		wantKey   []byte
		wantValue int
	}{
		{"small headers kept, key and value cut", &kgo.Record{Topic: "t", Key: bytes.Repeat([]byte("k"), 2000), Value: big,
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}, 1, bytes.Repeat([]byte("k"), dlqTruncatedBytes), dlqTruncatedBytes},
		{"large headers dropped, nil key stays nil", &kgo.Record{Topic: "t", Value: []byte("short"),
			Headers: []kgo.RecordHeader{{Key: "a", Value: big}, {Key: "b", Value: []byte("x")}}}, 0, nil, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dr, _ := deadLetterRecord("dlq", tc.rec, errors.New(strings.Repeat("why ", 1000)))
			tr := truncatedDeadLetter(dr, len(tc.rec.Value), "too large")
			if !bytes.Equal(tr.Key, tc.wantKey) || (tr.Key == nil) != (tc.wantKey == nil) || len(tr.Value) != tc.wantValue ||
				!bytes.HasPrefix(tc.rec.Value, tr.Value) || tr.Topic != "dlq" {
				t.Errorf("key %d bytes, value %d bytes, topic %s", len(tr.Key), len(tr.Value), tr.Topic)
			}
			h := map[string]string{}
			own := 0
			for _, x := range tr.Headers {
				if !strings.HasPrefix(x.Key, "dlq-") {
					own++
				}
				if len(x.Value) > dlqTruncatedBytes {
					t.Errorf("header %s: %d bytes", x.Key, len(x.Value))
				}
				h[x.Key] = string(x.Value)
			}
			if own != tc.wantOwn {
				t.Errorf("original headers kept: %d, want %d", own, tc.wantOwn)
			}
			if h[HeaderDLQTruncated] != "true" || h[HeaderDLQOriginalSize] != strconv.Itoa(len(tc.rec.Value)) ||
				h[HeaderDLQTruncatedReason] != "too large" || h[HeaderDLQSourceTopic] != "t" || h[HeaderDLQReason] == "" {
				t.Errorf("headers %v", h)
			}
			if n := recordSize(tr); n+recordOverhead > 8<<10 {
				t.Errorf("truncated copy is %d bytes", n)
			}
		})
	}
}

// dlqHeaders returns r's headers as a map (the last value of a repeated key).
func dlqHeaders(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// readTopic reads n records from every partition of topic from its start, failing after 20 s.
func readTopic(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := rawClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	if len(out) != n {
		t.Fatalf("%s: got %d records, want %d", topic, len(out), n)
	}
	return out
}

// TestConsumerPoisonBurst: 1,000 poison records with valid ones among them. The valid ones are
// handed off in order, every poison one is in the dead-letter topic, and the log holds a few
// lines, not one per record, that still account for every record.
func TestConsumerPoisonBurst(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec := newRecorder(func(r *kgo.Record) error {
		if bytes.HasPrefix(r.Value, []byte("bad")) {
			return &notification.DecodeError{Code: "invalid-json", Detail: "test"}
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	c, stop := runConsumerLog(t, cfg, b.Addr(), rec.config(), reg, log)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })

	const poison = 1000
	var in []*kgo.Record
	var wantGood []string
	for i := range poison {
		in = append(in, &kgo.Record{Topic: notification.TopicConcepts, Partition: 2, Value: fmt.Appendf(nil, "bad-%d", i)})
		if i%10 == 9 {
			in = append(in, &kgo.Record{Topic: notification.TopicConcepts, Partition: 2, Value: fmt.Appendf(nil, "good-%d", i)})
			wantGood = append(wantGood, fmt.Sprintf("good-%d", i))
		}
	}
	if err := prod.ProduceSync(context.Background(), in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	last := in[len(in)-1].Offset
	eventually(t, "commit past the burst", func() bool {
		return committed(t, adm, cfg.ConsumerGroup())[notification.TopicConcepts][2] == last+1
	})
	stop()
	rec.check(t)
	checkOrder(t, rec.records())
	var good []string
	for _, r := range rec.records() {
		if bytes.HasPrefix(r.Value, []byte("good")) {
			good = append(good, string(r.Value))
		}
	}
	if !slices.Equal(good, wantGood) {
		t.Errorf("valid records handed off: %d of %d, or out of order", len(good), len(wantGood))
	}

	wantDead := map[string]string{} // source offset → value
	for _, r := range in {
		if bytes.HasPrefix(r.Value, []byte("bad")) {
			wantDead[strconv.FormatInt(r.Offset, 10)] = string(r.Value)
		}
	}
	for _, d := range readTopic(t, b.Addr(), cfg.DLQTopic, poison) {
		h := dlqHeaders(d)
		off := h[HeaderDLQSourceOffset]
		if wantDead[off] != string(d.Value) || h[HeaderDLQSourceTopic] != notification.TopicConcepts ||
			h[HeaderDLQSourcePartition] != "2" || h[HeaderDLQErrorCode] != "invalid-json" {
			t.Errorf("dead letter %q with headers %v matches no poison record", d.Value, h)
		}
		delete(wantDead, off)
	}
	if len(wantDead) > 0 {
		t.Errorf("%d poison records missing from the dead-letter topic", len(wantDead))
	}
	if got := metricValue(t, c.m.deadLetters.WithLabelValues(notification.TopicConcepts, "invalid-json")); got != poison {
		t.Errorf("dead_letters_total: %v, want %d", got, poison)
	}
	if got := metricValue(t, c.m.deadLettersInFlight); got != 0 {
		t.Errorf("dead_letters_in_flight after the stop: %v", got)
	}

	// A few lines, which account for every poison record: those in full, plus the summaries' counts.
	full, counted, lines := 0, 0, 0
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		switch {
		case strings.Contains(l, "poison record copied"):
			full++
		case strings.Contains(l, "more poison records were copied"):
			var n int
			if _, err := fmt.Sscanf(l[strings.Index(l, " count=")+1:], "count=%d", &n); err != nil {
				t.Fatalf("summary line without a count: %s", l)
			}
			counted += n
		default:
			continue
		}
		lines++
	}
	const maxLines = 20 // two windows' worth, should the test straddle one
	if lines > maxLines || full+counted != poison {
		t.Errorf("%d poison log lines, %d records in full and %d counted in summaries; want at most %d lines accounting for %d:\n%s",
			lines, full, counted, maxLines, poison, logs.String())
	}
}

// stallDeadLetters holds every produce request to dlqTopic on b until unstall is called (at the
// latest when the test ends); stalled reports whether one was held.
func stallDeadLetters(t *testing.T, b *Broker, adm *kadm.Client, dlqTopic string) (stalled func() bool, unstall func()) {
	t.Helper()
	td, err := adm.ListTopics(context.Background(), dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	dlqID := td[dlqTopic].ID
	release := make(chan struct{})
	var held atomic.Bool
	b.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == dlqTopic || tp.TopicID == dlqID {
				held.Store(true)
				b.cluster.SleepControl(func() { <-release })
				break
			}
		}
		return nil, nil, false
	})
	var once sync.Once
	unstall = func() { once.Do(func() { close(release) }) }
	t.Cleanup(unstall)
	return held.Load, unstall
}

// TestConsumerShutdownWaitsForDeadLetter: a copy in flight at shutdown is waited for (within
// RequestTimeout) before the final commit, which then passes its record.
func TestConsumerShutdownWaitsForDeadLetter(t *testing.T) {
	cfg := testConfig(t)
	cfg.RequestTimeout = 20 * time.Second
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	stalled, unstall := stallDeadLetters(t, b, adm, cfg.DLQTopic)
	rec := newRecorder(func(r *kgo.Record) error {
		if string(r.Value) == "bad" {
			return &notification.DecodeError{Code: "invalid-json", Detail: "test"}
		}
		return nil
	})
	_, stop := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	produceAt(t, prod, notification.TopicSessions, 0, "bad")
	after := produceAt(t, prod, notification.TopicSessions, 0, "after")
	eventually(t, "both handed off", func() bool { return len(rec.records()) == 2 })
	eventually(t, "the copy stalled", stalled)
	go func() {
		time.Sleep(200 * time.Millisecond) // the shutdown has begun by then (without the wait, Run would be done)
		unstall()
	}()
	stop()
	if got := committed(t, adm, cfg.ConsumerGroup())[notification.TopicSessions][0]; got != after+1 {
		t.Errorf("committed at shutdown: %d, want %d (after the copy was acked)", got, after+1)
	}
}

// TestConsumerCommitWaitsForDeadLetter: while a poison record's copy is not acked, the records
// after it are handed off, but no commit passes it; once acked, the commit goes on.
func TestConsumerCommitWaitsForDeadLetter(t *testing.T) {
	cfg := testConfig(t)
	cfg.RequestTimeout = 20 * time.Second // the stalled copy must not time out and be skipped
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	stalled, unstall := stallDeadLetters(t, b, adm, cfg.DLQTopic)

	rec := newRecorder(func(r *kgo.Record) error {
		if string(r.Value) == "bad" {
			return &notification.DecodeError{Code: "invalid-json", Detail: "test"}
		}
		return nil
	})
	_, stop := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	produceAt(t, prod, notification.TopicSessions, 0, "good")
	bad := produceAt(t, prod, notification.TopicSessions, 0, "bad")
	after := produceAt(t, prod, notification.TopicSessions, 0, "after")
	eventually(t, "the record after the poison one handed off", func() bool { return len(rec.records()) == 3 })
	eventually(t, "the copy stalled", stalled)

	// A record of another partition, handed off after those: its commit carries partition 0's.
	other := produceAt(t, prod, notification.TopicSessions, 1, "other")
	eventually(t, "the other partition's commit", func() bool {
		return committed(t, adm, cfg.ConsumerGroup())[notification.TopicSessions][1] == other+1
	})
	if got := committed(t, adm, cfg.ConsumerGroup())[notification.TopicSessions][0]; got != bad {
		t.Fatalf("committed %d while the copy of %d is not acked: want %d", got, bad, bad)
	}

	unstall()
	eventually(t, "the commit past the poison record once its copy is acked", func() bool {
		return committed(t, adm, cfg.ConsumerGroup())[notification.TopicSessions][0] == after+1
	})
	stop()
	if h := dlqHeaders(readTopic(t, b.Addr(), cfg.DLQTopic, 1)[0]); h[HeaderDLQSourceOffset] != strconv.FormatInt(bad, 10) {
		t.Errorf("dead letter %v, want the record at %d", h, bad)
	}
}

// TestConsumerDeadLetterTooLarge: a poison record whose copy is too large, for the producer or
// for the dead-letter topic, is dead-lettered truncated; if even that is refused, it is counted.
func TestConsumerDeadLetterTooLarge(t *testing.T) {
	tests := []struct {
		name       string
		maxMessage string // the dead-letter topic's max.message.bytes; "" for the default
		size       int    // the poison value's size (random bytes)
		wantWhy    string // in dlq-truncated-reason; "" when no copy is written
	}{
		{"refused by the dead-letter topic", "4096", 20_000, "MESSAGE_TOO_LARGE"},
		{"over the producer's max record bytes", "", 999_900, "max record bytes"},
		{"even the truncated copy refused", "600", 20_000, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			b := startBroker(t, cfg)
			prod := rawClient(t, b.Addr(), kgo.ProducerBatchMaxBytes(2<<20))
			adm := kadm.NewClient(prod)
			cfg.DLQTopic = "small-dlq"
			var configs map[string]*string
			if tc.maxMessage != "" {
				configs = map[string]*string{"max.message.bytes": &tc.maxMessage}
			}
			if _, err := adm.CreateTopic(context.Background(), 1, 1, configs, cfg.DLQTopic); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(func(r *kgo.Record) error {
				if r.Value[0] == 'x' {
					return &notification.DecodeError{Code: "invalid-json", Detail: "test"}
				}
				return nil
			})
			c, stop := runConsumer(t, cfg, b.Addr(), rec.config(), nil)
			eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
			value := make([]byte, tc.size) // incompressible: brokers weigh batches compressed
			rand.Read(value)
			value[0] = 'x'
			bad := produceAt(t, prod, notification.TopicSessions, 2, string(value))
			good := produceAt(t, prod, notification.TopicSessions, 2, "good")
			eventually(t, "commit past both", func() bool {
				return committed(t, adm, cfg.ConsumerGroup())[notification.TopicSessions][2] == good+1
			})
			stop()
			if tc.wantWhy == "" {
				if got := metricValue(t, c.m.deadLetterErrors.WithLabelValues(notification.TopicSessions)); got != 1 {
					t.Errorf("dead_letter_errors_total: %v, want 1", got)
				}
				if ends := endOffsets(t, adm, cfg.DLQTopic); ends[0] != 0 {
					t.Errorf("dead-letter topic holds %d records, want none", ends[0])
				}
				return
			}
			d := consumeAt(t, b.Addr(), cfg.DLQTopic, 0, 0)
			h := dlqHeaders(d)
			if h[HeaderDLQTruncated] != "true" || h[HeaderDLQOriginalSize] != strconv.Itoa(tc.size) ||
				!strings.Contains(h[HeaderDLQTruncatedReason], tc.wantWhy) || h[HeaderDLQSourceOffset] != strconv.FormatInt(bad, 10) ||
				h[HeaderDLQSourceTopic] != notification.TopicSessions || h[HeaderDLQSourcePartition] != "2" || h[HeaderDLQErrorCode] != "invalid-json" {
				t.Errorf("headers %v", h)
			}
			if !bytes.Equal(d.Value, value[:dlqTruncatedBytes]) {
				t.Errorf("value: %d bytes, want the first %d", len(d.Value), dlqTruncatedBytes)
			}
			if got := metricValue(t, c.m.deadLettersTruncated.WithLabelValues(notification.TopicSessions)); got != 1 {
				t.Errorf("dead_letters_truncated_total: %v, want 1", got)
			}
		})
	}
}

// TestConsumerRoles: a RoleDeliver consumer skips a poison record without copying it; the
// RoleDeadLetter consumers of two nodes share one group and copy it once.
func TestConsumerRoles(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	adm := kadm.NewClient(prod)
	fail := func(r *kgo.Record) error {
		if bytes.HasPrefix(r.Value, []byte("bad")) {
			return &notification.DecodeError{Code: "invalid-json", Detail: "test"}
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	deliver := newRecorder(fail)
	cc := deliver.config()
	cc.Role = RoleDeliver
	_, stopDeliver := runConsumer(t, cfg, b.Addr(), cc, reg)
	var duty []*recorder
	var dutyRegs []*prometheus.Registry // one per node: kprom's client metrics are per process
	for _, node := range []string{"node-1", "node-2"} {
		c := cfg
		c.NodeID = node
		r := newRecorder(fail)
		dc := r.config()
		dc.Role = RoleDeadLetter
		dr := prometheus.NewRegistry()
		dutyRegs = append(dutyRegs, dr)
		_, stop := runConsumer(t, c, b.Addr(), dc, dr)
		t.Cleanup(stop)
		duty = append(duty, r)
	}
	eventually(t, "assignment", func() bool { return deliver.nAssigned() == 6 && duty[0].nAssigned()+duty[1].nAssigned() >= 6 })

	in := []*kgo.Record{
		{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("good-1")},
		{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("bad")},
		{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("good-2")},
	}
	if err := prod.ProduceSync(context.Background(), in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	last := in[2].Offset
	for _, g := range []string{cfg.ConsumerGroup(), cfg.DeadLetterGroup()} {
		eventually(t, "commit of "+g, func() bool { return committed(t, adm, g)[notification.TopicConcepts][1] == last+1 })
	}
	stopDeliver()
	var copies int64
	for _, end := range endOffsets(t, adm, cfg.DLQTopic) {
		copies += end
	}
	if copies != 1 {
		t.Errorf("%d dead letters, want 1", copies)
	}
	if len(deliver.records()) != 3 {
		t.Errorf("the delivering consumer got %d records, want 3 (the poison one too, skipped)", len(deliver.records()))
	}
	for name, want := range map[string]float64{
		`kafka_consumer_poison_skipped_total{topic="concept-notifications"}`: 1,
		`kafka_consumer_records_total{topic="concept-notifications"}`:        3,
	} {
		if got := gathered(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{
		`kafka_consumer_dead_letters_total{code="invalid-json",topic="concept-notifications"}`: 1,
		`kafka_dlq_consumer_records_total{topic="concept-notifications"}`:                      3,
		`kafka_consumer_poison_skipped_total{topic="concept-notifications"}`:                   0,
	} {
		if got := gathered(t, dutyRegs[0], name) + gathered(t, dutyRegs[1], name); got != want {
			t.Errorf("%s of the dead-letter duty = %v, want %v", name, got, want)
		}
	}
}

// gathered returns the value of the sample name{labels} (labels sorted by name) in reg, 0 if none.
func gathered(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			if name == series {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
