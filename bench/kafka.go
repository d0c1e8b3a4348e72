package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The topics of docs/design.md, "Topics and records".
const (
	topicConcepts = "concept-notifications"
	topicSessions = "session-notifications"
)

// newProducer is a franz-go client producing as the service's own API does: acks=all,
// idempotent, no compression, and by default no linger (a record is sent at once; franz-go's own
// default is 10 ms).
func newProducer(brokers []string, linger time.Duration) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("realtime-bench"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(linger),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(1<<20),
	)
}

// producer counts the acknowledgements of asynchronously produced records.
type producer struct {
	cl     *kgo.Client
	sent   atomic.Int64
	acked  atomic.Int64
	failed atomic.Int64
	// firstErr is the first produce error, for the report.
	firstErr atomic.Pointer[error]
}

func (p *producer) produce(ctx context.Context, r *kgo.Record) {
	p.sent.Add(1)
	p.cl.Produce(ctx, r, p.promise)
}

func (p *producer) promise(_ *kgo.Record, err error) {
	if err != nil {
		p.failed.Add(1)
		p.firstErr.CompareAndSwap(nil, &err)
		return
	}
	p.acked.Add(1)
}

func (p *producer) err() error {
	if e := p.firstErr.Load(); e != nil {
		return *e
	}
	return nil
}

// conceptValue appends a concept-mastered record value (the shape of docs/design.md, "Topics and records") for users, whose JSON
// array is given, with a "bench" field first that carries the run, the sequence number and the
// send time: "<run>.<seq>.<ns since the run's base time>" (the decoder keeps unknown fields, and
// the frame's data is the value as compact JSON, so the field reaches every client).
func conceptValue(b []byte, run string, seq int64, sent int64, usersJSON []byte) []byte {
	b = append(b, `{"bench":"`...)
	b = append(b, run...)
	b = append(b, '.')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, `","conceptId":"c`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","userIds":`...)
	b = append(b, usersJSON...)
	return append(b, `,"conceptName":"bench","masteryLevel":0.5}`...)
}

// probeValue is a record value naming users whose "bench" field marks it as a probe of run.
func probeValue(run string, n int, usersJSON []byte) []byte {
	b := []byte(`{"bench":"` + run + `.p` + strconv.Itoa(n) + `","conceptId":"probe","userIds":`)
	b = append(b, usersJSON...)
	return append(b, `,"conceptName":"bench","masteryLevel":0.5}`...)
}

// usersJSON is the JSON array of users.
func usersJSON(users []string) []byte {
	b := []byte{'['}
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, u)
	}
	return append(b, ']')
}

// endOffsets sums the end offsets of topic's partitions.
func endOffsets(ctx context.Context, brokers []string, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	var ferr error
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = o.Err
		}
		sum += o.Offset
	})
	if ferr != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, ferr)
	}
	return sum, nil
}
