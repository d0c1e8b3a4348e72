package realtime

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// clock is a settable HubConfig.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func counterValue(c interface{ Write(*dto.Metric) error }) int {
	var d dto.Metric
	_ = c.Write(&d)
	return int(d.GetCounter().GetValue())
}

// expiryHub is a hub on one partition "t" whose clock the test moves. With memory the missed
// events come from the history, else from rp (as from Kafka: every record, expired or not).
func expiryHub(t *testing.T, memory bool) (*Hub, *clock, *memReplayer) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	rp := &memReplayer{}
	cfg := HubConfig{Replayer: rp, Now: clk.now}
	if memory {
		cfg.History = HistoryConfig{PerUser: 100, TTL: time.Hour}
	}
	h := NewHub(cfg)
	cc, err := NewCursorCodec("c", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"t": {0: 0}})
	return h, clk, rp
}

// publishTo publishes ev, keeping it in rp as Kafka keeps every record.
func publishTo(h *Hub, rp *memReplayer, ev *notification.Event) {
	rp.mu.Lock()
	rp.records = append(rp.records, ev)
	rp.mu.Unlock()
	h.Publish(ev)
}

// awayAndBack connects alice, publishes first (which she gets), disconnects her, runs away, and
// resumes with her opening cursor and first's ID; it returns the frames of the resumed
// connection once it has want of them (the cursor after the replay included).
func awayAndBack(t *testing.T, h *Hub, rp *memReplayer, away func(), want int) []frameJSON {
	t.Helper()
	first := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", first)
	publishTo(h, rp, event("t", 0, 0, "alice"))
	waitFor(t, "opening cursor and first event", func() bool { return len(first.got()) == 2 })
	cursor := holding(frames(t, first), true)
	c.Close(DisconnectClientGone)
	<-c.Done()
	away()
	back := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: back}, cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { return len(back.got()) >= want })
	return frames(t, back)
}

func frameIDs(fs []frameJSON) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

func expiring(ev *notification.Event, at time.Time) *notification.Event {
	ev.ExpiresAt = at
	return ev
}

func collapsing(ev *notification.Event, key string) *notification.Event {
	ev.CollapseKey = key
	return ev
}

// An event expired when it is published (a consumer catching up) reaches no connection; the next
// one does. Were the expired one queued, it would be the first frame.
func TestExpiredEventIsNotDeliveredLive(t *testing.T) {
	h, clk, _ := expiryHub(t, true)
	tr := newFake(FormatWebSocket, false)
	register(t, h, "alice", tr)
	stale := h.Publish(expiring(event("t", 0, 0, "alice"), clk.now()))
	h.Publish(expiring(event("t", 0, 1, "alice"), clk.now().Add(time.Nanosecond)))
	waitFor(t, "the fresh event", func() bool { return len(tr.got()) >= 2 })
	if ids := frameIDs(eventsOnly(frames(t, tr))); !slices.Equal(ids, []string{"t:0:1"}) || stale.Delivered != 0 {
		t.Errorf("got %v (expired event delivered %d times), want t:0:1 alone", ids, stale.Delivered)
	}
	if n := counterValue(h.m.expired.WithLabelValues(pathLive)); n != 1 {
		t.Errorf("realtime_events_expired_total{path=live} = %d, want 1", n)
	}
}

// An event that expires while its user is away is not replayed, whether the replay comes from
// memory or from Kafka; nor is one that had expired when published.
func TestEventExpiringDuringADisconnectIsNotReplayed(t *testing.T) {
	for _, memory := range []bool{true, false} {
		t.Run(map[bool]string{true: "memory", false: "kafka"}[memory], func(t *testing.T) {
			h, clk, rp := expiryHub(t, memory)
			got := awayAndBack(t, h, rp, func() {
				publishTo(h, rp, expiring(event("t", 0, 1, "alice"), clk.now().Add(time.Minute)))
				publishTo(h, rp, event("t", 0, 2, "alice"))
				publishTo(h, rp, expiring(event("t", 0, 3, "alice"), clk.now().Add(-time.Second)))
				clk.advance(time.Minute)
			}, 2)
			if ids := frameIDs(eventsOnly(got)); !slices.Equal(ids, []string{"t:0:2"}) {
				t.Fatalf("replayed %v, want t:0:2 alone", ids)
			}
			if rp.calls != map[bool]int{true: 0, false: 1}[memory] {
				t.Errorf("%d Kafka reads", rp.calls)
			}
			// The cursor covers the expired t:0:3: resuming with it replays nothing.
			ps, err := h.Codec().Decode(got[1].Cursor)
			if err != nil || !slices.Equal(ps, []Position{{Topic: "t", Partition: 0, Offset: 4}}) {
				t.Errorf("cursor after the replay %v (%v), want t/0 at 4", ps, err)
			}
			if n := counterValue(h.m.expired.WithLabelValues(pathReplay)); n < 1 {
				t.Errorf("realtime_events_expired_total{path=replay} = %d, want at least 1", n)
			}
		})
	}
}

// Ten records with one collapse key, produced while the client is away, replay as the newest
// one; events without a key, or with another, are unaffected; the cursor passes them all.
func TestResumeReplaysTheNewestOfACollapseKey(t *testing.T) {
	for _, memory := range []bool{true, false} {
		t.Run(map[bool]string{true: "memory", false: "kafka"}[memory], func(t *testing.T) {
			h, _, rp := expiryHub(t, memory)
			got := awayAndBack(t, h, rp, func() {
				for i := range 10 {
					publishTo(h, rp, collapsing(event("t", 0, int64(1+2*i), "alice"), "mastery:c1"))
					publishTo(h, rp, event("t", 0, int64(2+2*i), "bob"))
				}
				publishTo(h, rp, collapsing(event("t", 0, 21, "alice"), "mastery:c2"))
				publishTo(h, rp, event("t", 0, 22, "alice", "bob"))
				publishTo(h, rp, event("t", 0, 23, "bob"))
			}, 4)
			if ids := frameIDs(eventsOnly(got)); !slices.Equal(ids, []string{"t:0:19", "t:0:21", "t:0:22"}) {
				t.Fatalf("replayed %v, want t:0:19 (the newest of mastery:c1), t:0:21, t:0:22", ids)
			}
			if n := counterValue(h.m.collapsed); n != 9 {
				t.Errorf("realtime_events_collapsed_total = %d, want 9", n)
			}
			ps, err := h.Codec().Decode(got[3].Cursor)
			if err != nil || !slices.Equal(ps, []Position{{Topic: "t", Partition: 0, Offset: 24}}) {
				t.Errorf("cursor after the replay %v (%v), want t/0 at 24", ps, err)
			}
		})
	}
}

// When every missed event expired or collapsed away, the client still gets a cursor past them,
// so that its next resume does not read them again.
func TestResumeWithNothingLeftToReplayStillMovesTheCursor(t *testing.T) {
	for _, memory := range []bool{true, false} {
		t.Run(map[bool]string{true: "memory", false: "kafka"}[memory], func(t *testing.T) {
			h, clk, rp := expiryHub(t, memory)
			got := awayAndBack(t, h, rp, func() {
				publishTo(h, rp, expiring(event("t", 0, 1, "alice"), clk.now().Add(time.Second)))
				publishTo(h, rp, event("t", 0, 2, "bob"))
				clk.advance(time.Second)
			}, 1)
			if len(got) != 1 || got[0].Event != cursorEvent {
				t.Fatalf("got %+v, want one cursor frame", got)
			}
			ps, err := h.Codec().Decode(got[0].Cursor)
			if err != nil || !slices.Equal(ps, []Position{{Topic: "t", Partition: 0, Offset: 3}}) {
				t.Errorf("cursor %v (%v), want t/0 at 3", ps, err)
			}
		})
	}
}
