package kafka

import (
	"bytes"
	"context"
	"strconv"
	"sync"
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

// TestCatchingUpDuringALargePoll: CatchingUp is true while a poll of catchUpRecords records or
// more is handed off, false for a single record, and false again catchUpLinger after.
func TestCatchingUpDuringALargePoll(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	var self atomic.Pointer[Consumer]
	var seen sync.Map // value -> CatchingUp when it was handed off
	r := newRecorder(func(rec *kgo.Record) error {
		seen.Store(string(rec.Value), self.Load().CatchingUp())
		return nil
	})
	c, _ := runConsumer(t, cfg, b.Addr(), r.config(), prometheus.NewRegistry())
	self.Store(c)
	eventually(t, "assignment", func() bool { return r.nAssigned() == 6 })

	one := &kgo.Record{Topic: notification.TopicConcepts, Partition: 0, Value: []byte("single")}
	if err := prod.ProduceSync(context.Background(), one).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the single record", func() bool { _, ok := seen.Load("single"); return ok })
	if busy, _ := seen.Load("single"); busy.(bool) {
		t.Error("CatchingUp during a one-record poll")
	}

	burst := make([]*kgo.Record, 2*catchUpRecords)
	for i := range burst {
		burst[i] = &kgo.Record{Topic: notification.TopicConcepts, Partition: 1, Value: []byte("burst-" + strconv.Itoa(i))}
	}
	if err := prod.ProduceSync(context.Background(), burst...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	last := "burst-" + strconv.Itoa(len(burst)-1)
	eventually(t, "the burst", func() bool { _, ok := seen.Load(last); return ok })
	if busy, _ := seen.Load(last); !busy.(bool) {
		t.Errorf("CatchingUp false while a poll of %d records was handed off", len(burst))
	}
	eventually(t, "CatchingUp false after the burst", func() bool { return !c.CatchingUp() })
}
