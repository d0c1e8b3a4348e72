package kafka

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// TestDeadLetterDutyRunsBehindDelivery: with Behind asking the delivering consumer's Handed, the
// dead-letter duty hands a partition's records off (and copies the poison one) only once
// delivery has handed them off; and Behind that never clears holds a poll back 1 s at most.
func TestDeadLetterDutyRunsBehindDelivery(t *testing.T) {
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
	var stuck atomic.Bool // delivery's Handler waits while it is set
	deliver := newRecorder(func(r *kgo.Record) error {
		for stuck.Load() {
			time.Sleep(time.Millisecond)
		}
		return fail(r)
	})
	cc := deliver.config()
	cc.Role = RoleDeliver
	delivery, _ := runConsumer(t, cfg, b.Addr(), cc, prometheus.NewRegistry())
	t.Cleanup(func() { stuck.Store(false) })

	duty := newRecorder(fail)
	dc := duty.config()
	dc.Role = RoleDeadLetter
	dc.Behind = func(topic string, partition int32, next int64) bool {
		handed, ok := delivery.Handed(topic, partition)
		return ok && handed < next
	}
	runConsumer(t, cfg, b.Addr(), dc, prometheus.NewRegistry())
	eventually(t, "assignment", func() bool { return deliver.nAssigned() == 6 && duty.nAssigned() == 6 })

	// One record first, so that delivery has handed off from the partition (Handed is known).
	first := &kgo.Record{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("good-0")}
	if err := prod.ProduceSync(context.Background(), first).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first record handed off by both", func() bool {
		next, ok := delivery.Handed(notification.TopicConcepts, 1)
		return ok && next == first.Offset+1 && len(duty.records()) == 1
	})

	// Delivery stuck: the duty waits for it (up to 1 s a poll).
	stuck.Store(true)
	in := []*kgo.Record{
		{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("bad")},
		{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("good-1")},
	}
	if err := prod.ProduceSync(context.Background(), in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(duty.records()); n != 1 {
		t.Fatalf("the duty handed off %d records while delivery was stuck, want still 1", n)
	}
	stuck.Store(false)
	eventually(t, "the duty catches up and copies the poison record", func() bool {
		var copies int64
		for _, end := range endOffsets(t, adm, cfg.DLQTopic) {
			copies += end
		}
		return len(duty.records()) == 3 && copies == 1
	})
	if next, _ := delivery.Handed(notification.TopicConcepts, 1); next != in[1].Offset+1 {
		t.Errorf("Handed: %d, want %d", next, in[1].Offset+1)
	}
}

// TestBehindWaitIsBounded: a Behind that never clears holds each poll back behindWait, no more.
func TestBehindWaitIsBounded(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	duty := newRecorder(nil)
	dc := duty.config()
	dc.Role = RoleDeadLetter
	dc.Behind = func(string, int32, int64) bool { return true }
	runConsumer(t, cfg, b.Addr(), dc, prometheus.NewRegistry())
	eventually(t, "assignment", func() bool { return duty.nAssigned() == 6 })
	start := time.Now()
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: notification.TopicConcepts, Partition: 0, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the record handed off despite Behind", func() bool { return len(duty.records()) == 1 })
	if waited := time.Since(start); waited < behindWait/2 {
		t.Errorf("handed off after %v: Behind was not waited for (behindWait %v)", waited, behindWait)
	}
}
