package socketio

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// readSink keeps the read receipts the hub is told of.
type readSink struct {
	mu   sync.Mutex
	read []string
}

func (r *readSink) Delivered(string, string, []string) {}
func (r *readSink) Read(user, transport, id string) {
	r.mu.Lock()
	r.read = append(r.read, user+" "+transport+" "+id)
	r.mu.Unlock()
}

func (r *readSink) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.read)
}

// TestSocketIOReadEvent: `emit("read", id)` records a read receipt of the session's user;
// emitWithAck answers {"ok":true}, or {"error":"bad-event-id"} for something that is not an event
// ID "<topic>:<partition>:<offset>".
func TestSocketIOReadEvent(t *testing.T) {
	t.Parallel()
	sink := &readSink{}
	s := newServer(t, Config{}, realtime.HubConfig{Receipts: sink})
	tok, err := auth.Issue(testSecret, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := s.dialWS("")
	c.send(`40{"token":"` + tok + `"}`)
	if reply := c.next(); !strings.HasPrefix(reply, "40{") {
		t.Fatalf("CONNECT: %s", reply)
	}
	s.waitAttached(c.sid)
	c.send(`421["read","concept-notifications:0:42"]`)
	if ack := c.next(); ack != `431[{"ok":true}]` {
		t.Errorf("ack %q", ack)
	}
	c.send(`422["read","no such cursor"]`)
	if ack := c.next(); ack != `432[{"error":"bad-event-id"}]` {
		t.Errorf("ack %q", ack)
	}
	c.send(`423["read",42]`)
	if ack := c.next(); ack != `433[{"error":"bad-event-id"}]` {
		t.Errorf("ack %q", ack)
	}
	c.send(`42["read","t:1:2"]`)
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := sink.got(), []string{"alice socketio concept-notifications:0:42", "alice socketio t:1:2"}; !slices.Equal(got, want) {
		t.Errorf("read receipts %q, want %q", got, want)
	}
}
