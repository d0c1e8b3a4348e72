package socketio

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Tests of what an unauthenticated client may cost: admission at the handshake, the auth
// timeout, message size limits, read deadlines, and what a flood leaves behind.

// handshake opens a session on transport ("polling" or "websocket") and returns the HTTP status
// and the refusal's Retry-After and body when there is one; a WebSocket that opened is closed.
func (s *server) handshake(transport string) (status int, retryAfter, body string) {
	s.t.Helper()
	if transport == "websocket" {
		ws, res, err := websocket.DefaultDialer.Dial(strings.Replace(s.url("transport=websocket"), "http", "ws", 1), nil)
		if err == nil {
			s.t.Cleanup(func() { ws.Close() })
			return res.StatusCode, "", ""
		}
		if res == nil {
			s.t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Retry-After"), string(b)
	}
	res, err := http.Get(s.url("transport=polling"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), string(b)
}

// TestHandshakePastTheCapsIsRefused: past the per-address cap of unauthenticated sessions a
// handshake gets 429, past the node-wide one 503, both with Retry-After and the Engine.IO error
// body, on both transports; a CONNECT frees the slot.
func TestHandshakePastTheCapsIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    admission.Config
		status int
	}{
		{"per address", admission.Config{MaxPendingPerAddress: 2}, http.StatusTooManyRequests},
		{"node", admission.Config{MaxPending: 2}, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admit := admission.New(tc.cfg)
			s := newServer(t, Config{Admission: admit}, realtime.HubConfig{})
			first := s.dialWS("")
			s.pollHandshake()
			for _, transport := range []string{"polling", "websocket"} {
				status, retry, body := s.handshake(transport)
				var e struct {
					Code    int
					Message string
				}
				if status != tc.status || retry == "" || json.Unmarshal([]byte(body), &e) != nil || e.Code != 3 || e.Message == "" {
					t.Errorf("%s handshake past the cap: %d, Retry-After %q, body %s; want %d with Retry-After and {code: 3}", transport, status, retry, body, tc.status)
				}
			}
			if s.sessions() != 2 {
				t.Errorf("%d sessions, want 2: a refused handshake makes none", s.sessions())
			}
			first.send(`40{"token":"` + testToken(t, "alice") + `"}`)
			if reply := first.next(); !strings.HasPrefix(reply, "40{") {
				t.Fatalf("CONNECT: %q", reply)
			}
			if status, _, _ := s.handshake("polling"); status != http.StatusOK {
				t.Errorf("handshake after a CONNECT freed a slot: %d", status)
			}
		})
	}
}

// TestTicketsAreReleasedOnEveryClosePath: whichever way a session ends, its admission slot is
// given back: no pending session and no connection is left.
func TestTicketsAreReleasedOnEveryClosePath(t *testing.T) {
	admit := admission.New(admission.Config{})
	s := newServer(t, Config{Admission: admit, PingInterval: time.Minute}, realtime.HubConfig{})

	wsClosedByClient := s.dialWS("")
	wsDisconnect := s.connectWS("alice")
	wsEIOClose := s.dialWS("")
	wsMalformed := s.dialWS("")
	wsTooBig := s.dialWS("")
	pollClose := s.pollHandshake()
	pollDisconnect := s.connectPolling("bob")
	pollTooBig := s.pollHandshake()
	pollMalformed := s.pollHandshake()
	failedUpgrade := s.pollHandshake()
	hubClosed := s.connectWS("carol")
	shutdownPending := s.pollHandshake()
	if got := admit.PendingSessions(); got != 9 {
		t.Errorf("%d pending sessions, want 9 (3 of 12 connected)", got)
	}
	if got := admit.Connections(); got != 12 {
		t.Errorf("%d admitted connections, want 12", got)
	}

	wsClosedByClient.ws.Close()
	wsDisconnect.send("41")
	wsEIOClose.send("1")
	wsMalformed.send("9")
	wsTooBig.send(strings.Repeat("6", defaultPreAuthMax+1))
	s.post(pollClose, "1")
	s.post(pollDisconnect, "41")
	s.post(pollTooBig, strings.Repeat("6", defaultPreAuthMax+1))
	s.post(pollMalformed, "9")
	// an upgrade whose probe never comes: the session goes on polling, then closes
	probe, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.url("transport=websocket&sid="+failedUpgrade), "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	probe.WriteMessage(websocket.TextMessage, []byte("2nope"))
	probe.ReadMessage()
	s.post(failedUpgrade, "1")
	s.h.session(hubClosed.sid).conn.Load().Close(realtime.DisconnectSlow)
	waitFor(t, "all but one session closed", func() bool { return s.sessions() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if s.h.session(shutdownPending) != nil {
		t.Error("Shutdown left a pending session")
	}
	waitFor(t, "every ticket released", func() bool { return admit.Connections() == 0 && admit.PendingSessions() == 0 })
	for _, kind := range []string{"polling", "websocket"} {
		if got := value(s.h.m.sessions.WithLabelValues(kind)); got != 0 {
			t.Errorf("%s sessions gauge = %v after every session closed", kind, got)
		}
	}
}

// TestAuthTimeoutClosesSessionsWithoutConnect: a session whose client has not sent a valid
// CONNECT within AuthTimeout is closed, over WebSocket with a Close frame 1008 the client reads;
// a connected session is not.
func TestAuthTimeoutClosesSessionsWithoutConnect(t *testing.T) {
	admit := admission.New(admission.Config{})
	s := newServer(t, Config{Admission: admit, AuthTimeout: 200 * time.Millisecond, PingInterval: time.Minute}, realtime.HubConfig{})
	connected := s.connectWS("alice")
	ws := s.dialWS("")
	badToken := s.dialWS("")
	badToken.send(`40{"token":"bad"}`)
	if reply := badToken.next(); !strings.HasPrefix(reply, "44{") {
		t.Fatalf("CONNECT with a bad token: %q", reply)
	}
	sid := s.pollHandshake()

	for _, c := range []*wsClient{ws, badToken} {
		c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _, err := c.ws.ReadMessage()
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Errorf("read after the auth timeout: %v, want close 1008", err)
		}
	}
	waitFor(t, "the polling session closed", func() bool { return s.h.session(sid) == nil })
	if st := s.post(sid, `40{"token":"`+testToken(t, "bob")+`"}`); st != http.StatusBadRequest {
		t.Errorf("CONNECT after the auth timeout: %d, want 400 (session unknown)", st)
	}
	// Counted once closeWith returns, a moment after the session leaves the table.
	authTimeouts := func() float64 { return value(s.h.m.protocolErrors.WithLabelValues("auth_timeout")) }
	waitFor(t, "three auth timeouts counted", func() bool { return authTimeouts() >= 3 })
	if got := authTimeouts(); got != 3 {
		t.Errorf("auth_timeout protocol errors = %v, want 3", got)
	}
	connected.send(`421["whoami"]`)
	if msg := connected.next(); msg != `431[{"userId":"alice"}]` {
		t.Errorf("connected session after the others timed out: %q", msg)
	}
	waitFor(t, "the pending slots released", func() bool { return admit.PendingSessions() == 0 && admit.Connections() == 1 })
}

// TestOversizeWebSocketMessageGetsClose1009: a message over the limit, before or after the
// CONNECT, gets a Close frame with status 1009 that the client reads (not a reset connection,
// which gorilla reports as 1006), also when the client is still sending a 1 MiB message.
func TestOversizeWebSocketMessageGetsClose1009(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Minute}, realtime.HubConfig{})
	for _, tc := range []struct {
		name   string
		authed bool
		size   int
	}{
		{"pre-auth 17 KiB", false, 17 << 10},
		{"pre-auth 1 MiB", false, 1 << 20},
		{"pre-auth 16 MiB (more than the socket buffers hold)", false, 16 << 20},
		{"authenticated 64 KiB + 1", true, defaultMaxPayload + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *wsClient
			if tc.authed {
				c = s.connectWS("alice")
			} else {
				c = s.dialWS("")
			}
			c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			if err := c.write("6" + strings.Repeat("x", tc.size-1)); err != nil {
				t.Fatalf("write: %v", err)
			}
			var err error
			for err == nil {
				_, _, err = c.ws.ReadMessage()
			}
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Errorf("after a %d-byte message: %v, want close 1009", tc.size, err)
			}
			waitFor(t, "the session closed", func() bool { return s.h.session(c.sid) == nil })
		})
	}
	if got := value(s.h.m.protocolErrors.WithLabelValues("too_large")); got != 4 {
		t.Errorf("too_large protocol errors = %v, want 4", got)
	}
}

// TestAuthenticatedClientMaySendUpToMaxPayload: after the CONNECT the limit is MaxPayload, on
// both transports; before it, PreAuthMaxPayload (a POST over it gets 413 and the error body).
func TestAuthenticatedClientMaySendUpToMaxPayload(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Minute}, realtime.HubConfig{})
	atLimit := "6" + strings.Repeat("x", defaultMaxPayload-1) // a noop of exactly MaxPayload bytes

	c := s.connectWS("alice")
	c.send(atLimit)
	c.send(`421["whoami"]`)
	if msg := c.next(); msg != `431[{"userId":"alice"}]` {
		t.Errorf("WebSocket after a message of MaxPayload bytes: %q", msg)
	}
	sid := s.connectPolling("bob")
	if st := s.post(sid, atLimit); st != http.StatusOK {
		t.Errorf("POST of MaxPayload bytes after the CONNECT: %d", st)
	}

	s.post(sid, "1")

	pending := s.pollHandshake()
	if st := s.post(pending, atLimit[:defaultPreAuthMax]); st != http.StatusOK {
		t.Errorf("POST of PreAuthMaxPayload bytes before the CONNECT: %d", st)
	}
	res, err := http.Post(s.url("transport=polling&sid="+pending), "text/plain", strings.NewReader(atLimit[:defaultPreAuthMax+1]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || string(body) != `{"code":3,"message":"Bad request"}` {
		t.Errorf("POST of PreAuthMaxPayload+1 bytes before the CONNECT: %d %s, want 413 with the Engine.IO error", res.StatusCode, body)
	}
	if s.h.session(pending) != nil {
		t.Error("the session survived an over-size POST")
	}
}

// TestTricklingPostIsCutAtTheDeadline: a POST body that does not arrive within WriteTimeout
// gets 400 and closes the session, instead of holding its goroutine.
func TestTricklingPostIsCutAtTheDeadline(t *testing.T) {
	s := newServer(t, Config{WriteTimeout: 100 * time.Millisecond, PingInterval: time.Minute}, realtime.HubConfig{})
	sid := s.pollHandshake()
	nc, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n40", sid)
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("no answer to a trickling POST: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("trickling POST: %d, want 400", res.StatusCode)
	}
	waitFor(t, "the session closed", func() bool { return s.h.session(sid) == nil })
	if got := value(s.h.m.protocolErrors.WithLabelValues("read_timeout")); got != 1 {
		t.Errorf("read_timeout protocol errors = %v", got)
	}
}

// TestSessionTableShrinksAfterAFlood: once a flood of 5,000 sessions has ended, the session
// table is a new, small map (a Go map keeps its peak size), and the gauge is back to zero.
func TestSessionTableShrinksAfterAFlood(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Minute}, realtime.HubConfig{})
	const n = 5000
	sids := make([]string, n)
	for range n {
		s.h.ServeHTTP(discard{}, httpGet("/socket.io/?EIO=4&transport=polling"))
	}
	s.h.mu.Lock()
	peak := reflect.ValueOf(s.h.sessions).UnsafePointer()
	i := 0
	for sid := range s.h.sessions {
		sids[i] = sid
		i++
	}
	s.h.mu.Unlock()
	if i != n {
		t.Fatalf("%d sessions, want %d", i, n)
	}
	for _, sid := range sids {
		s.h.session(sid).close()
	}
	s.h.mu.Lock()
	rebuilt := reflect.ValueOf(s.h.sessions).UnsafePointer() != peak
	s.h.mu.Unlock()
	if !rebuilt || s.sessions() != 0 {
		t.Errorf("after the flood: table rebuilt %v, %d sessions; want a new map", rebuilt, s.sessions())
	}
	if got := value(s.h.m.sessions.WithLabelValues("polling")); got != 0 {
		t.Errorf("polling sessions gauge = %v after the flood", got)
	}
}

// TestDebugLogsOfAFloodAreSampled: per-session debug lines are capped per interval, however
// many sessions break the protocol.
func TestDebugLogsOfAFloodAreSampled(t *testing.T) {
	var lines atomic.Int64
	log := slog.New(countingHandler{&lines})
	s := newServer(t, Config{Log: log, PingInterval: time.Minute}, realtime.HubConfig{})
	for range 100 {
		rec := discard{}
		s.h.ServeHTTP(rec, httpGet("/socket.io/?EIO=4&transport=polling"))
		s.h.mu.Lock()
		var ses *session
		for _, v := range s.h.sessions {
			ses = v
		}
		s.h.mu.Unlock()
		ses.onPacket(eioPacket{typ: eioPing})
	}
	if got := value(s.h.m.protocolErrors.WithLabelValues("heartbeat")); got != 100 {
		t.Errorf("heartbeat protocol errors = %v, want 100 (each counted)", got)
	}
	if got := lines.Load(); got > debugLines {
		t.Errorf("%d debug lines for 100 protocol errors, want at most %d", got, debugLines)
	}
}

type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func httpGet(target string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, "http://x"+target, nil)
	if err != nil {
		panic(err)
	}
	r.RemoteAddr = "192.0.2.1:1234"
	return r
}
