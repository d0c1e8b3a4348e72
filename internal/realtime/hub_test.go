package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// fakeTransport records what a connection would have written. With block set, WriteFrames waits
// until Close: a client that never reads.
type fakeTransport struct {
	format Format
	block  bool

	mu     sync.Mutex
	frames [][]byte
	closed chan struct{}
	once   sync.Once
	writes chan struct{} // signalled after each write
}

func newFake(f Format, block bool) *fakeTransport {
	return &fakeTransport{format: f, block: block, closed: make(chan struct{}), writes: make(chan struct{}, 1)}
}

func (t *fakeTransport) Format() Format { return t.format }

func (t *fakeTransport) WriteFrames(frames [][]byte) error {
	if t.block {
		<-t.closed
		return fmt.Errorf("closed")
	}
	t.mu.Lock()
	for _, f := range frames {
		t.frames = append(t.frames, slices.Clone(f))
	}
	t.mu.Unlock()
	select {
	case t.writes <- struct{}{}:
	default:
	}
	return nil
}

func (t *fakeTransport) CloseFrame(d Disconnect) []byte {
	return []byte(fmt.Sprintf("close %d %s", d.Code, d.Reason))
}

func (t *fakeTransport) Close() { t.once.Do(func() { close(t.closed) }) }

func (t *fakeTransport) got() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, len(t.frames))
	for i, f := range t.frames {
		out[i] = string(f)
	}
	return out
}

// eventIDs decodes the JSON frames a FormatSocketIO-less fake got (they are WebSocket frames:
// strip the header) and returns their ids; non-event frames are returned verbatim.
func eventIDs(t *testing.T, frames []string) []string {
	t.Helper()
	var ids []string
	for _, f := range frames {
		if len(f) > 2 && f[0] == 0x81 {
			payload := f[2:]
			if f[1] == 126 {
				payload = f[4:]
			}
			var fr struct{ ID string }
			if err := json.Unmarshal([]byte(payload), &fr); err != nil {
				t.Fatalf("frame %q: %v", f, err)
			}
			ids = append(ids, fr.ID)
			continue
		}
		ids = append(ids, f)
	}
	return ids
}

func event(topic string, partition int32, offset int64, users ...string) *notification.Event {
	return &notification.Event{
		Name: "concept-mastered", Topic: topic, Partition: partition, Offset: offset,
		Time: time.Unix(1700000000, 0), UserIDs: users, Data: []byte(`{"conceptId":"c1"}`),
	}
}

// waitFor polls cond until it holds or a generous deadline passes (no timing is asserted).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func register(t *testing.T, h *Hub, user string, tr Transport) *Conn {
	t.Helper()
	c, _, err := h.Register(ConnOptions{User: user, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPublishReachesEveryConnectionOfNamedUsersOnly(t *testing.T) {
	h := NewHub(HubConfig{})
	a1, a2 := newFake(FormatWebSocket, false), newFake(FormatWebSocket, false)
	b, c := newFake(FormatWebSocket, false), newFake(FormatWebSocket, false)
	register(t, h, "alice", a1)
	register(t, h, "alice", a2)
	register(t, h, "bob", b)
	register(t, h, "carol", c)

	h.Publish(event("concept-notifications", 0, 1, "alice", "bob"))
	h.Publish(event("concept-notifications", 0, 2, "carol"))
	h.Publish(event("concept-notifications", 0, 3, "nobody-connected"))

	for name, tc := range map[string]struct {
		tr   *fakeTransport
		want []string
	}{
		"alice 1": {a1, []string{"concept-notifications:0:1"}},
		"alice 2": {a2, []string{"concept-notifications:0:1"}},
		"bob":     {b, []string{"concept-notifications:0:1"}},
		"carol":   {c, []string{"concept-notifications:0:2"}},
	} {
		waitFor(t, name, func() bool { return len(tc.tr.got()) >= len(tc.want) })
		time.Sleep(10 * time.Millisecond) // let any wrong extra frame arrive before comparing
		if got := eventIDs(t, tc.tr.got()); !slices.Equal(got, tc.want) {
			t.Errorf("%s got %v, want %v", name, got, tc.want)
		}
	}
}

func TestClosingOneConnectionLeavesTheUsersOthers(t *testing.T) {
	h := NewHub(HubConfig{})
	keep, gone := newFake(FormatWebSocket, false), newFake(FormatWebSocket, false)
	register(t, h, "alice", keep)
	c := register(t, h, "alice", gone)
	c.Close(DisconnectClientGone)
	<-c.Done()

	h.Publish(event("t", 0, 7, "alice"))
	waitFor(t, "delivery", func() bool { return len(keep.got()) == 1 })
	if got := eventIDs(t, keep.got()); !slices.Equal(got, []string{"t:0:7"}) {
		t.Errorf("remaining connection got %v", got)
	}
	for _, f := range gone.got() {
		if f != "close 1000 client gone" {
			t.Errorf("closed connection got %q after its close frame", f)
		}
	}
	if n := h.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}
}

func TestSlowConnectionIsClosedAndOthersGetEverythingInOrder(t *testing.T) {
	h := NewHub(HubConfig{SendQueueBytes: 4 << 10})
	stuck := newFake(FormatWebSocket, true) // never reads
	fast := newFake(FormatWebSocket, false)
	sc := register(t, h, "alice", stuck)
	register(t, h, "alice", fast)

	// ~100 bytes a frame, far past a 4 KiB queue in all; published in chunks the fast
	// connection's queue holds, so that only the stuck one overflows.
	const n, chunk = 500, 10
	for i := 0; i < n; i += chunk {
		for j := i; j < i+chunk; j++ {
			h.Publish(event("t", 0, int64(j), "alice"))
		}
		waitFor(t, "the chunk", func() bool { return len(fast.got()) == i+chunk })
	}
	select {
	case <-sc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck connection was not closed")
	}
	if sc.Reason() != DisconnectSlow {
		t.Errorf("reason = %+v, want DisconnectSlow", sc.Reason())
	}
	waitFor(t, "all frames on the fast connection", func() bool { return len(fast.got()) == n })
	ids := eventIDs(t, fast.got())
	for i, id := range ids {
		if want := fmt.Sprintf("t:0:%d", i); id != want {
			t.Fatalf("frame %d is %s, want %s", i, id, want)
		}
	}
}

func TestShutdownFlushesQueuedFramesThenClosesWithGoingAway(t *testing.T) {
	h := NewHub(HubConfig{})
	tr := newFake(FormatWebSocket, false)
	register(t, h, "alice", tr)
	h.Publish(event("t", 0, 1, "alice"))
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := tr.got()
	if len(got) != 2 || got[1] != "close 1001 server shutting down" {
		t.Fatalf("frames = %q, want the event then the 1001 close", got)
	}
	if _, _, err := h.Register(ConnOptions{User: "bob", Transport: newFake(FormatWebSocket, false)}); err != ErrShuttingDown {
		t.Errorf("Register after Shutdown: err = %v, want ErrShuttingDown", err)
	}
}

func TestTokenExpiryClosesTheConnection(t *testing.T) {
	h := NewHub(HubConfig{})
	tr := newFake(FormatWebSocket, false)
	exp := time.Now().Add(time.Hour)
	c, _, err := h.Register(ConnOptions{User: "alice", Transport: tr, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExpireIfDue(exp.Add(-time.Second)) {
		t.Fatal("expired before its time")
	}
	if !c.ExpireIfDue(exp) {
		t.Fatal("not expired at its time")
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not closed at expiry")
	}
	if c.Reason() != DisconnectTokenExpired {
		t.Errorf("reason = %+v", c.Reason())
	}
}

// TestConcurrentPublishersAndConnections runs under -race: publishers on several partitions,
// users with several connections coming and going; each connection must see each partition's
// events in offset order and only its user's.
func TestConcurrentPublishersAndConnections(t *testing.T) {
	h := NewHub(HubConfig{})
	users := []string{"u0", "u1", "u2", "u3"}
	type sub struct {
		user string
		tr   *fakeTransport
	}
	var subs []sub
	for _, u := range users {
		for range 3 {
			tr := newFake(FormatWebSocket, false)
			register(t, h, u, tr)
			subs = append(subs, sub{u, tr})
		}
	}
	var wg sync.WaitGroup
	const perPartition = 300
	for p := range 4 {
		wg.Go(func() {
			for i := range perPartition {
				h.Publish(event("t", int32(p), int64(i), users[(p+i)%len(users)], users[(p+i+1)%len(users)]))
			}
		})
	}
	wg.Go(func() { // churn: connections of a fifth user come and go
		for range 200 {
			c := register(t, h, "u4", newFake(FormatWebSocket, false))
			c.Close(DisconnectClientGone)
		}
	})
	wg.Wait()

	for _, s := range subs {
		want := 0
		for p := range 4 {
			for i := range perPartition {
				if users[(p+i)%len(users)] == s.user || users[(p+i+1)%len(users)] == s.user {
					want++
				}
			}
		}
		waitFor(t, "deliveries to "+s.user, func() bool { return len(s.tr.got()) == want })
		last := map[string]int{}
		for _, id := range eventIDs(t, s.tr.got()) {
			var topic string
			var p, off int
			fmt.Sscanf(id, "t:%d:%d", &p, &off)
			topic = fmt.Sprint(p)
			if users[(p+off)%len(users)] != s.user && users[(p+off+1)%len(users)] != s.user {
				t.Fatalf("%s got %s, addressed to others", s.user, id)
			}
			if prev, ok := last[topic]; ok && off <= prev {
				t.Fatalf("%s got partition %d out of order: %d after %d", s.user, p, off, prev)
			}
			last[topic] = off
		}
	}
}

// writeCounter counts WriteFrames calls and frames.
type writeCounter struct {
	mu             sync.Mutex
	writes, frames int
}

func (w *writeCounter) Format() Format               { return FormatWebSocket }
func (w *writeCounter) CloseFrame(Disconnect) []byte { return nil }
func (w *writeCounter) Close()                       {}
func (w *writeCounter) WriteFrames(f [][]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	w.frames += len(f)
	return nil
}

func (w *writeCounter) counts() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.frames
}

func TestBatchedPublishWritesOncePerFlush(t *testing.T) {
	h := NewHub(HubConfig{Batched: true})
	a, b := &writeCounter{}, &writeCounter{}
	register(t, h, "alice", a)
	register(t, h, "bob", b)
	for i := range 50 {
		h.Publish(event("t", 0, int64(i), "alice", "bob"))
	}
	time.Sleep(20 * time.Millisecond) // nothing may be written before Flush
	if w, _ := a.counts(); w != 0 {
		t.Fatalf("%d writes before Flush", w)
	}
	h.Flush()
	for _, tr := range []*writeCounter{a, b} {
		waitFor(t, "the batch", func() bool { _, f := tr.counts(); return f == 50 })
		if w, _ := tr.counts(); w != 1 {
			t.Errorf("%d writes for one batch, want 1", w)
		}
	}
}

// TestConnectionLimitIsExactUnderConcurrency: the per-user limit is enforced at the insert, so
// connects racing each other cannot pass it, and other users are unaffected.
func TestConnectionLimitIsExactUnderConcurrency(t *testing.T) {
	h := NewHub(HubConfig{MaxConnsPerUser: 5})
	var wg sync.WaitGroup
	var ok, refused atomic.Int32
	for range 50 {
		wg.Go(func() {
			_, _, err := h.Register(ConnOptions{User: "alice", Transport: newFake(FormatWebSocket, false)})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrTooManyConnections):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || refused.Load() != 45 || h.UserConnections("alice") != 5 {
		t.Fatalf("%d registered, %d refused, %d held; want 5, 45, 5", ok.Load(), refused.Load(), h.UserConnections("alice"))
	}
	if _, _, err := h.Register(ConnOptions{User: "bob", Transport: newFake(FormatWebSocket, false)}); err != nil {
		t.Fatalf("bob: %v", err)
	}
}
