package kafka

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFollowReadsFromTheStartThenLive: records produced before Follow starts and after are all
// read, in order per partition, outside any group; EnsureTopic creates the topic compacted
// once, and again is no error.
func TestFollowReadsFromTheStartThenLive(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	c, err := NewClient(cfg, []string{b.Addr()}, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	compact := "compact"
	for range 2 {
		if err := c.EnsureTopic(t.Context(), "presence", map[string]*string{"cleanup.policy": &compact}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := NewAsyncProducer(cfg, []string{b.Addr()}, AsyncConfig{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			p.TryProduce(&kgo.Record{Topic: "presence", Key: []byte("k"), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 5)

	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		done <- Follow(ctx, cfg, []string{b.Addr()}, "presence", testLogger(t), func(r *kgo.Record) {
			mu.Lock()
			got = append(got, string(r.Value))
			mu.Unlock()
		})
	}()
	produce(5, 10)
	eventually(t, "ten records", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 10 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow: %v", err)
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestAsyncProducerRefusesPastItsQueue: with MaxBuffered records waiting, TryProduce fails at
// once with ErrQueueFull and never blocks.
func TestAsyncProducerRefusesPastItsQueue(t *testing.T) {
	cfg := testConfig(t)
	// No broker listens here: records wait in the queue until they time out (3 s).
	p, err := NewAsyncProducer(cfg, []string{"127.0.0.1:1"}, AsyncConfig{MaxBuffered: 3}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var full int
	for range 5 {
		p.TryProduce(&kgo.Record{Topic: "t", Value: []byte("x")}, func(_ *kgo.Record, err error) {
			if errors.Is(err, ErrQueueFull) {
				mu.Lock()
				full++
				mu.Unlock()
			}
		})
	}
	eventually(t, "two records refused as queue full", func() bool { mu.Lock(); defer mu.Unlock(); return full == 2 })
}
