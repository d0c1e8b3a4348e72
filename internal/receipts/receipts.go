// Package receipts produces delivery and read receipts to a Kafka topic
// (REALTIME_RECEIPTS_TOPIC; docs/presence-and-receipts.md, "Receipts"): a "delivered" receipt
// when a live event's frame was written to a connection, a "read" receipt when the user's client
// said it read an event. A Recorder is the hub's realtime.ReceiptSink; it queues each receipt
// for the producer, which batches them, and drops it (counted) when the queue is full: receipts
// never slow delivery.
package receipts

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/kafka"
)

// Producer queues records for Kafka without blocking; *kafka.AsyncProducer implements it (with
// REALTIME_RECEIPT_QUEUE as its bound: a record past it fails at once with kafka.ErrQueueFull).
type Producer interface {
	TryProduce(rec *kgo.Record, done func(*kgo.Record, error))
}

// Config configures a Recorder. Topic, Node and Producer are required.
type Config struct {
	// Topic is the receipts topic (REALTIME_RECEIPTS_TOPIC).
	Topic string
	// Node is this node's ID (KAFKA_NODE_ID), the receipts' nodeId.
	Node string
	// Producer sends the receipts.
	Producer Producer
	// Metrics registers realtime_receipts_produced_total and realtime_receipts_dropped_total;
	// nil registers nothing.
	Metrics prometheus.Registerer
	// Now is the clock of deliveredAt and readAt; nil is time.Now.
	Now func() time.Time
}

// Recorder turns receipts into records. Make it with New; it is safe for concurrent use.
type Recorder struct {
	cfg      Config
	produced *prometheus.CounterVec
	dropped  *prometheus.CounterVec

	doneDelivered, doneRead func(*kgo.Record, error)
}

// Kinds of receipts, the kind label of the metrics.
const (
	kindDelivered = "delivered"
	kindRead      = "read"
)

// Reasons a receipt was dropped, the reason label of realtime_receipts_dropped_total.
const (
	reasonQueueFull = "queue_full" // REALTIME_RECEIPT_QUEUE receipts were waiting already
	reasonKafka     = "kafka"      // Kafka did not take it within KAFKA_REQUEST_TIMEOUT
)

// New returns a Recorder.
func New(cfg Config) *Recorder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Recorder{cfg: cfg,
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_receipts_produced_total",
			Help: "Receipts Kafka acknowledged, by kind: delivered (a live event written to a connection) or read (the client said it read it).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_receipts_dropped_total",
			Help: "Receipts not produced, by kind and reason: queue_full (REALTIME_RECEIPT_QUEUE receipts were waiting) or kafka (Kafka did not take it in time).",
		}, []string{"kind", "reason"}),
	}
	for _, k := range []string{kindDelivered, kindRead} {
		r.produced.WithLabelValues(k)
		for _, why := range []string{reasonQueueFull, reasonKafka} {
			r.dropped.WithLabelValues(k, why)
		}
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(r.produced, r.dropped)
	}
	r.doneDelivered = r.done(kindDelivered)
	r.doneRead = r.done(kindRead)
	return r
}

func (r *Recorder) done(kind string) func(*kgo.Record, error) {
	ok := r.produced.WithLabelValues(kind)
	full := r.dropped.WithLabelValues(kind, reasonQueueFull)
	failed := r.dropped.WithLabelValues(kind, reasonKafka)
	return func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			ok.Inc()
		case errors.Is(err, kafka.ErrQueueFull):
			full.Inc()
		default:
			failed.Inc()
		}
	}
}

// Delivered queues a delivered receipt for each of ids, the live events just written to one of
// user's connections on transport (realtime.ReceiptSink).
func (r *Recorder) Delivered(user, transport string, ids []string) {
	now := r.cfg.Now()
	key := []byte(user)
	for _, id := range ids {
		r.cfg.Producer.TryProduce(&kgo.Record{Topic: r.cfg.Topic, Key: key, Value: r.value(id, user, transport, "deliveredAt", now)}, r.doneDelivered)
	}
}

// Read queues a read receipt: user's client said on transport that it read the event id
// (realtime.ReceiptSink).
func (r *Recorder) Read(user, transport, id string) {
	r.cfg.Producer.TryProduce(&kgo.Record{Topic: r.cfg.Topic, Key: []byte(user), Value: r.value(id, user, transport, "readAt", r.cfg.Now())}, r.doneRead)
}

// value is a receipt's JSON value (docs/presence-and-receipts.md, "Receipts"):
// {"eventId","userId","nodeId","transport","deliveredAt"|"readAt"}, the time in RFC 3339 UTC with
// milliseconds.
func (r *Recorder) value(id, user, transport, at string, now time.Time) []byte {
	b := make([]byte, 0, 96+len(id)+len(user)+len(r.cfg.Node))
	b = append(b, `{"eventId":`...)
	b = appendString(b, id)
	b = append(b, `,"userId":`...)
	b = appendString(b, user)
	b = append(b, `,"nodeId":`...)
	b = appendString(b, r.cfg.Node)
	b = append(b, `,"transport":"`...)
	b = append(b, transport...)
	b = append(b, `","`...)
	b = append(b, at...)
	b = append(b, `":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, `"}`...)
}

// appendString appends s as a JSON string (RFC 8259 §7), through encoding/json unless every byte
// is printable ASCII other than '"' and '\\'.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
