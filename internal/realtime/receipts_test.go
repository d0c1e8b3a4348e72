package realtime

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// sinks records what the hub tells presence and receipts.
type sinks struct {
	mu        sync.Mutex
	presence  []string
	delivered []string
	read      []string
}

func (s *sinks) Connections(user string, n TransportCounts) {
	s.mu.Lock()
	s.presence = append(s.presence, fmt.Sprintf("%s %d/%d/%d", user, n.WebSocket, n.SSE, n.SocketIO))
	s.mu.Unlock()
}

func (s *sinks) Delivered(user, transport string, ids []string) {
	s.mu.Lock()
	for _, id := range ids {
		s.delivered = append(s.delivered, user+" "+transport+" "+id)
	}
	s.mu.Unlock()
}

func (s *sinks) Read(user, transport, id string) {
	s.mu.Lock()
	s.read = append(s.read, user+" "+transport+" "+id)
	s.mu.Unlock()
}

func (s *sinks) snapshot() (presence, delivered, read []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.presence), slices.Clone(s.delivered), slices.Clone(s.read)
}

func TestPresenceSinkSeesEveryChangeInOrder(t *testing.T) {
	s := &sinks{}
	h := NewHub(HubConfig{Presence: s})
	ws := register(t, h, "alice", newFake(FormatWebSocket, false))
	sse := register(t, h, "alice", newFake(FormatSSE, false))
	register(t, h, "alice", newFake(FormatSocketIOPlain, false))
	register(t, h, "bob", newFake(FormatSocketIO, false))
	ws.Close(DisconnectClientGone)
	sse.Close(DisconnectClientGone)
	got, _, _ := s.snapshot()
	want := []string{"alice 1/0/0", "alice 1/1/0", "alice 1/1/1", "bob 0/0/1", "alice 0/1/1", "alice 0/0/1"}
	if !slices.Equal(got, want) {
		t.Errorf("presence = %q, want %q", got, want)
	}
	h.Shutdown(t.Context())
	got, _, _ = s.snapshot()
	if last := got[len(got)-2:]; !slices.Contains(last, "alice 0/0/0") || !slices.Contains(last, "bob 0/0/0") {
		t.Errorf("after shutdown: %q, want both users at zero", got)
	}
}

func TestDeliveredReceiptsOnlyForWrittenLiveEvents(t *testing.T) {
	s := &sinks{}
	h := NewHub(HubConfig{Receipts: s})
	ok := newFake(FormatWebSocket, false)
	register(t, h, "alice", ok)
	stuck := newFake(FormatSSE, true) // never writes: nothing delivered
	register(t, h, "alice", stuck)
	c := register(t, h, "bob", newFake(FormatSocketIO, false))
	h.Publish(event("t", 0, 1, "alice"))
	h.Publish(event("t", 0, 2, "alice", "bob"))
	c.Send([]byte("a ping")) // not an event: no receipt
	waitFor(t, "both events written to alice's WebSocket", func() bool { return len(ok.got()) == 2 })
	waitFor(t, "the receipts", func() bool { _, d, _ := s.snapshot(); return len(d) == 3 })
	_, delivered, _ := s.snapshot()
	slices.Sort(delivered)
	want := []string{"alice websocket t:0:1", "alice websocket t:0:2", "bob socketio t:0:2"}
	if !slices.Equal(delivered, want) {
		t.Errorf("delivered = %q, want %q", delivered, want)
	}
	stuck.Close()
}

func TestNoReceiptsWithoutASink(t *testing.T) {
	h := NewHub(HubConfig{})
	c, _, err := h.Register(ConnOptions{User: "alice", Transport: newFake(FormatWebSocket, false), Paused: true}) // frames stay queued
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(DisconnectClientGone)
	h.Publish(event("t", 0, 1, "alice"))
	c.mu.Lock()
	ids := c.ids
	c.mu.Unlock()
	if ids != nil {
		t.Error("event IDs queued without a receipt sink")
	}
	if err := h.Read("alice", "http", "t:0:1"); err != nil {
		t.Errorf("Read without a sink: %v", err)
	}
	if err := h.Read("alice", "http", "t:x:1"); err != ErrBadEventID {
		t.Errorf("Read of a bad ID: %v, want ErrBadEventID", err)
	}
}

func TestValidEventID(t *testing.T) {
	for id, want := range map[string]bool{
		"concept-notifications:0:42": true,
		"a.b_c-D:2147483647:0":       true,
		"t:0:9223372036854775807":    true,
		"":                           false,
		"t:0":                        false,
		":0:1":                       false,
		"t:-1:1":                     false,
		"t:0:-1":                     false,
		"t:0:1x":                     false,
		"t/x:0:1":                    false,
		"..:0:1":                     false,
		"t:2147483648:1":             false,
		"t:0:9223372036854775808":    false,
		string(make([]byte, 300)):    false,
	} {
		if got := ValidEventID(id); got != want {
			t.Errorf("ValidEventID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestReadFrameOnWebSocket: {"type":"read","id"} records a read receipt of the connection's
// user; a malformed ID or a non-string is ignored and the connection stays.
func TestReadFrameOnWebSocket(t *testing.T) {
	s := &sinks{}
	h := NewHub(HubConfig{Receipts: s})
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{})))
	defer srv.Close()
	ws := dialWS(t, srv, "")
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	for _, m := range []string{`{"type":"read","id":"bad"}`, `{"type":"read","id":7}`, `{"type":"read","id":"t:1:2"}`} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the read receipt", func() bool { _, _, r := s.snapshot(); return len(r) == 1 })
	if _, _, r := s.snapshot(); r[0] != "alice websocket t:1:2" || h.Connections() != 1 {
		t.Errorf("read = %q, connections %d", r, h.Connections())
	}
}

// TestReadTakesTheEventIDNotACursor: a Socket.IO client names the event it read by the ID its
// frame carries ({"id"}), like every other client; a cursor is not an event ID (events no longer
// carry one to look up).
func TestReadTakesTheEventIDNotACursor(t *testing.T) {
	h, s, cc := receiptsHub(t)
	c := register(t, h, "alice", newFake(FormatSocketIO, false))
	first := h.Publish(event("t", 0, 0, "alice"))
	h.Publish(event("t", 0, 1, "alice"))
	if err := c.Read(first.ID()); err != nil {
		t.Fatal(err)
	}
	if err := c.Read(cc.Encode(h.Position())); err != ErrBadEventID {
		t.Errorf("a cursor: %v, want ErrBadEventID", err)
	}
	if _, _, r := s.snapshot(); !slices.Equal(r, []string{"alice socketio t:0:0"}) {
		t.Errorf("read = %q", r)
	}
}

// TestDeliveredReceiptsForReplayedEvents: a client that resumes gets a delivered receipt for each
// replayed event once it is written, in the order written, then for the live ones; none again for
// the event it already had (listed in its resume token) nor for cursor frames.
func TestDeliveredReceiptsForReplayedEvents(t *testing.T) {
	h, s, _ := receiptsHub(t)
	first := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", first)
	h.Publish(event("t", 0, 0, "alice"))
	waitFor(t, "the first event", func() bool { return len(first.got()) == 2 }) // opening cursor, event
	cursor := holding(frames(t, first), true)
	c.Close(DisconnectClientGone)
	for i := int64(1); i <= 3; i++ {
		h.Publish(event("t", 0, i, "alice"))
	}
	back := newFake(FormatWebSocket, false)
	if _, err := h.Attach(t.Context(), ConnOptions{User: "alice", Transport: back}, cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { return len(back.got()) == 4 }) // t:0:1-3, cursor
	h.Publish(event("t", 0, 4, "alice"))
	waitFor(t, "the receipts", func() bool { _, d, _ := s.snapshot(); return len(d) == 5 })
	_, got, _ := s.snapshot()
	want := []string{"alice websocket t:0:0", "alice websocket t:0:1", "alice websocket t:0:2", "alice websocket t:0:3", "alice websocket t:0:4"}
	if !slices.Equal(got, want) {
		t.Errorf("delivered = %q, want %q", got, want)
	}
}

// receiptsHub is a hub with a history, a cursor codec and sinks for its receipts, consuming
// partition 0 of topic t from offset 0.
func receiptsHub(t *testing.T) (*Hub, *sinks, *CursorCodec) {
	t.Helper()
	s := &sinks{}
	h := NewHub(HubConfig{Receipts: s, History: HistoryConfig{PerUser: 10}})
	cc, err := NewCursorCodec("cluster", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"t": {0: 0}})
	return h, s, cc
}
