package realtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// asUser stands in for the HTTP layer: it authenticates every request as user.
func asUser(user string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := auth.WithClaims(r.Context(), auth.Claims{UserID: user, Expires: time.Now().Add(time.Hour)})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func dialWS(t *testing.T, srv *httptest.Server, query string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/" + query
	ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Sec-WebSocket-Protocol": {auth.Subprotocol}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != auth.Subprotocol {
		t.Errorf("selected subprotocol %q, want %q", got, auth.Subprotocol)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func TestWebSocketFramesAndShutdownClose(t *testing.T) {
	h := newResumeHub(t, nil)
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{})))
	defer srv.Close()
	ws := dialWS(t, srv, "")
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })

	n := event("concept-notifications", 0, 42, "alice")
	n.Data = []byte(`{"conceptId":"c1","userIds":["alice"],"conceptName":"JavaScript Arrays","masteryLevel":0.9}`)
	h.Publish(n)

	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var opening frameJSON
	if err := ws.ReadJSON(&opening); err != nil || opening.Event != cursorEvent || opening.Cursor == "" {
		t.Fatalf("first frame %+v (%v), want the opening cursor", opening, err)
	}
	typ, msg, err := ws.ReadMessage()
	if err != nil || typ != websocket.TextMessage {
		t.Fatalf("read: %v type %d", err, typ)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(msg, &f); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id":    `"concept-notifications:0:42"`,
		"event": `"concept-mastered"`,
		"data":  string(n.Data),
		"time":  `"2023-11-14T22:13:20.000Z"`,
	}
	for k, v := range want {
		if string(f[k]) != v {
			t.Errorf("%s = %s, want %s", k, f[k], v)
		}
	}
	if len(f) != 4 {
		t.Errorf("frame %s: want exactly id, event, data and time (the cursor travels in cursor frames)", msg)
	}

	// {"type":"cursor"} asks for the position now: past the event.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"cursor"}`)); err != nil {
		t.Fatal(err)
	}
	var asked frameJSON
	if err := ws.ReadJSON(&asked); err != nil || asked.Event != cursorEvent || asked.Cursor == "" || asked.Cursor == opening.Cursor {
		t.Fatalf("answer %+v (%v), want a cursor frame past the opening one", asked, err)
	}
	if ps, err := h.Codec().Decode(asked.Cursor); err != nil || !slices.Contains(ps, Position{"concept-notifications", 0, 43}) {
		t.Errorf("asked cursor %v (%v), want concept-notifications/0 at 43", ps, err)
	}

	go h.Shutdown(t.Context())
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 {
		t.Fatalf("after shutdown: %v, want close 1001", err)
	}
}

func TestWebSocketSlowClientIsClosedWith4008(t *testing.T) {
	h := NewHub(HubConfig{SendQueueBytes: 64 << 10})
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{WriteTimeout: time.Minute})))
	defer srv.Close()
	ws := dialWS(t, srv, "") // never reads until the end
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })

	big := event("concept-notifications", 0, 0, "alice")
	big.Data = []byte(`{"pad":"` + strings.Repeat("x", 16<<10) + `"}`)
	for i := range 2000 { // 32 MB: more than socket buffers plus the queue
		big.Offset = int64(i)
		h.Publish(big)
		if h.Connections() == 0 {
			break
		}
	}
	waitFor(t, "the slow close", func() bool { return h.Connections() == 0 })
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != 4008 {
				t.Errorf("close code %d, want 4008", ce.Code)
			}
		} else {
			t.Logf("no close frame reached the client (%v): the socket was cut after the grace period", err)
		}
		return
	}
}

func TestWebSocketKeepalivePings(t *testing.T) {
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{PingInterval: 20 * time.Millisecond})))
	defer srv.Close()
	ws := dialWS(t, srv, "")
	pings := make(chan struct{}, 10)
	ws.SetPingHandler(func(string) error { pings <- struct{}{}; return nil })
	go ws.ReadMessage() // processes control frames
	for range 3 {
		select {
		case <-pings:
		case <-time.After(10 * time.Second):
			t.Fatal("no ping")
		}
	}
}

func TestWebSocketSilentClientIsDropped(t *testing.T) {
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{PingInterval: 20 * time.Millisecond, PongTimeout: 20 * time.Millisecond})))
	defer srv.Close()
	ws := dialWS(t, srv, "") // never reads, so never answers pings
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	waitFor(t, "the silent client dropped", func() bool { return h.Connections() == 0 })
	// What it finds when it reads at last: the pings, then a close frame saying why.
	ws.SetPingHandler(func(string) error { return nil })
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.NextReader()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != int(DisconnectPingTimeout.Code) {
			t.Fatalf("read %v, want close %d (ping timeout)", err, DisconnectPingTimeout.Code)
		}
		return
	}
}

func TestSSEStream(t *testing.T) {
	h := newResumeHub(t, nil)
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{PingInterval: 30 * time.Millisecond})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, v := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache, no-store, no-transform",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	h.Publish(event("concept-notifications", 0, 5, "alice"))

	rd := bufio.NewReader(resp.Body)
	var sawHeartbeat, sawEvent bool
	var id string // the last id line: the opening cursor
	for !(sawHeartbeat && sawEvent) {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		switch {
		case line == ": ping\n":
			sawHeartbeat = true
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id: "))
		case strings.HasPrefix(line, "data: "):
			var f frameJSON
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f); err != nil {
				t.Fatal(err)
			}
			if f.Event == cursorEvent {
				if id == "" || f.Cursor != "" {
					t.Fatalf("cursor frame %+v after id line %q: want the cursor on the id line alone", f, id)
				}
				continue
			}
			if f.ID != "concept-notifications:0:5" || f.Cursor != "" || id == "" {
				t.Fatalf("event %+v after id line %q: want the event without a cursor, after the opening cursor's id line", f, id)
			}
			sawEvent = true
		}
	}

	go h.Shutdown(t.Context())
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal("stream ended without a disconnect frame")
		}
		if strings.Contains(line, `"event":"disconnect"`) && strings.Contains(line, `"code":1001`) {
			return
		}
	}
}

// TestWebSocketClosesWith4001WhenTheTokenExpires: the keepalive tick enforces the token's exp.
func TestWebSocketClosesWith4001WhenTheTokenExpires(t *testing.T) {
	h := NewHub(HubConfig{})
	expiring := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := auth.WithClaims(r.Context(), auth.Claims{UserID: "alice", Expires: time.Now().Add(50 * time.Millisecond)})
		NewWebSocketHandler(h, EndpointConfig{PingInterval: 20 * time.Millisecond}).ServeHTTP(w, r.WithContext(ctx))
	})
	srv := httptest.NewServer(expiring)
	defer srv.Close()
	ws := dialWS(t, srv, "")
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("got %v, want close 4001 token expired", err)
		}
		return
	}
}

// blockingReplayer serves replays from a memReplayer once release is closed.
type blockingReplayer struct {
	memReplayer
	release chan struct{}
}

func (b *blockingReplayer) Replay(ctx context.Context, user string, from, to []Position) ([]*notification.Event, error) {
	<-b.release
	return b.memReplayer.Replay(ctx, user, from, to)
}

// TestSSEStreamOpensBeforeASlowReplay: an EventSource resuming from Kafka gets its response
// headers at once, not when the replay ends; the missed event then comes before live ones.
func TestSSEStreamOpensBeforeASlowReplay(t *testing.T) {
	rp := &blockingReplayer{release: make(chan struct{})}
	h := newResumeHub(t, rp)
	rp.records = []*notification.Event{event("concept-notifications", 0, 0, "alice")}
	cursor := h.Codec().Encode(h.Position())
	h.Publish(rp.records[0])
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{PingInterval: time.Minute})))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before srv.Close: ends the stream
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	req.Header.Set("Last-Event-ID", cursor)
	opened := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(opened)
			return
		}
		opened <- resp
	}()
	var resp *http.Response
	select {
	case resp = <-opened:
	case <-time.After(5 * time.Second):
		close(rp.release)
		cancel()
		t.Fatal("the stream did not open while the replay was running")
	}
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	h.Publish(event("concept-notifications", 0, 1, "alice"))
	close(rp.release)
	rd := bufio.NewReader(resp.Body)
	var ids []string
	for len(ids) < 2 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %v: %v", ids, err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var f frameJSON
			if err := json.Unmarshal([]byte(data), &f); err != nil {
				t.Fatal(err)
			}
			if f.Event != cursorEvent {
				ids = append(ids, f.ID)
			}
		}
	}
	if want := []string{"concept-notifications:0:0", "concept-notifications:0:1"}; !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
}

// TestClientEndpointsAnswer429PastTheLimit: a connect past HubConfig.MaxConnsPerUser that got
// by the HTTP layer's early check gets a 429 problem, on both endpoints.
func TestClientEndpointsAnswer429PastTheLimit(t *testing.T) {
	h := NewHub(HubConfig{MaxConnsPerUser: 1})
	if _, _, err := h.Register(ConnOptions{User: "alice", Transport: newFake(FormatWebSocket, false)}); err != nil {
		t.Fatal(err)
	}
	for name, handler := range map[string]http.Handler{
		"ws":  NewWebSocketHandler(h, EndpointConfig{}),
		"sse": NewSSEHandler(h, EndpointConfig{}),
	} {
		srv := httptest.NewServer(asUser("alice", handler))
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Code string }
		json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != http.StatusTooManyRequests || p.Code != "too-many-connections" || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %q %q, want 429 too-many-connections problem", name, resp.StatusCode, p.Code, resp.Header.Get("Content-Type"))
		}
	}
}
