package socketio

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Refresh in place on Socket.IO, driven with raw frames over WebSocket: the client emits
// "refresh" with a new token and an ack id (`socket.emitWithAck("refresh", token)`).

// refreshSession connects alice over WebSocket with a token valid for ttl (whole seconds, as a
// JWT's exp) to a server that pings every 20 ms, so that an expiry is acted on at once; it
// returns the client, the server, the first token's expiry and the hub's metrics.
func refreshSession(t *testing.T, ttl time.Duration) (*wsClient, *server, time.Time, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := newServer(t, Config{PingInterval: 20 * time.Millisecond, PongTimeout: 5 * time.Second}, realtime.HubConfig{Metrics: reg})
	now := time.Now()
	tok, err := auth.Issue(testSecret, "alice", ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	c := s.dialWS("")
	c.send(`40{"token":"` + tok + `"}`)
	if reply := c.next(); !strings.HasPrefix(reply, "40{") {
		t.Fatalf("CONNECT: %s", reply)
	}
	s.waitAttached(c.sid)
	return c, s, time.Unix(now.Add(ttl).Unix(), 0), reg
}

// sioReader sorts what the client reads: event data (the conceptId of each), acks, and other
// packets (a DISCONNECT, the Engine.IO close); "" ends the stream.
type sioReader struct {
	c      *wsClient
	events []string
	acks   []string
	other  []string
	closed bool
}

func (r *sioReader) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	r.c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !cond() {
		if r.closed {
			t.Fatalf("waiting for %s: the session closed (events %v, acks %v, other %v)", what, r.events, r.acks, r.other)
		}
		r.read(t)
	}
}

func (r *sioReader) read(t *testing.T) {
	t.Helper()
	msg := r.c.next()
	switch {
	case msg == "":
		r.closed = true
	case strings.HasPrefix(msg, `42["cursor"`):
	case strings.HasPrefix(msg, `42[`):
		var args []json.RawMessage
		var data struct{ ConceptID string }
		if json.Unmarshal([]byte(msg[2:]), &args) != nil || len(args) < 2 || json.Unmarshal(args[1], &data) != nil {
			t.Fatalf("event %q", msg)
		}
		r.events = append(r.events, data.ConceptID)
	case strings.HasPrefix(msg, `43`):
		r.acks = append(r.acks, msg)
	default:
		r.other = append(r.other, msg)
	}
}

func concepts(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprintf("c%d", i))
	}
	return s
}

func (s *server) publishConcept(i int) {
	s.publish("alice", fmt.Sprintf(`{"conceptId":"c%d"}`, i))
}

// refreshes is realtime_token_refreshes_total{transport="socketio",result}, -1 when absent.
func refreshes(reg *prometheus.Registry, result string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "realtime_token_refreshes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["transport"] == "socketio" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// TestSocketIORefreshKeepsTheSessionPastTheFirstExpiry: the ack carries the new expiry, the
// session outlives the first token by many pings, and the events published before, during and
// after the refresh arrive exactly once, in order.
func TestSocketIORefreshKeepsTheSessionPastTheFirstExpiry(t *testing.T) {
	t.Parallel()
	c, s, firstExp, reg := refreshSession(t, 2*time.Second)
	r := &sioReader{c: c}
	s.publishConcept(1)
	s.publishConcept(2)
	now := time.Now()
	tok, err := auth.Issue(testSecret, "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	during := make(chan struct{})
	go func() {
		defer close(during)
		for i := 3; i <= 5; i++ {
			s.publishConcept(i)
		}
	}()
	c.send(`427["refresh","` + tok + `"]`)
	r.until(t, "the ack", func() bool { return len(r.acks) == 1 })
	<-during
	want := `437[{"expiresAt":"` + time.Unix(now.Add(time.Hour).Unix(), 0).UTC().Format(time.RFC3339) + `"}]`
	if r.acks[0] != want {
		t.Fatalf("ack %s, want %s", r.acks[0], want)
	}

	time.Sleep(time.Until(firstExp) + 10*20*time.Millisecond) // ten pings past the first expiry
	s.publishConcept(6)
	s.publishConcept(7)
	r.until(t, "the events after the first expiry", func() bool { return len(r.events) >= 7 })
	if !slices.Equal(r.events, concepts(1, 7)) || len(r.other) != 0 {
		t.Errorf("events %v (other packets %v), want %v", r.events, r.other, concepts(1, 7))
	}
	if n := refreshes(reg, "ok"); n != 1 {
		t.Errorf("realtime_token_refreshes_total{socketio,ok} = %v, want 1", n)
	}
}

// TestSocketIORefreshRefusedKeepsTheFirstExpiry: a bad token, no token, a token that is not a
// string and a binary argument get an invalid-token ack (an emit without an ack id gets
// nothing); the session then ends at the first token's expiry with the Engine.IO close.
func TestSocketIORefreshRefusedKeepsTheFirstExpiry(t *testing.T) {
	t.Parallel()
	c, s, _, reg := refreshSession(t, 2*time.Second)
	r := &sioReader{c: c}
	c.send(`42["refresh","not-a-jwt"]`) // no ack asked: no answer
	c.send(`421["refresh","not-a-jwt"]`)
	c.send(`422["refresh"]`)
	c.send(`423["refresh",42]`)
	c.send(`451-4["refresh",{"_placeholder":true,"num":0}]`)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil { // the attachment
		t.Fatal(err)
	}
	c.send(`425["whoami"]`) // still served
	s.publishConcept(1)
	r.until(t, "the close", func() bool { return r.closed })
	if len(r.acks) != 5 {
		t.Fatalf("acks %v, want 5", r.acks)
	}
	for i, a := range r.acks[:4] {
		var ack []map[string]string
		if !strings.HasPrefix(a, fmt.Sprintf("43%d[", i+1)) || json.Unmarshal([]byte(a[3:]), &ack) != nil || len(ack) != 1 ||
			ack[0]["error"] != "invalid-token" || ack[0]["message"] == "" {
			t.Errorf("ack %d: %s, want [{error: invalid-token, message}]", i+1, a)
		}
	}
	if r.acks[4] != `435[{"userId":"alice"}]` {
		t.Errorf("whoami after the refusals: %s", r.acks[4])
	}
	if !slices.Equal(r.events, concepts(1, 1)) || !slices.Equal(r.other, []string{"1"}) {
		t.Errorf("events %v then %v, want [c1] then the Engine.IO close", r.events, r.other)
	}
	if n := refreshes(reg, "invalid"); n != 5 {
		t.Errorf("realtime_token_refreshes_total{socketio,invalid} = %v, want 5", n)
	}
}

// TestSocketIORefreshForAnotherUserDisconnects: a valid token of another user gets an
// other-user ack, then a Socket.IO DISCONNECT (socket.io-client: "io server disconnect", no
// automatic reconnection) and the Engine.IO close, after the events queued before it.
func TestSocketIORefreshForAnotherUserDisconnects(t *testing.T) {
	t.Parallel()
	c, s, _, reg := refreshSession(t, time.Hour)
	r := &sioReader{c: c}
	s.publishConcept(1)
	r.until(t, "the first event", func() bool { return len(r.events) == 1 })
	c.send(`421["refresh","` + testToken(t, "bob") + `"]`)
	r.until(t, "the close", func() bool { return r.closed })
	want := `431[{"error":"other-user","message":"token for another user"}]`
	if !slices.Equal(r.acks, []string{want}) || !slices.Equal(r.other, []string{"41", "1"}) {
		t.Errorf("acks %v then %v, want %s then 41 and 1", r.acks, r.other, want)
	}
	waitFor(t, "no session", func() bool { return s.sessions() == 0 })
	if n := refreshes(reg, "other-user"); n != 1 {
		t.Errorf("realtime_token_refreshes_total{socketio,other-user} = %v, want 1", n)
	}
}

// TestSocketIORefreshOverLongPolling: the same answers reach a long-polling client: the ack with
// the new expiry, then for another user's token the ack, the DISCONNECT and the close packet.
func TestSocketIORefreshOverLongPolling(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{PingInterval: time.Minute, PongTimeout: time.Minute}, realtime.HubConfig{})
	sid := s.connectPolling("alice")
	now := time.Now()
	tok, err := auth.Issue(testSecret, "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.post(sid, `421["refresh","`+tok+`"]`); st != 200 {
		t.Fatalf("POST refresh: %d", st)
	}
	want := `431[{"expiresAt":"` + time.Unix(now.Add(time.Hour).Unix(), 0).UTC().Format(time.RFC3339) + `"}]`
	if _, packets := s.get(sid); !slices.Equal(packets, []string{want}) {
		t.Fatalf("GET after the refresh: %q, want %s", packets, want)
	}
	if st := s.post(sid, `422["refresh","`+testToken(t, "bob")+`"]`); st != 200 {
		t.Fatalf("POST refresh: %d", st)
	}
	var got []string
	for !slices.Contains(got, "1") {
		st, packets := s.get(sid)
		if st != 200 {
			t.Fatalf("GET: %d after %q", st, got)
		}
		got = append(got, packets...)
	}
	if want := []string{`432[{"error":"other-user","message":"token for another user"}]`, "41", "1"}; !slices.Equal(got, want) {
		t.Errorf("GETs after another user's token: %q, want %q", got, want)
	}
}
