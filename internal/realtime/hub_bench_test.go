package realtime

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/realtime-service/realtime-service/internal/stage"
)

// discard is a transport that writes nowhere, counting frames: the hub's own cost.
type discard struct{ frames atomic.Int64 }

func (d *discard) Format() Format               { return FormatWebSocket }
func (d *discard) WriteFrames(f [][]byte) error { d.frames.Add(int64(len(f))); return nil }
func (d *discard) CloseFrame(Disconnect) []byte { return nil }
func (d *discard) Close()                       {}

// benchFanout publishes events naming every one of users users, each with one connection, and
// reports deliveries per second of the hub alone (framing, lookup, queueing, writer wake-ups).
func benchFanout(b *testing.B, users int, history int) {
	benchFanoutConfig(b, HubConfig{History: HistoryConfig{PerUser: history}}, users)
}

func benchFanoutConfig(b *testing.B, cfg HubConfig, users int) {
	h := NewHub(cfg)
	cc, _ := NewCursorCodec("c", []string{"t"})
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"t": {0: 0, 1: 0, 2: 0}})
	ids := make([]string, users)
	tr := &discard{}
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%d", i)
		if _, _, err := h.Register(ConnOptions{User: ids[i], Transport: tr}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		n := event("t", int32(i%3), int64(i), ids...)
		h.Publish(n)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*users)/b.Elapsed().Seconds(), "deliveries/s")
}

func BenchmarkPublishToOneUser(b *testing.B)            { benchFanout(b, 1, 100) }
func BenchmarkPublishTo1000Users(b *testing.B)          { benchFanout(b, 1000, 100) }
func BenchmarkPublishTo1000UsersNoHistory(b *testing.B) { benchFanout(b, 1000, 0) }

// BenchmarkPublishTo1000UsersStages is BenchmarkPublishTo1000Users with the stages timed (package
// stage): what realtime_stage_seconds costs the fan-out.
func BenchmarkPublishTo1000UsersStages(b *testing.B) {
	st, err := stage.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	benchFanoutConfig(b, HubConfig{History: HistoryConfig{PerUser: 100}, Stages: st}, 1000)
}

// BenchmarkPublishToOneUserStages is BenchmarkPublishToOneUser with the stages timed.
func BenchmarkPublishToOneUserStages(b *testing.B) {
	st, err := stage.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	benchFanoutConfig(b, HubConfig{History: HistoryConfig{PerUser: 100}, Stages: st}, 1)
}

// benchDeliverBuilt hands one event whose frame is built already to every connection of users
// users (one each), as Publish does under its lock with HubConfig.Batched (the server's setting),
// then Flush starts their writers: the cost of a delivery apart from decoding and framing.
// allocs/op over users is the allocations per delivery.
func benchDeliverBuilt(b *testing.B, users int) {
	// A queue bound no writer lag reaches: the benchmark floods faster than a client would.
	h := NewHub(HubConfig{Batched: true, SendQueueBytes: 1 << 28})
	tr := &discard{}
	conns := make([]*Conn, users)
	for i := range conns {
		c, _, err := h.Register(ConnOptions{User: fmt.Sprintf("user-%d", i), Transport: tr})
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	ev := NewEvent(event("t", 0, 1, "user-0"))
	ev.Frame(FormatWebSocket)
	b.ReportAllocs()
	for b.Loop() {
		h.pubMu.Lock()
		for _, c := range conns {
			queued, overflow, wake := c.deliver(ev, true, 0)
			if !queued || overflow {
				b.Fatalf("not queued (overflow %v)", overflow)
			}
			if wake {
				h.waiting = append(h.waiting, c)
			}
		}
		h.pubMu.Unlock()
		h.Flush()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*users)/b.Elapsed().Seconds(), "deliveries/s")
	_ = h.Shutdown(b.Context())
}

func BenchmarkDeliverBuiltFrameTo1(b *testing.B)    { benchDeliverBuilt(b, 1) }
func BenchmarkDeliverBuiltFrameTo1000(b *testing.B) { benchDeliverBuilt(b, 1000) }
