package presence

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// bus is a presence topic in memory: every record produced goes to every view, in order.
type bus struct {
	mu    sync.Mutex
	now   func() time.Time
	views []*View
	log   []*kgo.Record
}

func (b *bus) TryProduce(rec *kgo.Record, done func(*kgo.Record, error)) {
	b.mu.Lock()
	rec.Timestamp = b.now()
	rec.Offset = int64(len(b.log))
	b.log = append(b.log, rec)
	views := b.views
	b.mu.Unlock()
	for _, v := range views {
		v.Apply(rec)
	}
	done(rec, nil)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newNode(b *bus, c *clock, id string) (*Tracker, *View) {
	t := NewTracker(TrackerConfig{Topic: "presence", Node: id, Heartbeat: 10 * time.Second, Producer: b, Now: c.now})
	v := NewView(ViewConfig{Timeout: 30 * time.Second, Tracker: t, Now: c.now})
	b.mu.Lock()
	b.views = append(b.views, v)
	b.mu.Unlock()
	return t, v
}

func answer(t *testing.T, v *View, user string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(v.AppendUser(nil, user), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPresenceAcrossNodes(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	b := &bus{now: c.now}
	ta, va := newNode(b, c, "a")
	tb, vb := newNode(b, c, "b")
	ta.heartbeat(false)
	tb.heartbeat(false)

	ta.Connections("alice", realtime.TransportCounts{WebSocket: 1})
	ta.flush()
	c.add(time.Second)
	tb.Connections("alice", realtime.TransportCounts{SSE: 1, SocketIO: 1})
	tb.flush()
	for _, v := range []*View{va, vb} {
		p := v.Lookup("alice")
		if !p.Online || p.Connections != 3 || p.Transports.WebSocket != 1 || p.Transports.SSE != 1 || p.Transports.SocketIO != 1 || len(p.Nodes) != 2 {
			t.Fatalf("alice = %+v, want online with 3 connections on 2 nodes", p)
		}
		if !p.Since.Equal(c.t.Add(-time.Second)) {
			t.Errorf("since = %v, want the first connection's time %v", p.Since, c.t.Add(-time.Second))
		}
		if v.Online() != 1 || v.LiveNodes() != 2 {
			t.Errorf("online users %d, live nodes %d; want 1, 2", v.Online(), v.LiveNodes())
		}
	}
	m := answer(t, vb, "alice")
	if m["online"] != true || m["connections"] != 3.0 || m["since"] != "2026-11-29T10:00:00.000Z" {
		t.Errorf("answer = %v", m)
	}
	if m := answer(t, vb, "bob"); m["online"] != false || m["since"] != nil || len(m["nodes"].([]any)) != 0 {
		t.Errorf("bob's answer = %v, want offline", m)
	}

	// The last connection on a node closes: a tombstone, the other node still counts.
	ta.Connections("alice", realtime.TransportCounts{})
	ta.flush()
	if p := vb.Lookup("alice"); !p.Online || p.Connections != 2 || len(p.Nodes) != 1 || p.Nodes[0] != "b" {
		t.Fatalf("after a's last close: %+v", p)
	}
	if last := b.log[len(b.log)-1]; last.Value != nil || string(last.Key) != "alice/a" {
		t.Errorf("last record %q=%q, want the tombstone alice/a", last.Key, last.Value)
	}

	// Node b dies without a word: its users count until its heartbeat is older than the timeout.
	c.add(28 * time.Second) // 29 s after b's heartbeat
	ta.heartbeat(false)
	if !va.Lookup("alice").Online {
		t.Fatal("alice offline before b's heartbeat timed out")
	}
	c.add(time.Second)
	if p := va.Lookup("alice"); p.Online {
		t.Fatalf("alice = %+v after b's heartbeat timed out, want offline", p)
	}
	if va.LiveNodes() != 1 {
		t.Errorf("live nodes = %d, want 1", va.LiveNodes())
	}
}

func TestRestartedNodeDropsItsEarlierRecords(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	b := &bus{now: c.now}
	old, _ := newNode(b, c, "a")
	old.heartbeat(false)
	old.Connections("alice", realtime.TransportCounts{WebSocket: 1})
	old.flush() // then node a is killed

	// Node a starts again: its view reads the topic from the start.
	b2 := &bus{now: c.now}
	fresh, v := newNode(b2, c, "a")
	for _, rec := range b.log {
		v.Apply(rec)
	}
	fresh.heartbeat(false)
	if v.Lookup("alice").Online {
		t.Fatal("alice online from a record of node a's earlier run")
	}
	fresh.flush() // the stale record made the tracker produce alice's state: a tombstone
	last := b2.log[len(b2.log)-1]
	if string(last.Key) != "alice/a" || last.Value != nil {
		t.Errorf("last record %q=%q, want the tombstone alice/a", last.Key, last.Value)
	}
}

func TestStopSaysGoodbye(t *testing.T) {
	c := &clock{t: time.Now()}
	b := &bus{now: c.now}
	ta, _ := newNode(b, c, "a")
	_, vb := newNode(b, c, "b")
	ta.heartbeat(false)
	ta.Connections("alice", realtime.TransportCounts{WebSocket: 2})
	ta.flush()
	if !vb.Lookup("alice").Online {
		t.Fatal("alice not online")
	}
	ta.Stop()
	if vb.Lookup("alice").Online || vb.LiveNodes() != 0 {
		t.Errorf("after Stop: alice online %v, live nodes %d", vb.Lookup("alice").Online, vb.LiveNodes())
	}
}

func TestMalformedRecordsAreSkipped(t *testing.T) {
	v := NewView(ViewConfig{})
	for _, rec := range []*kgo.Record{
		{Key: []byte("no-slash"), Value: []byte(`{}`)},
		{Key: []byte("alice/"), Value: []byte(`{}`)},
		{Key: []byte("alice/a"), Value: []byte(`not json`)},
		{Key: []byte("/a"), Value: []byte(`{"boot":""}`)},
	} {
		v.Apply(rec)
	}
	if v.Online() != 0 || v.LiveNodes() != 0 {
		t.Errorf("online %d, nodes %d after malformed records", v.Online(), v.LiveNodes())
	}
}

func TestAnswerEscapesIDs(t *testing.T) {
	v := NewView(ViewConfig{})
	for _, id := range []string{`a"b`, "é", `back\slash`, "tab\t"} {
		var m map[string]any
		if err := json.Unmarshal(v.AppendUser(nil, id), &m); err != nil || m["userId"] != id {
			t.Errorf("%q: %v, %v", id, m, err)
		}
	}
}

// TestGoneNodesAreSweptOnce: ten timeouts after a node's last heartbeat, the live node with the
// smallest ID tombstones its records and its heartbeat, and every view forgets them; the other
// live node does not.
func TestGoneNodesAreSweptOnce(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	b := &bus{now: c.now}
	ta, va := newNode(b, c, "a")
	tb, vb := newNode(b, c, "b")
	tc, _ := newNode(b, c, "c")
	for _, tr := range []*Tracker{ta, tb, tc} {
		tr.heartbeat(false)
	}
	tc.Connections("alice", realtime.TransportCounts{WebSocket: 1})
	tc.flush() // then node c is killed
	for range 10 {
		c.add(30 * time.Second)
		ta.heartbeat(false)
		tb.heartbeat(false)
	}
	c.add(time.Second)
	tb.sweep()
	if n := len(b.log); b.log[n-1].Value == nil {
		t.Fatalf("node b swept (%q), though node a is live and sorts first", b.log[n-1].Key)
	}
	before := len(b.log)
	ta.sweep()
	var swept []string
	for _, rec := range b.log[before:] {
		if rec.Value != nil {
			t.Errorf("sweep produced a value for %q", rec.Key)
		}
		swept = append(swept, string(rec.Key))
	}
	slices.Sort(swept)
	if want := []string{"/c", "alice/c"}; !slices.Equal(swept, want) {
		t.Errorf("swept %q, want %q", swept, want)
	}
	for _, v := range []*View{va, vb} {
		v.mu.RLock()
		_, node := v.nodes["c"]
		users := len(v.users)
		v.mu.RUnlock()
		if node || users != 0 {
			t.Errorf("a view still holds node c (%v) or %d users", node, users)
		}
	}
	before = len(b.log)
	ta.sweep()
	if len(b.log) != before {
		t.Errorf("a second sweep produced %d records", len(b.log)-before)
	}
}

// TestSweptNodeStatesItsUsersAgain: a node that was cut off long enough to be swept, and still
// holds its users' connections, produces their state again when it reads the tombstones.
func TestSweptNodeStatesItsUsersAgain(t *testing.T) {
	c := &clock{t: time.Now()}
	b := &bus{now: c.now}
	ta, va := newNode(b, c, "a")
	ta.heartbeat(false)
	ta.Connections("alice", realtime.TransportCounts{SSE: 1})
	ta.flush()
	b.TryProduce(&kgo.Record{Topic: "presence", Key: []byte("alice/a")}, func(*kgo.Record, error) {}) // another node's sweep
	if va.Lookup("alice").Online {
		t.Fatal("alice online after the tombstone")
	}
	ta.flush()
	if p := va.Lookup("alice"); !p.Online || p.Transports.SSE != 1 {
		t.Errorf("alice = %+v after node a stated her again", p)
	}
}
