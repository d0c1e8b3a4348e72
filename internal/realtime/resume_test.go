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

// eventsOnly drops the cursor control frames from fs.
func eventsOnly(fs []frameJSON) []frameJSON {
	return slices.DeleteFunc(slices.Clone(fs), func(f frameJSON) bool { return f.Event == cursorEvent })
}

func idsOf(fs []frameJSON) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

// holding is the resume token a client that got fs holds, as docs/client-protocol.md asks it to
// keep one: its last cursor and, withIDs, "~" and the IDs of the events it got after it.
func holding(fs []frameJSON, withIDs bool) string {
	cursor, ids := "", []string(nil)
	for _, f := range fs {
		switch {
		case f.Cursor != "":
			cursor, ids = f.Cursor, nil
		case f.ID != "":
			ids = append(ids, f.ID)
		}
	}
	if withIDs && len(ids) > 0 {
		return cursor + "~" + strings.Join(ids, ",")
	}
	return cursor
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

// TestResumeDeliversExactlyWhatWasMissedThenLive: a client got its opening cursor and events
// concept-notifications:0:0-5, and dropped; 6-8 were published; it resumes with its cursor and
// the IDs it got after it, and gets 6, 7, 8, then a cursor, then live events, nothing it already
// had; the cursor after the replay resumes at the seam. Without the IDs it gets the six again
// (fewer than HubConfig.CursorEvery), never fewer.
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
	waitFor(t, "opening cursor and first six", func() bool { return len(first.got()) == 7 })
	got := frames(t, first)
	if got[0].Event != cursorEvent || got[0].Cursor == "" || got[6].ID != "concept-notifications:0:5" {
		t.Fatalf("frames %+v, want the opening cursor then six events", got)
	}
	for _, f := range got[1:] {
		if f.Cursor != "" {
			t.Fatalf("event frame %+v carries a cursor", f)
		}
	}
	cursor := holding(got, true)
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
	waitFor(t, "replay, cursor and live", func() bool { return len(second.got()) == 6 })
	got2 := frames(t, second)
	ids := idsOf(eventsOnly(got2))
	slices.Sort(ids[:4]) // replay order across partitions is by time; compare as a set
	want := []string{"concept-notifications:0:6", "concept-notifications:0:7", "concept-notifications:0:8", "concept-notifications:1:0", "concept-notifications:0:9"}
	if !slices.Equal(ids, want) {
		t.Fatalf("resumed connection got %v, want %v", ids, want)
	}
	if got2[4].Event != cursorEvent {
		t.Fatalf("frame 5 is %+v, want the cursor after the replayed events", got2[4])
	}

	// Resuming again from the cursor after the replay (before 9) yields 9 alone.
	third := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: third}, got2[4].Cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second resume", func() bool { return len(third.got()) == 2 })
	if ids := idsOf(eventsOnly(frames(t, third))); !slices.Equal(ids, []string{"concept-notifications:0:9"}) {
		t.Errorf("second resume got %v, want concept-notifications:0:9", ids)
	}

	// Without the IDs: the six events after the opening cursor come again, then the rest.
	fourth := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: fourth}, holding(got, false)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resume without IDs", func() bool { return len(fourth.got()) == 12 })
	if n := len(eventsOnly(frames(t, fourth))); n != 11 {
		t.Errorf("resume without IDs got %d events, want the 6 it had and the 5 it missed", n)
	}
}

// TestOpeningCursorResumesAClientThatGotNothing: the first frame of a connection is a cursor, so
// a client that drops before any event resumes exactly (issue: it had nothing to send back and
// lost what was published while it was away).
func TestOpeningCursorResumesAClientThatGotNothing(t *testing.T) {
	rp := &memReplayer{}
	h := newResumeHub(t, rp)
	publish := func(off int64) {
		ev := event("concept-notifications", 0, off, "alice")
		rp.mu.Lock()
		rp.records = append(rp.records, ev)
		rp.mu.Unlock()
		h.Publish(ev)
	}
	publish(0) // before the connection: not to be replayed
	tr := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", tr)
	waitFor(t, "the opening cursor", func() bool { return len(tr.got()) == 1 })
	held := holding(frames(t, tr), true)
	c.Close(DisconnectClientGone)
	<-c.Done()
	for off := range int64(3) {
		publish(off + 1)
	}
	again := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: again}, held); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed events", func() bool { return len(again.got()) == 4 })
	want := []string{"concept-notifications:0:1", "concept-notifications:0:2", "concept-notifications:0:3"}
	if ids := idsOf(eventsOnly(frames(t, again))); !slices.Equal(ids, want) {
		t.Errorf("got %v, want %v", ids, want)
	}
}

// TestCursorFrameEveryNEvents: after HubConfig.CursorEvery events a connection gets a cursor
// frame of the hub's position right after the last of them; the client asks for one with
// RequestCursor (the /v1/ws {"type":"cursor"} message) and gets it even when nothing moved.
func TestCursorFrameEveryNEvents(t *testing.T) {
	h := NewHub(HubConfig{CursorEvery: 3})
	cc, _ := NewCursorCodec("cluster", []string{"concept-notifications"})
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 0, 1: 0}})
	tr := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", tr)
	for off := range int64(7) {
		h.Publish(event("concept-notifications", 0, 2*off, "alice"))
		h.Publish(event("concept-notifications", 0, 2*off+1, "bob")) // moves the position, not alice's count
	}
	c.RequestCursor()
	c.RequestCursor()
	waitFor(t, "frames", func() bool { return len(tr.got()) == 12 })
	got := frames(t, tr)
	var kinds []string
	for _, f := range got {
		kinds = append(kinds, f.Event)
	}
	want := []string{"cursor", "n", "n", "n", "cursor", "n", "n", "n", "cursor", "n", "cursor", "cursor"}
	for i := range want {
		if want[i] == "n" {
			want[i] = "concept-mastered"
		}
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("frames %v, want %v", kinds, want)
	}
	// The cursor right after the third event (offset 4), before bob's at 5.
	ps, err := cc.Decode(got[4].Cursor)
	wantPs := []Position{{"concept-notifications", 0, 5}, {"concept-notifications", 1, 0}}
	if err != nil || !slices.Equal(ps, wantPs) {
		t.Errorf("cursor after 3 events = %v, %v; want %v", ps, err, wantPs)
	}
	if got[10].Cursor != got[11].Cursor {
		t.Error("two cursors asked for with nothing between differ")
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
	waitFor(t, "live events from the cursor on", func() bool { return len(tr.got()) == 3 })
	got := frames(t, tr)
	if ids := idsOf(eventsOnly(got)); !slices.Equal(ids, []string{"concept-notifications:0:3", "concept-notifications:0:4"}) {
		t.Errorf("got %v", ids)
	}
	// The opening cursor is the client's own, not this node's (which is behind it).
	if got[0].Event != cursorEvent || got[0].Cursor != cursor {
		t.Errorf("opening cursor %+v, want the client's %q", got[0], cursor)
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
	waitFor(t, "cursors and event", func() bool { return len(tr.got()) == 3 })
	got := frames(t, tr)
	if got[0].Event != "cursor" || got[1].Event != "cursor" || got[1].ID != "" || got[1].Cursor == got[0].Cursor || got[2].ID != "concept-notifications:0:5" {
		t.Fatalf("frames %+v, want the opening cursor, a fresh cursor frame, then the event", got)
	}
	c.Close(DisconnectClientGone)
	<-c.Done()

	again := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "quiet", Transport: again}, got[1].Cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed event", func() bool { return len(again.got()) == 2 })
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
	if len(got) != 3 || got[2] != "close 1001 server shutting down" || !strings.Contains(got[1], `"event":"cursor"`) || got[0] == got[1] {
		t.Fatalf("frames %q, want the opening cursor, the final cursor, then the 1001 close", got)
	}
}

// TestCursorFrameOnSSE: the id line is the cursor (the browser's Last-Event-ID); the data says
// it is a cursor frame without repeating it.
func TestCursorFrameOnSSE(t *testing.T) {
	got := string(Control{Event: "cursor", Cursor: "abc"}.Frame(FormatSSE))
	if !strings.HasPrefix(got, "id: abc\ndata: {\"id\":\"\",\"event\":\"cursor\",\"data\":null,\"time\":\"") || !strings.HasSuffix(got, "\"}\n\n") || strings.Count(got, "abc") != 1 {
		t.Errorf("SSE cursor frame %q", got)
	}
	if got := string(Control{Event: "cursor", Cursor: "abc"}.Frame(FormatSocketIO)); got != `42["cursor",null,"abc"]` {
		t.Errorf("Socket.IO cursor frame %q", got)
	}
}

// TestSocketIOPlainFrames: without the trailing argument an event's arguments are exactly its
// data, and its ID follows in a cursor packet, after the Engine.IO record separator; a control
// frame's cursor too. With it, the ID is an object (socket.io-client keeps only a string last
// argument as its recovery offset: the cursor frames').
func TestSocketIOPlainFrames(t *testing.T) {
	ev := NewEvent(&notification.Event{Topic: "concept-notifications", Partition: 1, Offset: 2, Name: "concept-mastered", Data: []byte(`{"a":1}`), Time: time.Now()})
	if got := string(ev.Frame(FormatSocketIOPlain)); got != `42["concept-mastered",{"a":1}]`+"\x1e"+`42["cursor",{"id":"concept-notifications:1:2"}]` {
		t.Errorf("event frame %q", got)
	}
	if got := string(ev.Frame(FormatSocketIO)); got != `42["concept-mastered",{"a":1},{"id":"concept-notifications:1:2"}]` {
		t.Errorf("the shared FormatSocketIO frame %q", got)
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
	if got := string(Control{Event: "refreshed", Data: nil}.Frame(FormatSocketIO)); got != `42["refreshed",null]` {
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
	for _, ev := range rp.records[:3] {
		old.Publish(ev)
	}
	cursor := old.Codec().Encode(old.Position())
	c.Close(DisconnectClientGone)

	h := NewHub(HubConfig{Replayer: rp})
	h.SetCursorCodec(old.Codec())
	tr := newFake(FormatWebSocket, false)
	attached := attachWaiting(t, h, tr, cursor, "the node was assigned its partitions")
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 6, 1: 0}, "session-notifications": {0: 0}})
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	h.Publish(rp.records[6])
	h.Publish(rp.records[7])
	waitFor(t, "replay, cursor and live", func() bool { return len(tr.got()) == 6 })
	ids := idsOf(eventsOnly(frames(t, tr)))
	want := []string{"concept-notifications:0:3", "concept-notifications:0:4", "concept-notifications:0:5", "concept-notifications:0:6", "concept-notifications:0:7"}
	if !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
}

// TestResumeBeforeTheClusterIsKnownWaitsForIt: a resume that reaches a node before it has
// connected to Kafka (no cursor codec yet) waits for it, as for its partitions, instead of
// getting a resync at once.
func TestResumeBeforeTheClusterIsKnownWaitsForIt(t *testing.T) {
	rp := &memReplayer{}
	for off := range 4 {
		rp.records = append(rp.records, event("concept-notifications", 0, int64(off), "alice"))
	}
	old := newResumeHub(t, rp)
	old.Publish(rp.records[0])
	cursor := old.Codec().Encode(old.Position())

	h := NewHub(HubConfig{Replayer: rp})
	tr := newFake(FormatWebSocket, false)
	attached := attachWaiting(t, h, tr, cursor, "the node knew its cluster")
	h.SetCursorCodec(old.Codec())
	h.Assigned(map[string]map[int32]int64{"concept-notifications": {0: 3, 1: 0}, "session-notifications": {0: 0}})
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay and cursor", func() bool { return len(tr.got()) == 3 })
	if ids := idsOf(eventsOnly(frames(t, tr))); !slices.Equal(ids, []string{"concept-notifications:0:1", "concept-notifications:0:2"}) {
		t.Fatalf("got %v, want offsets 1 and 2 replayed", ids)
	}
}

// TestResumeOnNodeNeverAssignedResyncs: past AssignWait the client is told plainly (resync,
// reason unavailable) instead of being left without the events it missed.
func TestResumeOnNodeNeverAssignedResyncs(t *testing.T) {
	old := newResumeHub(t, &memReplayer{})
	old.Publish(event("concept-notifications", 0, 0, "alice"))
	cursor := old.Codec().Encode(old.Position())
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
// replay runs must not flush the live events queued meanwhile (nor a cursor frame): they lie
// past the events still being replayed, so a client that got them (or the cursor) would resume
// past those and never receive them. It gets the close frame alone and keeps its cursor.
func TestShutdownDuringAReplayLeavesTheClientItsCursor(t *testing.T) {
	rp := &stalledReplayer{started: make(chan struct{})}
	h := newResumeHub(t, rp)
	first := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", first)
	h.Publish(event("concept-notifications", 0, 0, "alice"))
	waitFor(t, "the opening cursor and the first event", func() bool { return len(first.got()) == 2 })
	cursor := holding(frames(t, first), true)
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

// attachWaiting starts alice's Attach with cursor on h in the background and requires it to be
// still waiting 50 ms later (for what, named by until); the channel gets Attach's error.
func attachWaiting(t *testing.T, h *Hub, tr Transport, cursor, until string) <-chan error {
	t.Helper()
	attached := make(chan error, 1)
	go func() {
		_, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cursor)
		attached <- err
	}()
	select {
	case err := <-attached:
		t.Fatalf("Attach returned before %s (err %v)", until, err)
	case <-time.After(50 * time.Millisecond):
	}
	return attached
}
