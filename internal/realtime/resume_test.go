package realtime

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// memReplayer serves replays from a list of records, like the history or Kafka would.
type memReplayer struct {
	mu      sync.Mutex
	records []*notification.Event
	err     error
	calls   int
	from    []Position // of the last call
}

func (m *memReplayer) Replay(_ context.Context, user string, from, to []Position) ([]*notification.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.from = from
	if m.err != nil {
		return nil, m.err
	}
	var out []*notification.Event
	for _, r := range m.records {
		lo, hi := int64(0), int64(-1)
		for _, p := range from {
			if p.Topic == r.Topic && p.Partition == r.Partition {
				lo = p.Offset
			}
		}
		for _, p := range to {
			if p.Topic == r.Topic && p.Partition == r.Partition {
				hi = p.Offset
			}
		}
		if r.Offset >= lo && r.Offset < hi && slices.Contains(r.UserIDs, user) {
			out = append(out, r)
		}
	}
	return out, nil
}

type frameJSON struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Cursor string          `json:"cursor"`
}

func frames(t *testing.T, tr *fakeTransport) []frameJSON {
	t.Helper()
	var out []frameJSON
	for _, f := range tr.got() {
		payload := f[2:]
		if f[1] == 126 {
			payload = f[4:]
		}
		var fr frameJSON
		if err := json.Unmarshal([]byte(payload), &fr); err != nil {
			t.Fatalf("frame %q: %v", f, err)
		}
		out = append(out, fr)
	}
	return out
}

func newResumeHub(t *testing.T, rp Replayer) *Hub {
	t.Helper()
	h := NewHub(HubConfig{Replayer: rp})
	cc, err := NewCursorCodec("cluster", []string{"concept-notifications", "session-notifications"})
	if err != nil {
		t.Fatal(err)
	}
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 0, 1: 0}, "session-notifications": {0: 0}})
	return h
}

// TestResumeDeliversExactlyWhatWasMissedThenLive: a client got concept-notifications:0:5 and
// dropped; 6-8 were published; it resumes with 5's cursor and gets 6, 7, 8 then live events,
// nothing it already had, and its last cursor resumes at the seam.
func TestResumeDeliversExactlyWhatWasMissedThenLive(t *testing.T) {
	rp := &memReplayer{}
	h := newResumeHub(t, rp)
	first := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", first)

	publish := func(topic string, part int32, off int64, users ...string) {
		ev := event(topic, part, off, users...)
		rp.mu.Lock()
		rp.records = append(rp.records, ev)
		rp.mu.Unlock()
		h.Publish(ev)
	}
	for i := range 6 {
		publish("concept-notifications", 0, int64(i), "alice")
		publish("session-notifications", 0, int64(i), "bob")
	}
	waitFor(t, "first six", func() bool { return len(first.got()) == 6 })
	got := frames(t, first)
	cursor := got[5].Cursor
	if got[5].ID != "concept-notifications:0:5" || cursor == "" {
		t.Fatalf("last frame %+v", got[5])
	}
	c.Close(DisconnectClientGone)
	<-c.Done()

	publish("concept-notifications", 0, 6, "alice")
	publish("concept-notifications", 1, 0, "alice", "bob")
	publish("session-notifications", 0, 6, "bob")
	publish("concept-notifications", 0, 7, "alice")
	publish("concept-notifications", 0, 8, "alice")

	second := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: second}, cursor); err != nil {
		t.Fatal(err)
	}
	publish("concept-notifications", 0, 9, "alice") // live, possibly during the replay
	waitFor(t, "replay and live", func() bool { return len(second.got()) == 5 })
	var ids []string
	for _, f := range frames(t, second) {
		ids = append(ids, f.ID)
	}
	slices.Sort(ids[:4]) // replay order across partitions is by time; compare as a set
	want := []string{"concept-notifications:0:6", "concept-notifications:0:7", "concept-notifications:0:8", "concept-notifications:1:0", "concept-notifications:0:9"}
	if !slices.Equal(ids, want) {
		t.Fatalf("resumed connection got %v, want %v", ids, want)
	}

	// Resuming again from the last replayed frame's cursor (before 9) yields 9 alone.
	replayed := frames(t, second)[3]
	third := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: third}, replayed.Cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second resume", func() bool { return len(third.got()) == 1 })
	if f := frames(t, third)[0]; f.ID != "concept-notifications:0:9" {
		t.Errorf("second resume got %s, want concept-notifications:0:9", f.ID)
	}
}

// Each reason has its own message: a malformed cursor is not called one from another cluster.
func TestResumeWithUnusableCursorSendsResyncThenLive(t *testing.T) {
	otherCluster, err := NewCursorCodec("another-cluster", []string{"concept-notifications"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cursor, reason, message string
		replayErr                     error
	}{
		{"garbage", "garbage", "malformed", "cannot be decoded", nil},
		{"event id", "x:7:1", "malformed", "cannot be decoded", nil},
		{"other cluster", otherCluster.Encode([]Position{{"concept-notifications", 0, 0}}), "other-cluster", "another Kafka cluster", nil},
		{"expired", "", "expired", "older than the log start", &ResyncError{Reason: "expired", Detail: "older than the log start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := &memReplayer{err: tc.replayErr}
			h := newResumeHub(t, rp)
			h.Publish(event("concept-notifications", 0, 0, "alice"))
			cursor := tc.cursor
			if cursor == "" { // a valid cursor from before offset 0
				cursor = h.Codec().Encode([]Position{{"concept-notifications", 0, 0}, {"concept-notifications", 1, 0}, {"session-notifications", 0, 0}})
			}
			tr := newFake(FormatWebSocket, false)
			if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cursor); err != nil {
				t.Fatal(err)
			}
			h.Publish(event("concept-notifications", 0, 1, "alice"))
			waitFor(t, "resync and live", func() bool { return len(tr.got()) == 2 })
			got := frames(t, tr)
			if got[0].Event != "resync" || !json.Valid(got[0].Data) {
				t.Fatalf("first frame %+v, want resync", got[0])
			}
			var data struct{ Reason, Message string }
			json.Unmarshal(got[0].Data, &data)
			if data.Reason != tc.reason || !strings.Contains(data.Message, tc.message) {
				t.Errorf("resync reason %q message %q, want %q with a message containing %q", data.Reason, data.Message, tc.reason, tc.message)
			}
			if got[0].Cursor == "" {
				t.Error("resync carries no cursor to continue from")
			}
			if got[1].ID != "concept-notifications:0:1" {
				t.Errorf("then %s, want the live event", got[1].ID)
			}
		})
	}
}

// A cursor ahead of this node (it came from a node further along) must not get the events below
// it again as live events.
func TestResumeOnANodeBehindTheCursorSkipsWhatTheClientHas(t *testing.T) {
	rp := &memReplayer{}
	h := newResumeHub(t, rp)
	cursor := h.Codec().Encode([]Position{{"concept-notifications", 0, 3}, {"concept-notifications", 1, 0}, {"session-notifications", 0, 0}})
	tr := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cursor); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		h.Publish(event("concept-notifications", 0, int64(i), "alice"))
	}
	waitFor(t, "live events from the cursor on", func() bool { return len(tr.got()) == 2 })
	var ids []string
	for _, f := range frames(t, tr) {
		ids = append(ids, f.ID)
	}
	if !slices.Equal(ids, []string{"concept-notifications:0:3", "concept-notifications:0:4"}) {
		t.Errorf("got %v", ids)
	}
	if rp.calls != 0 {
		t.Errorf("replayer called %d times for a cursor ahead of the node", rp.calls)
	}
}

// TestQuietUserCursorStaysFresh: a user who gets no events still gets the hub's position on
// keepalive ticks, so resuming from it needs no replay; the frame is exact: an event published
// after it follows it.
func TestQuietUserCursorStaysFresh(t *testing.T) {
	rp := &memReplayer{}
	h := newResumeHub(t, rp)
	tr := newFake(FormatWebSocket, false)
	c := register(t, h, "quiet", tr)
	publish := func(ev *notification.Event) {
		rp.mu.Lock()
		rp.records = append(rp.records, ev)
		rp.mu.Unlock()
		h.Publish(ev)
	}
	for i := range 5 {
		publish(event("concept-notifications", 0, int64(i), "busy"))
	}
	c.SendCursor()
	c.SendCursor() // nothing new: no second frame
	publish(event("concept-notifications", 0, 5, "quiet"))
	waitFor(t, "cursor and event", func() bool { return len(tr.got()) == 2 })
	got := frames(t, tr)
	if got[0].Event != "cursor" || got[0].ID != "" || got[0].Cursor == "" || got[1].ID != "concept-notifications:0:5" {
		t.Fatalf("frames %+v, want a cursor frame then the event", got)
	}
	c.Close(DisconnectClientGone)
	<-c.Done()

	again := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "quiet", Transport: again}, got[0].Cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed event", func() bool { return len(again.got()) == 1 })
	if f := frames(t, again)[0]; f.ID != "concept-notifications:0:5" {
		t.Errorf("resume from the fresh cursor got %+v", f)
	}
	// The replay read from the fresh cursor on: the five records before it were not in range.
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.from[0].Offset != 5 {
		t.Errorf("replay read from %v, want partition 0 from offset 5", rp.from)
	}
}

func TestShutdownSendsTheFinalCursorBeforeClosing(t *testing.T) {
	h := newResumeHub(t, nil)
	tr := newFake(FormatWebSocket, false)
	register(t, h, "alice", tr)
	h.Publish(event("concept-notifications", 0, 0, "bob"))
	// As in the service: the consumer leaves its group first, revoking every partition.
	h.Revoked(map[string][]int32{"concept-notifications": {0, 1}, "session-notifications": {0}})
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := tr.got()
	if len(got) != 2 || got[1] != "close 1001 server shutting down" || !strings.Contains(got[0], `"event":"cursor"`) {
		t.Fatalf("frames %q, want the final cursor then the 1001 close", got)
	}
}

func TestCursorFrameOnSSEIsAnIDLineAlone(t *testing.T) {
	if got := string(Control{Event: "cursor", Cursor: "abc"}.Frame(FormatSSE)); got != "id: abc\n\n" {
		t.Errorf("SSE cursor frame %q", got)
	}
	if got := string(Control{Event: "cursor", Cursor: "abc"}.Frame(FormatSocketIO)); got != `42["cursor",null,"abc"]` {
		t.Errorf("Socket.IO cursor frame %q", got)
	}
}

// TestSocketIOPlainFrames: without the cursor argument an event's arguments are exactly its data,
// and its cursor follows in a cursor packet, after the Engine.IO record separator; controls too.
func TestSocketIOPlainFrames(t *testing.T) {
	ev := NewEvent(&notification.Event{Name: "concept-mastered", Data: []byte(`{"a":1}`), Time: time.Now()})
	ev.Cursor = "c1"
	if got := string(ev.Frame(FormatSocketIOPlain)); got != `42["concept-mastered",{"a":1}]`+"\x1e"+`42["cursor","c1"]` {
		t.Errorf("event frame %q", got)
	}
	if got := string(ev.Frame(FormatSocketIO)); got != `42["concept-mastered",{"a":1},"c1"]` {
		t.Errorf("the shared FormatSocketIO frame changed: %q", got)
	}
	if got := string(Control{Event: "cursor", Cursor: "abc"}.Frame(FormatSocketIOPlain)); got != `42["cursor","abc"]` {
		t.Errorf("cursor frame %q", got)
	}
	resync := Control{Event: "resync", Data: map[string]string{"reason": "expired"}, Cursor: "c2"}
	if got := string(resync.Frame(FormatSocketIOPlain)); got != `42["resync",{"reason":"expired"}]`+"\x1e"+`42["cursor","c2"]` {
		t.Errorf("resync frame %q", got)
	}
	if got := string(Control{Event: "resync", Data: nil}.Frame(FormatSocketIOPlain)); got != `42["resync",null]` {
		t.Errorf("control without a cursor %q", got)
	}
}

// TestResumeOnStartingNodeWaitsForAssignment: a client resumes on a node that has not joined
// its consumer group yet (a new node starts at the end of each partition). The resume waits for
// the assignment and replays what lies between the cursor and where the node starts; before
// the fix it replayed nothing and the events in between were lost.
func TestResumeOnStartingNodeWaitsForAssignment(t *testing.T) {
	rp := &memReplayer{}
	for off := range 8 {
		rp.records = append(rp.records, event("concept-notifications", 0, int64(off), "alice"))
	}
	old := newResumeHub(t, rp)
	c := register(t, old, "alice", newFake(FormatWebSocket, false))
	var cursor string
	for _, ev := range rp.records[:3] {
		cursor = old.Publish(ev).Cursor
	}
	c.Close(DisconnectClientGone)

	h := NewHub(HubConfig{Replayer: rp})
	h.SetCursorCodec(old.Codec())
	tr := newFake(FormatWebSocket, false)
	attached := make(chan error, 1)
	go func() {
		_, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cursor)
		attached <- err
	}()
	select {
	case err := <-attached:
		t.Fatalf("Attach returned before the node was assigned its partitions (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 6, 1: 0}, "session-notifications": {0: 0}})
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	h.Publish(rp.records[6])
	h.Publish(rp.records[7])
	waitFor(t, "replay and live", func() bool { return len(tr.got()) == 5 })
	var ids []string
	for _, f := range frames(t, tr) {
		ids = append(ids, f.ID)
	}
	want := []string{"concept-notifications:0:3", "concept-notifications:0:4", "concept-notifications:0:5", "concept-notifications:0:6", "concept-notifications:0:7"}
	if !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
}

// TestResumeOnNodeNeverAssignedResyncs: past AssignWait the client is told plainly (resync,
// reason unavailable) instead of being left without the events it missed.
func TestResumeOnNodeNeverAssignedResyncs(t *testing.T) {
	old := newResumeHub(t, &memReplayer{})
	cursor := old.Publish(event("concept-notifications", 0, 0, "alice")).Cursor
	h := NewHub(HubConfig{Replayer: &memReplayer{}, AssignWait: 20 * time.Millisecond})
	h.SetCursorCodec(old.Codec())
	tr := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resync", func() bool { return len(tr.got()) == 1 })
	f := frames(t, tr)[0]
	if f.Event != "resync" || !strings.Contains(string(f.Data), `"unavailable"`) {
		t.Fatalf("got %+v, want a resync event with reason unavailable", f)
	}
}

// checkingReplayer is a memReplayer that knows where each partition's log ends.
type checkingReplayer struct {
	memReplayer
	end int64
}

func (c *checkingReplayer) CheckPositions(_ context.Context, ps []Position) error {
	for _, p := range ps {
		if p.Offset > c.end {
			return &ResyncError{Reason: "ahead-of-log", Detail: "beyond the log"}
		}
	}
	return nil
}

// TestCursorAheadOfTheLogResyncsAndKeepsLiveEvents: a cursor with offsets beyond Kafka's log
// (forged, or from a recreated topic) must get a resync, and the live events after it must not
// be skipped as "already had".
func TestCursorAheadOfTheLogResyncsAndKeepsLiveEvents(t *testing.T) {
	rp := &checkingReplayer{end: 3}
	h := NewHub(HubConfig{Replayer: rp, AssignWait: time.Hour})
	cc, err := NewCursorCodec("cluster", []string{"concept-notifications", "session-notifications"})
	if err != nil {
		t.Fatal(err)
	}
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 3, 1: 0}, "session-notifications": {0: 0}})
	forged := cc.Encode([]Position{{"concept-notifications", 0, 1_000_000}, {"concept-notifications", 1, 0}, {"session-notifications", 0, 0}})
	tr := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, forged); err != nil {
		t.Fatal(err)
	}
	h.Publish(event("concept-notifications", 0, 3, "alice"))
	waitFor(t, "resync and the live event", func() bool { return len(tr.got()) == 2 })
	got := frames(t, tr)
	if got[0].Event != "resync" || !strings.Contains(string(got[0].Data), "ahead-of-log") || got[1].ID != "concept-notifications:0:3" {
		t.Fatalf("got %+v, want a resync (ahead-of-log) then concept-notifications:0:3", got)
	}
}

// TestCursorNamingAPartitionThisNodeLacksResyncsAtOnce: a cursor naming partition 99 of a topic
// the node consumes does not wait for an assignment that will never come.
func TestCursorNamingAPartitionThisNodeLacksResyncsAtOnce(t *testing.T) {
	h := NewHub(HubConfig{Replayer: &memReplayer{}, AssignWait: time.Hour})
	cc, err := NewCursorCodec("cluster", []string{"concept-notifications"})
	if err != nil {
		t.Fatal(err)
	}
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 0}})
	tr := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cc.Encode([]Position{{"concept-notifications", 99, 5}})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resync", func() bool { return len(tr.got()) == 1 })
	if f := frames(t, tr)[0]; f.Event != "resync" || !strings.Contains(string(f.Data), "no partition 99") {
		t.Fatalf("got %+v, want a resync naming partition 99", f)
	}
}

// stalledReplayer is a Kafka read that lasts until the connection closes.
type stalledReplayer struct{ started chan struct{} }

func (s *stalledReplayer) Replay(ctx context.Context, _ string, _, _ []Position) ([]*notification.Event, error) {
	close(s.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestShutdownDuringAReplayLeavesTheClientItsCursor: a node shutting down while a resume's
// replay runs must not flush the live events queued meanwhile (nor a cursor frame): their
// cursors lie past the events still being replayed, so a client that got them would resume
// past those and never receive them. It gets the close frame alone and keeps its cursor.
func TestShutdownDuringAReplayLeavesTheClientItsCursor(t *testing.T) {
	rp := &stalledReplayer{started: make(chan struct{})}
	h := newResumeHub(t, rp)
	first := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", first)
	h.Publish(event("concept-notifications", 0, 0, "alice"))
	waitFor(t, "the first event", func() bool { return len(first.got()) == 1 })
	cursor := frames(t, first)[0].Cursor
	c.Close(DisconnectClientGone)
	<-c.Done()
	h.Publish(event("concept-notifications", 0, 1, "alice")) // missed
	h.Publish(event("concept-notifications", 0, 2, "alice")) // missed

	second := newFake(FormatWebSocket, false)
	c2, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: second}, cursor)
	if err != nil {
		t.Fatal(err)
	}
	<-rp.started
	h.Publish(event("concept-notifications", 0, 3, "alice")) // live, during the replay
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
	<-c2.Done()
	got := second.got()
	if len(got) != 1 || !strings.Contains(got[0], "server shutting down") {
		t.Fatalf("got %q, want only the 1001 close frame", got)
	}
}
