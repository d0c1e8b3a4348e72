package receipts

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/kafka"
)

// fakeProducer takes up to room records; past it they fail as a full queue would.
type fakeProducer struct {
	room int
	recs []*kgo.Record
	fail error // every accepted record fails with it, when set
}

func (p *fakeProducer) TryProduce(rec *kgo.Record, done func(*kgo.Record, error)) {
	if len(p.recs) >= p.room {
		done(rec, kafka.ErrQueueFull)
		return
	}
	p.recs = append(p.recs, rec)
	done(rec, p.fail)
}

func TestReceiptRecords(t *testing.T) {
	p := &fakeProducer{room: 3}
	at := time.Date(2026, 11, 29, 10, 0, 0, 123e6, time.FixedZone("CET", 3600))
	r := New(Config{Topic: "receipts", Node: "n1", Producer: p, Now: func() time.Time { return at }, Metrics: prometheus.NewRegistry()})
	r.Delivered(`al"ice`, "websocket", []string{"t:0:1", "t:0:2"})
	r.Read(`al"ice`, "http", "t:0:1")
	r.Read(`al"ice`, "http", "t:0:2") // no room: dropped

	want := []map[string]string{
		{"eventId": "t:0:1", "userId": `al"ice`, "nodeId": "n1", "transport": "websocket", "deliveredAt": "2026-11-29T09:00:00.123Z"},
		{"eventId": "t:0:2", "userId": `al"ice`, "nodeId": "n1", "transport": "websocket", "deliveredAt": "2026-11-29T09:00:00.123Z"},
		{"eventId": "t:0:1", "userId": `al"ice`, "nodeId": "n1", "transport": "http", "readAt": "2026-11-29T09:00:00.123Z"},
	}
	if len(p.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(p.recs), len(want))
	}
	for i, rec := range p.recs {
		var got map[string]string
		if err := json.Unmarshal(rec.Value, &got); err != nil {
			t.Fatalf("record %d: %q: %v", i, rec.Value, err)
		}
		if rec.Topic != "receipts" || string(rec.Key) != `al"ice` || len(got) != len(want[i]) {
			t.Errorf("record %d: topic %s key %q value %v", i, rec.Topic, rec.Key, got)
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("record %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
	for _, c := range []struct {
		metric prometheus.Collector
		want   float64
	}{
		{r.produced.WithLabelValues(kindDelivered), 2},
		{r.produced.WithLabelValues(kindRead), 1},
		{r.dropped.WithLabelValues(kindRead, reasonQueueFull), 1},
		{r.dropped.WithLabelValues(kindDelivered, reasonQueueFull), 0},
	} {
		if got := testutil.ToFloat64(c.metric); got != c.want {
			t.Errorf("%v = %v, want %v", c.metric, got, c.want)
		}
	}
}

func TestKafkaFailuresAreCounted(t *testing.T) {
	p := &fakeProducer{room: 10, fail: errors.New("broker gone")}
	r := New(Config{Topic: "receipts", Node: "n1", Producer: p})
	r.Delivered("bob", "sse", []string{"t:0:1"})
	if got := testutil.ToFloat64(r.dropped.WithLabelValues(kindDelivered, reasonKafka)); got != 1 {
		t.Errorf("dropped{reason=kafka} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.produced.WithLabelValues(kindDelivered)); got != 0 {
		t.Errorf("produced = %v, want 0", got)
	}
}

// BenchmarkDelivered is the cost a connection's writer pays per delivered event with receipts
// on: one record built and queued.
func BenchmarkDelivered(b *testing.B) {
	r := New(Config{Topic: "receipts", Node: "node-1", Producer: discard{}})
	ids := []string{"concept-notifications:0:123456"}
	b.ReportAllocs()
	for b.Loop() {
		r.Delivered("user-12345", "websocket", ids)
	}
}

type discard struct{}

func (discard) TryProduce(rec *kgo.Record, done func(*kgo.Record, error)) { done(rec, nil) }
