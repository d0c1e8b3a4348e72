package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Engine.IO protocol v4 conformance, one test per rule of the specification
// (github.com/socketio/engine.io-protocol, v4 README) or of the reference server where the
// specification is silent, named after the section. Each drives the handler with plain HTTP
// requests and WebSocket frames (no Engine.IO client) and checks bytes, status codes and close
// codes. docs/socketio-conformance.md, "Engine.IO v4", lists the rules and these tests.

// eioServer is a server whose heartbeat and auth timeout stay out of the way (a minute).
func eioServer(t *testing.T) *server {
	return newServer(t, Config{PingInterval: time.Minute, PongTimeout: time.Minute, AuthTimeout: time.Minute}, realtime.HubConfig{})
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

// do sends one request to the handler: method, the query after "EIO=4&" (a full "?…" query when
// it starts with "?"), a Content-Type and a body for POSTs.
func (s *server) do(method, query, contentType, body string) httpResult {
	s.t.Helper()
	return s.doCtx(context.Background(), method, query, contentType, body)
}

func (s *server) doCtx(ctx context.Context, method, query, contentType, body string) httpResult {
	s.t.Helper()
	url := s.url(query)
	if strings.HasPrefix(query, "?") {
		url = s.srv.URL + "/socket.io/" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{status: -1, body: err.Error()}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return httpResult{res.StatusCode, res.Header, string(b)}
}

// wantEIOError checks an Engine.IO error answer: status and the JSON body {"code","message"}.
func wantEIOError(t *testing.T, what string, r httpResult, status, code int, message string) {
	t.Helper()
	want, _ := json.Marshal(map[string]any{"code": code, "message": message})
	if r.status != status || r.body != string(want) || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: %d %s %q, want %d application/json %s", what, r.status, r.header.Get("Content-Type"), r.body, status, want)
	}
}

// dialEIO opens a WebSocket with the query after "EIO=4&transport=websocket&".
func (s *server) dialEIO(query string) (*websocket.Conn, *http.Response, error) {
	u := strings.Replace(s.url("transport=websocket&"+query), "http", "ws", 1)
	ws, res, err := websocket.DefaultDialer.Dial(u, nil)
	if ws != nil {
		s.t.Cleanup(func() { ws.Close() })
	}
	return ws, res, err
}

// closeCode reads until the connection ends and returns the status of the server's Close frame:
// 1005 for a Close without status, 1006 when TCP ended without a Close frame (as gorilla
// reports them). Pings are answered.
func closeCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			return ce.Code
		case err != nil:
			return websocket.CloseAbnormalClosure
		case string(msg) == "2":
			ws.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}

// readText reads the next message other than a ping.
func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(msg) != "2" {
			return string(msg)
		}
	}
}

func sendText(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// waitGetting waits until a long-polling GET of the session sid is pending.
func (s *server) waitGetting(sid string) {
	s.t.Helper()
	waitFor(s.t, "the pending GET", func() bool {
		ses := s.h.session(sid)
		if ses == nil {
			return false
		}
		ses.mu.Lock()
		defer ses.mu.Unlock()
		return ses.getting
	})
}

// pendingGET starts a GET for sid and returns its result channel once the GET is pending.
func (s *server) pendingGET(sid string) <-chan httpResult {
	s.t.Helper()
	got := make(chan httpResult, 1)
	go func() { got <- s.do("GET", "transport=polling&sid="+sid, "", "") }()
	s.waitGetting(sid)
	return got
}

// probe opens the upgrade WebSocket for sid and completes the probe ("2probe" → "3probe").
func (s *server) probe(sid string) *websocket.Conn {
	s.t.Helper()
	ws, _, err := s.dialEIO("sid=" + sid)
	if err != nil {
		s.t.Fatal(err)
	}
	sendText(s.t, ws, "2probe")
	if msg := readText(s.t, ws); msg != "3probe" {
		s.t.Fatalf("probe answer %q, want 3probe", msg)
	}
	return ws
}

// Handshake: "the server MUST respond with an open packet" with exactly sid, upgrades,
// pingInterval, pingTimeout (ms) and maxPayload (bytes), the configured values; upgrades is
// ["websocket"] on polling, [] on WebSocket, whose first message is the open packet.
func TestEIO_Handshake_OpenPacketFields(t *testing.T) {
	s := newServer(t, Config{PingInterval: 1234 * time.Millisecond, PongTimeout: 567 * time.Millisecond, MaxPayload: 4321}, realtime.HubConfig{})
	check := func(what, packet string, upgrades []string) {
		t.Helper()
		if !strings.HasPrefix(packet, "0{") {
			t.Fatalf("%s: %q is not an open packet", what, packet)
		}
		var open map[string]any
		if err := json.Unmarshal([]byte(packet[1:]), &open); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range open {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, []string{"maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"}) {
			t.Errorf("%s: keys %v", what, keys)
		}
		sid, _ := open["sid"].(string)
		got, _ := json.Marshal(open["upgrades"])
		want, _ := json.Marshal(upgrades)
		if len(sid) < 16 || string(got) != string(want) || open["pingInterval"] != 1234.0 || open["pingTimeout"] != 567.0 || open["maxPayload"] != 4321.0 {
			t.Errorf("%s: %s", what, packet)
		}
	}
	r := s.do("GET", "transport=polling", "", "")
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Errorf("polling handshake: %d %s", r.status, r.header.Get("Content-Type"))
	}
	check("polling", r.body, []string{"websocket"})
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	check("websocket", readText(t, ws), []string{})
}

// Transports, errors: "If a mandatory query parameter is missing, then the server MUST respond
// with an HTTP 400 error status"; the body and codes are the reference server's
// ({"code":0..5,"message":...}), EIO other than 4 is code 5, on both transports.
func TestEIO_Errors_RefusalsAre400WithTheReferenceCodes(t *testing.T) {
	s := eioServer(t)
	cases := []struct {
		name, method, query string
		code                int
		message             string
	}{
		{"no transport", "GET", "?EIO=4", 0, "Transport unknown"},
		{"unknown transport", "GET", "?EIO=4&transport=flashsocket", 0, "Transport unknown"},
		{"no EIO", "GET", "?transport=polling", 5, "Unsupported protocol version"},
		{"EIO=3", "GET", "?EIO=3&transport=polling", 5, "Unsupported protocol version"},
		{"EIO=abc", "GET", "?EIO=abc&transport=polling", 5, "Unsupported protocol version"},
		{"handshake by POST", "POST", "transport=polling", 2, "Bad handshake method"},
		{"handshake by PUT", "PUT", "transport=polling", 2, "Bad handshake method"},
		{"unknown sid, GET", "GET", "transport=polling&sid=nope", 1, "Session ID unknown"},
		{"unknown sid, POST", "POST", "transport=polling&sid=nope", 1, "Session ID unknown"},
		{"websocket without Upgrade", "GET", "transport=websocket", 3, "Bad request"},
	}
	for _, c := range cases {
		wantEIOError(t, c.name, s.do(c.method, c.query, "text/plain", "6"), 400, c.code, c.message)
	}
	for query, code := range map[string]int{"&EIO=3": 5, "sid=nope": 1} {
		u := strings.Replace(s.url("transport=websocket&"+query), "http", "ws", 1)
		if query == "&EIO=3" {
			u = strings.Replace(s.srv.URL+"/socket.io/?EIO=3&transport=websocket", "http", "ws", 1)
		}
		_, res, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil || res == nil || res.StatusCode != 400 {
			t.Errorf("WebSocket %s: %v, want HTTP 400", query, err)
			continue
		}
		var body struct{ Code int }
		json.NewDecoder(res.Body).Decode(&body)
		if body.Code != code {
			t.Errorf("WebSocket %s: code %d, want %d", query, body.Code, code)
		}
	}
}

// Sending data: "To indicate success, the server MUST return an HTTP 200 response, with the
// string ok in the response body" (text/html, as the reference server sends it).
func TestEIO_Polling_PostIsAnsweredOK(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	r := s.do("POST", "transport=polling&sid="+sid, "text/plain;charset=UTF-8", "6")
	if r.status != 200 || r.body != "ok" || r.header.Get("Content-Type") != "text/html" {
		t.Errorf("POST: %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
}

// Packet encoding, HTTP long-polling: the packets of a payload are separated by the record
// separator \x1e, both ways.
func TestEIO_Polling_PacketsAreJoinedByTheRecordSeparator(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	if st := s.post(sid, "40/a,\x1e40/b,"); st != 200 {
		t.Fatalf("POST: %d", st)
	}
	r := s.do("GET", "transport=polling&sid="+sid, "", "")
	want := `44/a,{"message":"Invalid namespace"}` + "\x1e" + `44/b,{"message":"Invalid namespace"}`
	if r.status != 200 || r.body != want {
		t.Errorf("GET: %d %q, want %q", r.status, r.body, want)
	}
}

// Receiving data: "a client MUST NOT have more than one active GET request. Should it happen,
// the server MUST return an HTTP 400 error status and close the session"; the pending GET gets
// the close packet.
func TestEIO_Polling_SecondGETIs400AndClosesTheSession(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	pending := s.pendingGET(sid)
	wantEIOError(t, "second GET", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 3, "Bad request")
	if r := <-pending; r.status != 200 || r.body != "1" {
		t.Errorf("pending GET: %d %q, want the close packet", r.status, r.body)
	}
	wantEIOError(t, "GET after", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 1, "Session ID unknown")
}

// Sending data: "a client MUST NOT have more than one active POST request. Should it happen,
// the server MUST return an HTTP 400 error status and close the session".
func TestEIO_Polling_SecondPOSTIs400AndClosesTheSession(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	body, feed := io.Pipe()
	first := make(chan int, 1)
	go func() {
		res, err := http.Post(s.url("transport=polling&sid="+sid), "text/plain", body)
		if err != nil {
			first <- -1
			return
		}
		res.Body.Close()
		first <- res.StatusCode
	}()
	feed.Write([]byte("6"))
	waitFor(t, "the first POST", func() bool {
		ses := s.h.session(sid)
		ses.mu.Lock()
		defer ses.mu.Unlock()
		return ses.posting
	})
	wantEIOError(t, "second POST", s.do("POST", "transport=polling&sid="+sid, "text/plain", "6"), 400, 3, "Bad request")
	feed.Close()
	<-first
	wantEIOError(t, "GET after", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 1, "Session ID unknown")
}

// Close over long-polling (the protocol's test suite, "forcefully closes the session"): the
// client POSTs the close packet while its GET is pending; the GET is answered with a noop "6"
// (not the close packet), and the session is gone: the next GET gets 400.
func TestEIO_Polling_CloseAnswersPendingGETWithNoop(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	pending := s.pendingGET(sid)
	if r := s.do("POST", "transport=polling&sid="+sid, "text/plain", "1"); r.status != 200 || r.body != "ok" {
		t.Errorf("POST close: %d %q", r.status, r.body)
	}
	if r := <-pending; r.status != 200 || r.body != "6" {
		t.Errorf("pending GET: %d %q, want the noop", r.status, r.body)
	}
	wantEIOError(t, "GET after", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 1, "Session ID unknown")
}

// Close over long-polling, the race: the client sends the close POST and its GET at once and
// the POST is handled first; the GET still gets the noop, once, not a 400.
func TestEIO_Polling_CloseBeforeTheGETStillAnswersNoop(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	if st := s.post(sid, "1"); st != 200 {
		t.Fatalf("POST close: %d", st)
	}
	if r := s.do("GET", "transport=polling&sid="+sid, "", ""); r.status != 200 || r.body != "6" {
		t.Errorf("GET after the close: %d %q, want the noop", r.status, r.body)
	}
	wantEIOError(t, "second GET", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 1, "Session ID unknown")
}

// An aborted pending GET closes the session at once, as the reference server does ("poll
// connection closed prematurely"), not after the ping timeout.
func TestEIO_Polling_AbortedGETClosesTheSession(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.doCtx(ctx, "GET", "transport=polling&sid="+sid, "", "")
	}()
	s.waitGetting(sid)
	cancel()
	<-done
	waitFor(t, "the session closed", func() bool { return s.h.session(sid) == nil })
}

// Headers: binary data is sent as application/octet-stream, which v4 payloads never are (binary
// is base64 in a text payload): the reference server closes the session ("invalid content");
// we answer 400 too.
func TestEIO_Polling_BinaryContentTypeIsRefused(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	wantEIOError(t, "octet-stream POST", s.do("POST", "transport=polling&sid="+sid, "application/octet-stream", "6"), 400, 3, "Bad request")
	wantEIOError(t, "GET after", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 1, "Session ID unknown")
}

// Heartbeat: "At a given interval (pingInterval) the server sends a ping packet and the client
// has a few seconds (pingTimeout) to send a pong packet back"; each pong keeps the session.
func TestEIO_Heartbeat_ServerPingsAndPongsKeepTheSession(t *testing.T) {
	s := newServer(t, Config{PingInterval: 20 * time.Millisecond, PongTimeout: time.Minute}, realtime.HubConfig{})
	sid := s.pollHandshake()
	for range 3 {
		if r := s.do("GET", "transport=polling&sid="+sid, "", ""); r.status != 200 || r.body != "2" {
			t.Fatalf("GET: %d %q, want a ping", r.status, r.body)
		}
		if st := s.post(sid, "3"); st != 200 {
			t.Fatalf("pong: %d", st)
		}
	}
}

// Heartbeat: "If the server does not receive a pong packet back, then it SHOULD consider that
// the connection is closed."
func TestEIO_Heartbeat_NoPongClosesTheSession(t *testing.T) {
	s := newServer(t, Config{PingInterval: 20 * time.Millisecond, PongTimeout: 20 * time.Millisecond}, realtime.HubConfig{})
	sid := s.pollHandshake()
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	ws.ReadMessage() // the open packet; the pings are never answered
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Errorf("WebSocket: %v, want close 1000", err)
			}
			break
		}
		if string(msg) != "2" {
			t.Fatalf("WebSocket: %q", msg)
		}
	}
	waitFor(t, "the polling session closed", func() bool { return s.h.session(sid) == nil })
}

// Heartbeat, from v3 to v4: "reverse ping/pong mechanism": a ping from the client breaks the
// direction; the reference server closes the session ("invalid heartbeat direction").
func TestEIO_Heartbeat_PingFromTheClientClosesTheSession(t *testing.T) {
	s := eioServer(t)
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	readText(t, ws)
	sendText(t, ws, "2")
	if code := closeCode(t, ws); code != websocket.CloseProtocolError {
		t.Errorf("close %d, want 1002", code)
	}
}

// WebSocket: "Each packet (read or write) is sent in its own WebSocket frame".
func TestEIO_WebSocket_OnePacketPerFrame(t *testing.T) {
	s := eioServer(t)
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	readText(t, ws)
	sendText(t, ws, "40/a,")
	sendText(t, ws, "40/b,")
	for _, ns := range []string{"/a", "/b"} {
		if msg := readText(t, ws); msg != "44"+ns+`,{"message":"Invalid namespace"}` {
			t.Errorf("message %q", msg)
		}
	}
}

// WebSocket: "A client MUST NOT open more than one WebSocket connection per session. Should it
// happen, the server MUST close the WebSocket connection": the second is accepted (HTTP 101)
// and closed with a Close frame 1008; the session's own goes on.
func TestEIO_WebSocket_SecondWebSocketIsAcceptedThenClosed(t *testing.T) {
	s := eioServer(t)
	first, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	var open struct{ SID string }
	json.Unmarshal([]byte(readText(t, first)[1:]), &open)
	second, res, err := s.dialEIO("sid=" + open.SID)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("second WebSocket: %v", err)
	}
	if code := closeCode(t, second); code != websocket.ClosePolicyViolation {
		t.Errorf("second WebSocket closed with %d, want 1008", code)
	}
	sendText(t, first, "40/a,")
	if msg := readText(t, first); !strings.HasPrefix(msg, "44/a,") {
		t.Errorf("first WebSocket after: %q", msg)
	}
}

// Close: "1" from the client closes the session; every close the server starts on a WebSocket
// sends a Close frame (RFC 6455 §7.1.2), 1000 here.
func TestEIO_WebSocket_ClosePacketGetsClose1000(t *testing.T) {
	s := eioServer(t)
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	readText(t, ws)
	sendText(t, ws, "1")
	if code := closeCode(t, ws); code != websocket.CloseNormalClosure {
		t.Errorf("close %d, want 1000", code)
	}
}

// A close that comes while a write holds the connection still sends its Close frame, after that
// write (no frame is cut: RFC 6455 §5.4), instead of dropping TCP.
func TestEIO_WebSocket_CloseDuringAWriteStillSendsACloseFrame(t *testing.T) {
	s := eioServer(t)
	c := s.dialWS("")
	ses := s.h.session(c.sid)
	ses.wmu.Lock() // a write in progress
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		ses.closeWith(websocket.ClosePolicyViolation)
	}()
	<-closed
	ses.writeWSLocked([][]byte{[]byte("6")}) // refused: the session owes its Close
	ses.unlockW()                            // the write ends
	if code := closeCode(t, c.ws); code != websocket.ClosePolicyViolation {
		t.Errorf("close %d, want 1008", code)
	}
}

// Upgrade: the client sends "2probe" on a WebSocket with the sid; the server "MUST send a noop
// packet to any pending GET request" and "respond with a pong packet with the string probe";
// after the client's "5" every packet goes over the WebSocket, and polling requests for the sid
// get 400 "Bad request" (the reference server's TRANSPORT_MISMATCH).
func TestEIO_Upgrade_ProbeNoopThenUpgrade(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	pending := s.pendingGET(sid)
	ws := s.probe(sid)
	if r := <-pending; r.status != 200 || r.body != "6" {
		t.Errorf("pending GET: %d %q, want the noop", r.status, r.body)
	}
	sendText(t, ws, "5")
	sendText(t, ws, "40/a,")
	if msg := readText(t, ws); !strings.HasPrefix(msg, "44/a,") {
		t.Errorf("after the upgrade: %q", msg)
	}
	wantEIOError(t, "GET after the upgrade", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 3, "Bad request")
	wantEIOError(t, "POST after the upgrade", s.do("POST", "transport=polling&sid="+sid, "text/plain", "6"), 400, 3, "Bad request")
}

// Upgrade races, as the reference server: a GET that comes between the probe and the upgrade
// packet gets a noop at once; a POST then is handled, and its answers are sent over the
// WebSocket after the upgrade.
func TestEIO_Upgrade_RequestsDuringTheUpgrade(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	ws := s.probe(sid)
	if r := s.do("GET", "transport=polling&sid="+sid, "", ""); r.status != 200 || r.body != "6" {
		t.Errorf("GET during the upgrade: %d %q, want the noop", r.status, r.body)
	}
	if r := s.do("POST", "transport=polling&sid="+sid, "text/plain", "40/a,"); r.status != 200 || r.body != "ok" {
		t.Errorf("POST during the upgrade: %d %q", r.status, r.body)
	}
	sendText(t, ws, "5")
	if msg := readText(t, ws); !strings.HasPrefix(msg, "44/a,") {
		t.Errorf("the POST's answer: %q", msg)
	}
}

// Upgrade: a probe that fails (here a message instead of the probe) gets a Close frame, 1002,
// and the session stays on polling (the reference server closes the probe transport).
func TestEIO_Upgrade_FailedProbeGetsACloseFrame(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	ws, _, err := s.dialEIO("sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	sendText(t, ws, "4hello")
	if code := closeCode(t, ws); code != websocket.CloseProtocolError {
		t.Errorf("failed probe closed with %d, want 1002", code)
	}
	if st := s.post(sid, "40/a,"); st != 200 {
		t.Fatalf("POST after the failed probe: %d", st)
	}
	if _, packets := s.get(sid); !strings.HasPrefix(packets[0], "44/a,") {
		t.Errorf("GET after the failed probe: %q", packets)
	}
}

// Upgrade and WebSocket: a second WebSocket while one is probing is accepted and closed (1008);
// the probe completes.
func TestEIO_Upgrade_SecondWebSocketDuringTheProbeIsClosed(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	ws := s.probe(sid)
	second, _, err := s.dialEIO("sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, second); code != websocket.ClosePolicyViolation {
		t.Errorf("second WebSocket closed with %d, want 1008", code)
	}
	sendText(t, ws, "5")
	sendText(t, ws, "40/a,")
	if msg := readText(t, ws); !strings.HasPrefix(msg, "44/a,") {
		t.Errorf("after the upgrade: %q", msg)
	}
}

// Upgrade: a session that closes while its WebSocket is probing closes the probe with a Close
// frame (1000 when the client asked).
func TestEIO_Upgrade_SessionCloseDuringTheProbeClosesIt(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	ws := s.probe(sid)
	if st := s.post(sid, "1"); st != 200 {
		t.Fatalf("POST close: %d", st)
	}
	if code := closeCode(t, ws); code != websocket.CloseNormalClosure {
		t.Errorf("probe closed with %d, want 1000", code)
	}
}

// Protocol, packet types: noop (6) is for the upgrade; one from the client is ignored (as the
// reference server does), on both transports.
func TestEIO_Noop_FromTheClientIsIgnored(t *testing.T) {
	s := eioServer(t)
	sid := s.pollHandshake()
	if st := s.post(sid, "6\x1e6"); st != 200 {
		t.Errorf("POST noops: %d", st)
	}
	if st := s.post(sid, "40/a,"); st != 200 {
		t.Errorf("POST after the noops: %d", st)
	}
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	readText(t, ws)
	sendText(t, ws, "6")
	sendText(t, ws, "40/a,")
	if msg := readText(t, ws); !strings.HasPrefix(msg, "44/a,") {
		t.Errorf("WebSocket after a noop: %q", msg)
	}
}

// Handshake, maxPayload (and the reference server's maxHttpBufferSize): a POST body or a
// WebSocket message over the limit closes the session: HTTP 413 with the Engine.IO error body,
// or a Close frame 1009 (RFC 6455 §7.4.1). Before the CONNECT the limit is PreAuthMaxPayload.
func TestEIO_MaxPayload_LargerInputClosesTheSession(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Minute, PreAuthMaxPayload: 100}, realtime.HubConfig{})
	sid := s.pollHandshake()
	if st := s.post(sid, "6"+strings.Repeat("x", 99)); st != 200 {
		t.Errorf("POST of 100 bytes: %d", st)
	}
	wantEIOError(t, "POST of 101 bytes", s.do("POST", "transport=polling&sid="+sid, "text/plain", "6"+strings.Repeat("x", 100)), 413, 3, "Bad request")
	wantEIOError(t, "GET after", s.do("GET", "transport=polling&sid="+sid, "", ""), 400, 1, "Session ID unknown")
	ws, _, err := s.dialEIO("")
	if err != nil {
		t.Fatal(err)
	}
	readText(t, ws)
	sendText(t, ws, "6"+strings.Repeat("x", 100))
	if code := closeCode(t, ws); code != websocket.CloseMessageTooBig {
		t.Errorf("close %d, want 1009", code)
	}
}
