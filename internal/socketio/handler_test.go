package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Go-side tests of behaviour the Node suite cannot observe: hub connections and sessions left
// behind, backpressure, shutdown, ordering under concurrency, metrics.

type server struct {
	t      *testing.T
	hub    *realtime.Hub
	h      *Handler
	srv    *httptest.Server
	mu     sync.Mutex
	offset int64
}

func newServer(t *testing.T, cfg Config, hubCfg realtime.HubConfig) *server {
	t.Helper()
	if cfg.Verifier == nil {
		cfg.Verifier = auth.NewVerifier(testSecret)
	}
	hub := realtime.NewHub(hubCfg)
	h := NewHandler(hub, cfg)
	s := &server{t: t, hub: hub, h: h, srv: httptest.NewServer(h)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Shutdown(ctx)
		h.Shutdown(ctx)
		s.srv.Close()
	})
	return s
}

func (s *server) publish(user string, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hub.Publish(&notification.Event{Name: "concept-mastered", Topic: "t", Offset: s.offset, Time: time.Now(), UserIDs: []string{user}, Data: []byte(data)})
	s.offset++
}

func (s *server) url(query string) string {
	return s.srv.URL + "/socket.io/?EIO=4&" + query
}

func testToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Issue(testSecret, user, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// value reads a gauge or a counter.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	(<-ch).Write(&m)
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

func (s *server) sessions() int {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return len(s.h.sessions)
}

// wsClient is a test client on a WebSocket-only session; it answers pings by itself.
type wsClient struct {
	t   *testing.T
	ws  *websocket.Conn
	sid string
	wmu sync.Mutex // gorilla allows one writer at a time
}

func (c *wsClient) write(msg string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, []byte(msg))
}

func (s *server) dialWS(query string) *wsClient {
	s.t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.url("transport=websocket&"+query), "http", "ws", 1), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: s.t, ws: ws}
	open := c.next()
	var o struct{ SID string }
	if err := json.Unmarshal([]byte(open[1:]), &o); err != nil || open[0] != '0' {
		s.t.Fatalf("open packet %q: %v", open, err)
	}
	c.sid = o.SID
	return c
}

func (s *server) connectWS(user string) *wsClient {
	c := s.dialWS("")
	c.send(`40{"token":"` + testToken(s.t, user) + `"}`)
	if reply := c.next(); !strings.HasPrefix(reply, "40{") {
		s.t.Fatalf("CONNECT: %s", reply)
	}
	s.waitAttached(c.sid)
	return c
}

// waitAttached waits until the session has its hub connection (the client may see the CONNECT
// reply a moment before the session records it).
func (s *server) waitAttached(sid string) {
	s.t.Helper()
	waitFor(s.t, "the hub connection", func() bool {
		ses := s.h.session(sid)
		return ses != nil && ses.conn.Load() != nil
	})
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	if err := c.write(msg); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message other than a ping (answered), or "" once the socket is closed.
func (c *wsClient) next() string {
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return ""
		}
		if string(msg) == "2" {
			c.write("3")
			continue
		}
		return string(msg)
	}
}

func (s *server) get(sid string) (int, []string) {
	s.t.Helper()
	res, err := http.Get(s.url("transport=polling&sid=" + sid))
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.Split(string(body), "\x1e")
}

func (s *server) post(sid, body string) int {
	s.t.Helper()
	res, err := http.Post(s.url("transport=polling&sid="+sid), "text/plain", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (s *server) pollHandshake() string {
	s.t.Helper()
	status, packets := s.get("")
	var o struct{ SID string }
	if status != 200 || json.Unmarshal([]byte(packets[0][1:]), &o) != nil {
		s.t.Fatalf("handshake: %d %q", status, packets)
	}
	return o.SID
}

func (s *server) connectPolling(user string) string {
	sid := s.pollHandshake()
	if st := s.post(sid, `40{"token":"`+testToken(s.t, user)+`"}`); st != 200 {
		s.t.Fatalf("POST CONNECT: %d", st)
	}
	if _, packets := s.get(sid); !strings.HasPrefix(packets[0], "40{") {
		s.t.Fatalf("CONNECT: %q", packets)
	}
	s.waitAttached(sid)
	return sid
}

func TestClosedSessionsLeaveNothingBehind(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newServer(t, Config{Metrics: reg}, realtime.HubConfig{})
	ws := s.connectWS("alice")
	wsIdle := s.dialWS("")
	sid := s.connectPolling("alice")
	sid2 := s.connectPolling("bob")
	waitFor(t, "3 hub connections", func() bool { return s.hub.Connections() == 3 })
	if got := value(s.h.m.sessions.WithLabelValues("websocket")); got != 2 {
		t.Errorf("websocket sessions gauge = %v, want 2", got)
	}

	ws.send("41")     // Socket.IO DISCONNECT
	wsIdle.ws.Close() // the transport goes away
	s.post(sid, "1")  // Engine.IO close
	s.post(sid2, "41")
	waitFor(t, "no hub connection", func() bool { return s.hub.Connections() == 0 })
	waitFor(t, "no session", func() bool { return s.sessions() == 0 })
	for _, kind := range []string{"polling", "websocket"} {
		if got := value(s.h.m.sessions.WithLabelValues(kind)); got != 0 {
			t.Errorf("%s sessions gauge = %v after every session closed", kind, got)
		}
	}
	s.get(sid) // the GET sent with the close may get a noop (see Handler.owesNoop)
	if st, _ := s.get(sid); st != http.StatusBadRequest {
		t.Errorf("GET on a closed session: %d", st)
	}
}

func TestHubClosesTheSessionWithAnEngineIOClose(t *testing.T) {
	s := newServer(t, Config{}, realtime.HubConfig{})
	ws := s.connectWS("alice")
	sid := s.connectPolling("alice")
	got := make(chan []string)
	go func() { _, p := s.get(sid); got <- p }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if p := <-got; len(p) != 1 || p[0] != "1" {
		t.Errorf("pending GET got %q, want the close packet", p)
	}
	if msg := ws.next(); msg != "1" {
		t.Errorf("WebSocket got %q, want the close packet", msg)
	}
	if msg := ws.next(); msg != "" {
		t.Errorf("then %q, want the connection closed", msg)
	}
	waitFor(t, "no session", func() bool { return s.sessions() == 0 })
}

func TestShutdownClosesSessionsThatNeverConnected(t *testing.T) {
	s := newServer(t, Config{}, realtime.HubConfig{})
	idleWS := s.dialWS("")
	idlePoll := s.pollHandshake()
	connected := s.connectWS("alice")
	pending := make(chan []string)
	go func() { _, p := s.get(idlePoll); pending <- p }()
	waitFor(t, "the pending GET", func() bool {
		ses := s.h.session(idlePoll)
		ses.mu.Lock()
		defer ses.mu.Unlock()
		return ses.getting
	})

	done := make(chan error)
	go func() { done <- s.h.Shutdown(context.Background()) }()
	if p := <-pending; len(p) != 1 || p[0] != "1" {
		t.Errorf("pending GET got %q, want the close packet", p)
	}
	if msg := idleWS.next(); msg != "" {
		t.Errorf("unconnected WebSocket got %q, want it closed", msg)
	}
	res, err := http.Get(s.url("transport=polling"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handshake after Shutdown: %d, want 503", res.StatusCode)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a hub connection's session is open", err)
	default:
	}
	connected.send(`421["whoami"]`) // still served until the hub closes it
	if msg := connected.next(); msg != `431[{"userId":"alice"}]` {
		t.Errorf("ack after Shutdown began: %q", msg)
	}
	s.hub.Shutdown(context.Background())
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownGivesUpAtTheDeadline(t *testing.T) {
	s := newServer(t, Config{}, realtime.HubConfig{})
	c := s.connectWS("alice")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.h.Shutdown(ctx); err != context.Canceled {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	if msg := c.next(); msg != "" {
		t.Errorf("got %q, want the connection closed", msg)
	}
	waitFor(t, "no hub connection", func() bool { return s.hub.Connections() == 0 })
}

func TestPollingClientThatStopsPollingIsClosedAsSlow(t *testing.T) {
	s := newServer(t, Config{WriteTimeout: time.Hour}, realtime.HubConfig{SendQueueBytes: 4096})
	sid := s.connectPolling("alice")
	conn := s.h.session(sid).conn.Load()
	for i := range 100 { // nobody polls: 22 KB for a 4 KB queue
		s.publish("alice", fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", 200)))
	}
	<-conn.Done()
	if conn.Reason() != realtime.DisconnectSlow {
		t.Errorf("reason %v, want DisconnectSlow", conn.Reason())
	}
	// a GET gets the close packet, or, once the session has left the table, "Session ID unknown"
	if st, packets := s.get(sid); st != http.StatusBadRequest && packets[len(packets)-1] != "1" {
		t.Errorf("GET after the close: %d %q", st, packets)
	}
	waitFor(t, "the session gone", func() bool { return s.h.session(sid) == nil })
}

func TestPollingWriteTimeoutClosesTheSession(t *testing.T) {
	s := newServer(t, Config{WriteTimeout: 20 * time.Millisecond, PingInterval: time.Hour}, realtime.HubConfig{})
	sid := s.connectPolling("alice")
	s.publish("alice", `{}`) // no GET takes it
	waitFor(t, "the session closed", func() bool { return s.h.session(sid) == nil })
}

// TestWebSocketWritesStayFramedUnderConcurrency: events, acks and pings go out through the hub
// Conn and the direct path at once; gorilla's reader on the client would fail on an interleaved
// frame, and every event arrives once, in order.
func TestWebSocketWritesStayFramedUnderConcurrency(t *testing.T) {
	s := newServer(t, Config{PingInterval: 2 * time.Millisecond, PongTimeout: time.Minute}, realtime.HubConfig{SendQueueBytes: 1 << 26})
	c := s.connectWS("alice")
	const n = 300
	go func() {
		for i := range n {
			s.publish("alice", fmt.Sprintf(`{"i":%d}`, i))
		}
	}()
	go func() {
		for i := range n {
			c.write(fmt.Sprintf(`42%d["whoami"]`, i))
		}
	}()
	events, acks := 0, 0
	for events < n || acks < n {
		msg := c.next()
		switch {
		case msg == "":
			t.Fatalf("closed after %d events and %d acks", events, acks)
		case strings.HasPrefix(msg, "42["):
			var args []json.RawMessage
			if err := json.Unmarshal([]byte(msg[2:]), &args); err != nil || string(args[1]) != fmt.Sprintf(`{"i":%d}`, events) {
				t.Fatalf("event %d: %s", events, msg)
			}
			events++
		case strings.HasPrefix(msg, "43"):
			acks++
		default:
			t.Fatalf("unexpected %q", msg)
		}
	}
}

// TestConnectReplyPrecedesEveryEvent: with events published all the time, the first packet a
// client gets after its CONNECT is the CONNECT reply, on both transports, and the events after it
// are consecutive (none published after the reply is missed).
func TestConnectReplyPrecedesEveryEvent(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Hour}, realtime.HubConfig{SendQueueBytes: 1 << 26})
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				s.publish("alice", fmt.Sprintf(`{"i":%d}`, i))
			}
		}
	}()
	defer func() { close(stop); <-published }()
	index := func(p string) int {
		var args []json.RawMessage
		var d struct{ I int }
		if !strings.HasPrefix(p, "42[") || json.Unmarshal([]byte(p[2:]), &args) != nil || len(args) < 2 || json.Unmarshal(args[1], &d) != nil {
			t.Fatalf("not an event: %q", p)
		}
		return d.I
	}
	for range 20 {
		c := s.dialWS("")
		c.send(`40{"token":"` + testToken(t, "alice") + `"}`)
		if reply := c.next(); !strings.HasPrefix(reply, "40{") {
			t.Fatalf("WebSocket: first packet after CONNECT %q", reply)
		}
		first := index(c.next())
		for i := 1; i < 5; i++ {
			if got := index(c.next()); got != first+i {
				t.Fatalf("WebSocket: event %d after %d", got, first+i-1)
			}
		}
		c.ws.Close()

		sid := s.pollHandshake()
		s.post(sid, `40{"token":"`+testToken(t, "alice")+`"}`)
		_, packets := s.get(sid)
		if !strings.HasPrefix(packets[0], "40{") {
			t.Fatalf("polling: first packet after CONNECT %.40q", packets[0])
		}
		s.post(sid, "1")
	}
}

// TestUpgradeLosesAndReordersNothing publishes while the session moves from polling to
// WebSocket: the client sees every event once, in order, across both transports.
func TestUpgradeLosesAndReordersNothing(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Minute}, realtime.HubConfig{SendQueueBytes: 1 << 26})
	sid := s.connectPolling("alice")
	const n = 400
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			s.publish("alice", fmt.Sprintf(`{"i":%d}`, i))
		}
	}()

	var got []string
	collect := func(p string) {
		if strings.HasPrefix(p, "42[") {
			var args []json.RawMessage
			json.Unmarshal([]byte(p[2:]), &args)
			got = append(got, string(args[1]))
		}
	}
	polled := make(chan struct{})
	go func() { // poll until the noop that ends polling
		defer close(polled)
		for {
			st, packets := s.get(sid)
			if st != 200 {
				t.Errorf("GET: %d", st)
				return
			}
			for _, p := range packets {
				if p == "6" {
					return
				}
				collect(p)
			}
		}
	}()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.url("transport=websocket&sid="+sid), "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "3probe" {
		t.Fatalf("probe answer %q, %v", msg, err)
	}
	<-polled
	ws.WriteMessage(websocket.TextMessage, []byte("5"))
	for len(got) < n {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		collect(string(msg))
	}
	<-published
	for i, g := range got {
		if g != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("event %d is %s", i, g)
		}
	}
	// whatever came over which transport, the session is on WebSocket now
	ws.WriteMessage(websocket.TextMessage, []byte(`421["whoami"]`))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(msg) == `431[{"userId":"alice"}]` {
			break
		}
	}
	if upgrades := value(s.h.m.upgrades); upgrades != 1 {
		t.Errorf("upgrades = %v", upgrades)
	}
}

// TestLongPollOutlastsServerTimeouts: a GET waits longer than the http.Server's ReadTimeout and
// WriteTimeout (as a long-poll does, up to a ping interval) and still delivers what comes: the
// write deadline is set when the payload is written.
func TestLongPollOutlastsServerTimeouts(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Hour}, realtime.HubConfig{})
	s.srv.Close()
	s.srv = httptest.NewUnstartedServer(s.h)
	s.srv.Config.ReadTimeout, s.srv.Config.WriteTimeout = 50*time.Millisecond, 50*time.Millisecond
	s.srv.Start()
	sid := s.connectPolling("alice")
	got := make(chan string)
	go func() {
		// a GET that fails is retried by net/http and would wait forever: bound it
		res, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.url("transport=polling&sid=" + sid))
		if err != nil {
			got <- err.Error()
			return
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		got <- fmt.Sprint(string(body), err)
	}()
	time.Sleep(200 * time.Millisecond) // beyond both server timeouts
	s.publish("alice", `{"late":true}`)
	if body := <-got; !strings.Contains(body, `{"late":true}`) {
		t.Errorf("GET got %q", body)
	}
	s.post(sid, "1")
}

// TestUnreadAnswersAreBounded: a long-polling client that sends CONNECTs without ever polling
// cannot make the server queue answers without end.
func TestUnreadAnswersAreBounded(t *testing.T) {
	s := newServer(t, Config{PingInterval: time.Hour}, realtime.HubConfig{})
	sid := s.pollHandshake()
	for range maxDirectBacklog + 1 {
		s.post(sid, `40/other,`)
	}
	waitFor(t, "the session closed", func() bool { return s.h.session(sid) == nil })
	if got := value(s.h.m.protocolErrors.WithLabelValues("unread")); got != 1 {
		t.Errorf("unread protocol errors = %v", got)
	}
}

func TestMetricsCountProtocolErrorsAndConnects(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newServer(t, Config{Metrics: reg}, realtime.HubConfig{})
	c := s.dialWS("")
	c.send(`40{"token":"bad"}`)
	c.next()
	c.send(`42["x"`)
	c.next()
	s.connectWS("alice")
	if got := value(s.h.m.protocolErrors.WithLabelValues("socketio")); got != 1 {
		t.Errorf("socketio protocol errors = %v", got)
	}
	if got := value(s.h.m.connects.WithLabelValues("unauthorized")); got != 1 {
		t.Errorf("unauthorized connects = %v", got)
	}
	if got := value(s.h.m.connects.WithLabelValues("ok")); got != 1 {
		t.Errorf("ok connects = %v", got)
	}
	if families, err := reg.Gather(); err != nil || len(families) != 4 {
		t.Errorf("gathered %d metric families: %v", len(families), err)
	}
}

func TestNewHandlerNeedsAVerifier(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	NewHandler(realtime.NewHub(realtime.HubConfig{}), Config{})
}

// TestConnectionLimitPerUser: past the hub's MaxConnsPerUser a CONNECT gets connect_error, other
// users are unaffected, and a freed slot can be used again.
func TestConnectionLimitPerUser(t *testing.T) {
	s := newServer(t, Config{}, realtime.HubConfig{MaxConnsPerUser: 2})
	first := s.connectWS("alice")
	s.connectWS("alice")
	extra := s.dialWS("")
	extra.send(`40{"token":"` + testToken(t, "alice") + `"}`)
	if reply := extra.next(); !strings.HasPrefix(reply, "44{") || !strings.Contains(reply, "too many connections") || !strings.Contains(reply, `"code":"too-many-connections"`) {
		t.Fatalf("third CONNECT of alice: %q, want connect_error too many connections", reply)
	}
	s.connectWS("bob")
	first.ws.Close()
	waitFor(t, "alice's first connection gone", func() bool { return s.hub.UserConnections("alice") == 1 })
	s.connectWS("alice")
}
