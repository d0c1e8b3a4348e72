package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestBackoffBounds(t *testing.T) {
	minD, maxD := 100*time.Millisecond, 3*time.Second
	for n := range 70 {
		ceil := maxD
		if n < 5 { // 100 ms × 2⁵ = 3.2 s is past the cap
			ceil = minD << n
		}
		if got := backoff(n, minD, maxD, func() float64 { return 0 }); got != 0 {
			t.Errorf("retry %d with rnd 0: %v, want 0 (full jitter starts at 0)", n, got)
		}
		hi := backoff(n, minD, maxD, func() float64 { return 0.999999 })
		if hi >= ceil || hi < ceil*99/100 {
			t.Errorf("retry %d with rnd→1: %v, want just under %v", n, hi, ceil)
		}
		// And with the real source: always in [0, ceil).
		for range 50 {
			if d := backoff(n, minD, maxD, randFloat); d < 0 || d >= ceil {
				t.Fatalf("retry %d: %v outside [0, %v)", n, d, ceil)
			}
		}
	}
}

func TestResumeWindowAndToken(t *testing.T) {
	r := NewResume("", 3)
	r.Add("t:0:1") // before any cursor: remembered, not listed
	if r.Token() != "" || !r.Seen("t:0:1") {
		t.Fatalf("before a cursor: token %q, seen %v", r.Token(), r.Seen("t:0:1"))
	}
	r.SetCursor("C1")
	for _, id := range []string{"t:0:2", "t:1:5", "t:0:3"} {
		if r.Seen(id) {
			t.Fatalf("%s seen before it came", id)
		}
		r.Add(id)
	}
	if got, want := r.Token(), "C1~t:0:2,t:1:5,t:0:3"; got != want {
		t.Errorf("token %q, want %q", got, want)
	}
	// The window keeps the last 3 IDs: t:0:1 fell out.
	if r.Seen("t:0:1") {
		t.Error("t:0:1 still remembered past a window of 3")
	}
	for _, id := range []string{"t:0:2", "t:1:5", "t:0:3"} {
		if !r.Seen(id) {
			t.Errorf("%s forgotten inside the window", id)
		}
	}
	if r.Dups != 4 { // the first Seen("t:0:1") and the three inside the window
		t.Errorf("Dups %d, want 4", r.Dups)
	}
	r.SetCursor("C2")
	if r.Token() != "C2" {
		t.Errorf("after a cursor: token %q, want the cursor alone", r.Token())
	}
	r.SetCursor("") // no cursor in the frame: nothing changes
	if r.Cursor() != "C2" {
		t.Errorf("empty cursor changed it to %q", r.Cursor())
	}

	// Past MaxIDs the list keeps the last ID of each partition.
	r.MaxIDs = 4
	for _, id := range []string{"t:0:10", "t:1:11", "t:0:12", "t:2:13", "t:0:14"} {
		r.Add(id)
	}
	if got, want := r.Token(), "C2~t:1:11,t:2:13,t:0:14"; got != want {
		t.Errorf("compacted token %q, want %q", got, want)
	}

	// A stored token brings back the cursor and its IDs, seen already.
	r2 := NewResume(r.Token(), 10)
	if r2.Cursor() != "C2" || r2.Token() != r.Token() || !r2.Seen("t:2:13") {
		t.Errorf("NewResume(%q): cursor %q token %q", r.Token(), r2.Cursor(), r2.Token())
	}
	r2.Forget()
	if r2.Seen("t:2:13") {
		t.Error("Forget kept an ID")
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		id    string
		topic string
		p     int32
		o     int64
		ok    bool
	}{
		{"concept-notifications:2:17", "concept-notifications", 2, 17, true},
		{"a.b_c:0:0", "a.b_c", 0, 0, true},
		{"x:1", "", 0, 0, false},
		{":1:2", "", 0, 0, false},
		{"t:-1:2", "", 0, 0, false},
		{"t:1:z", "", 0, 0, false},
	} {
		topic, p, o, ok := ParseID(tc.id)
		if ok != tc.ok || ok && (topic != tc.topic || p != tc.p || o != tc.o) {
			t.Errorf("ParseID(%q) = %q %d %d %v", tc.id, topic, p, o, ok)
		}
	}
}

func TestJWTExp(t *testing.T) {
	tok := "eyJhbGciOiJIUzI1NiJ9." + b64url(`{"sub":"a","exp":1893456000}`) + ".sig"
	if got := jwtExp(tok); !got.Equal(time.Unix(1893456000, 0)) {
		t.Errorf("exp %v", got)
	}
	for _, bad := range []string{"", "opaque", "a.b.c", "a." + b64url(`{"sub":"a"}`) + ".c"} {
		if !jwtExp(bad).IsZero() {
			t.Errorf("jwtExp(%q) not zero", bad)
		}
	}
}

func TestProblemMapping(t *testing.T) {
	var calls sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := calls.LoadOrStore(r.URL.Path, new(int))
		*n.(*int)++
		switch r.URL.Path {
		case "/v1/notifications/concept-mastered":
			if r.Header.Get("X-API-Key") != "k" || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", r.Header)
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			io.WriteString(w, `{"type":"/problems/validation-error","title":"The request has invalid fields","status":400,
				"detail":"userIds must have at least 1 entry","instance":"/v1/notifications/concept-mastered","code":"validation-error",
				"errors":[{"field":"userIds","code":"min","message":"must have at least 1 entry"}]}`)
		case "/v1/topics/busy/records": // busy once, then fine
			if *n.(*int) == 1 {
				w.Header().Set("Content-Type", "application/problem+json")
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(503)
				io.WriteString(w, `{"type":"/problems/kafka-unavailable","title":"Kafka is unavailable","status":503,"code":"kafka-unavailable","errors":[]}`)
				return
			}
			if r.Header.Get("Idempotency-Key") != "idem-1" {
				t.Errorf("retry without its Idempotency-Key: %v", r.Header)
			}
			w.WriteHeader(201)
			io.WriteString(w, `{"id":"busy:1:7","topic":"busy","partition":1,"offset":7}`)
		case "/v1/topics/full/records":
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
			io.WriteString(w, `{"type":"/problems/node-full","title":"Full","status":503,"code":"node-full","errors":[]}`)
		default: // a proxy's page, not problem+json
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<h1>Bad Gateway</h1>")
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	api := &API{URL: srv.URL, Key: "k"}

	_, err := api.ConceptMastered(ctx, ConceptMastered{ConceptID: "c", ConceptName: "n"})
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v (%T), want a *Problem", err, err)
	}
	if p.Status != 400 || p.Code != "validation-error" || p.Type != "/problems/validation-error" || p.Retryable() ||
		len(p.Errors) != 1 || p.Errors[0] != (FieldError{"userIds", "min", "must have at least 1 entry"}) {
		t.Errorf("problem %+v", p)
	}
	if !strings.Contains(err.Error(), "validation-error") {
		t.Errorf("message %q names no code", err)
	}

	// A retryable problem is retried (Retries), after its Retry-After, with the same key.
	api.Retries = 2
	pos, err := api.Produce(ctx, "busy", Record{Value: []byte(`{"a":1}`)}, IdempotencyKey("idem-1"))
	if err != nil || pos != (Position{"busy:1:7", "busy", 1, 7}) {
		t.Errorf("produce after a 503: %+v %v", pos, err)
	}

	api.Retries = 0
	_, err = api.Produce(ctx, "full", Record{Value: []byte(`1`)})
	if !errors.As(err, &p) || p.Code != "node-full" || !p.Retryable() || p.RetryAfter != 7*time.Second {
		t.Errorf("node-full: %+v", err)
	}

	_, err = api.Produce(ctx, "other", Record{Value: []byte(`1`)})
	if !errors.As(err, &p) || p.Status != 502 || !p.Retryable() || !strings.Contains(p.Detail, "Bad Gateway") {
		t.Errorf("proxy page: %+v", err)
	}
}

// sseServer is a fake /v1/events: each request gets the frames of the next script entry, then
// the stream ends. /v1/ws answers 403 (a proxy that blocks WebSocket).
type sseServer struct {
	mu       sync.Mutex
	scripts  []string
	lastIDs  []string // the Last-Event-ID of each request
	wsTrials int
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	if r.URL.Path == "/v1/ws" {
		s.wsTrials++
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(403)
		io.WriteString(w, `{"type":"/problems/forbidden","status":403,"code":"forbidden","errors":[]}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer tok" {
		w.WriteHeader(401)
		return
	}
	s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	w.Header().Set("Content-Type", "text/event-stream")
	if len(s.scripts) == 0 { // an open stream with nothing to say
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		s.mu.Unlock()
		locked = false
		<-r.Context().Done()
		return
	}
	io.WriteString(w, s.scripts[0])
	s.scripts = s.scripts[1:]
}

func ev(id string, n int) string {
	return fmt.Sprintf(`data: {"id":%q,"event":"concept-mastered","data":{"n":%d},"time":"2026-11-29T09:41:07.123Z"}`+"\n\n", id, n)
}

// recorder collects what a client's callbacks got.
type recorder struct {
	mu      sync.Mutex
	events  []string
	states  []string
	resyncs []Resync
}

func (r *recorder) options(url string) Options {
	return Options{
		DialOptions: DialOptions{URL: url},
		Token:       func(context.Context) (string, error) { return "tok", nil },
		MinDelay:    time.Millisecond, MaxDelay: 20 * time.Millisecond,
		OnEvent: func(e Event) {
			r.mu.Lock()
			r.events = append(r.events, e.ID)
			r.mu.Unlock()
		},
		OnState: func(s StateChange) {
			r.mu.Lock()
			r.states = append(r.states, fmt.Sprintf("%s %s %d", s.State, s.Transport, s.Code))
			r.mu.Unlock()
		},
		OnResync: func(rs Resync) {
			r.mu.Lock()
			r.resyncs = append(r.resyncs, rs)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFallbackToSSE: WebSocket upgrades refused with 403: the client moves to SSE, reads the
// cursor from the id line, resumes with "<cursor>~<ids>" in Last-Event-ID, and drops a copy.
func TestFallbackToSSE(t *testing.T) {
	cursorFrame := func(c string) string {
		return "id: " + c + "\n" + `data: {"id":"","event":"cursor","data":null,"time":"2026-11-29T09:41:07Z"}` + "\n\n"
	}
	s := &sseServer{scripts: []string{
		cursorFrame("C1") + ": ping\n\n" + ev("t:0:1", 1) + ev("t:1:2", 2),
		ev("t:1:2", 2) + ev("t:0:3", 3) + cursorFrame("C2") + ev("t:0:4", 4),
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var rec recorder
	c, err := New(context.Background(), rec.options(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitUntil(t, "4 events", func() bool { return len(rec.got()) >= 4 })
	waitUntil(t, "the third request", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.lastIDs) >= 3 })
	c.Close()
	if got, want := rec.got(), []string{"t:0:1", "t:1:2", "t:0:3", "t:0:4"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v (each once)", got, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wsTrials != 1 {
		t.Errorf("%d WebSocket attempts, want 1 before moving to SSE", s.wsTrials)
	}
	if want := []string{"", "C1~t:0:1,t:1:2", "C2~t:0:4"}; !slices.Equal(s.lastIDs[:3], want) {
		t.Errorf("Last-Event-ID of each request %q, want %q", s.lastIDs, want)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.states[0] != "connecting websocket 0" || rec.states[1] != "disconnected websocket 403" || rec.states[2] != "connecting sse 0" {
		t.Errorf("states %v", rec.states)
	}
	if c.Transport() != SSE || c.ResumeToken() != "C2~t:0:4" {
		t.Errorf("transport %s, resume token %q", c.Transport(), c.ResumeToken())
	}
}

// TestWebSocketResume drives the client against a gorilla/websocket server, with both readers:
// cursors, a duplicate, an unavailable resync retried, a real resync, a 1001 close and the
// reconnect with ?cursor=, a refresh in place, and a final 4003.
func TestWebSocketResume(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			var mu sync.Mutex
			var cursors []string // ?cursor= of each connection
			var refreshes []string
			conns := 0
			up := websocket.Upgrader{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ey") {
					w.WriteHeader(401)
					return
				}
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				mu.Lock()
				cursors = append(cursors, r.URL.Query().Get("cursor"))
				n := conns
				conns++
				mu.Unlock()
				send := func(s string) { ws.WriteMessage(websocket.TextMessage, []byte(s)) }
				cur := func(c string) string { return `{"id":"","event":"cursor","data":null,"cursor":"` + c + `"}` }
				switch n {
				case 0:
					send(cur("C1"))
					send(`{"id":"t:0:1","event":"e","data":1}`)
					send(`{"id":"t:0:1","event":"e","data":1}`) // a copy
					send(`{"id":"t:0:2","event":"e","data":2}`)
					ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "shutting down"))
				case 1:
					send(`{"id":"","event":"resync","data":{"reason":"unavailable","message":"starting"},"cursor":"X"}`)
					time.Sleep(200 * time.Millisecond)
				case 2:
					send(`{"id":"t:0:2","event":"e","data":2}`) // replayed anyway: dropped
					send(`{"id":"","event":"resync","data":{"reason":"expired","message":"old"},"cursor":"C2"}`)
					send(`{"id":"t:0:3","event":"e","data":3}`)
					// The client refreshes in place before exp; answer, then end for good.
					ws.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, m, err := ws.ReadMessage()
					for err == nil && !strings.Contains(string(m), `"refresh"`) {
						_, m, err = ws.ReadMessage()
					}
					mu.Lock()
					refreshes = append(refreshes, string(m))
					mu.Unlock()
					send(`{"id":"","event":"refreshed","data":{"expiresAt":"2030-01-01T00:00:00Z"}}`)
					send(`{"id":"t:0:4","event":"e","data":4}`)
					ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4003, "other user"))
				}
				for { // until the client goes
					if _, _, err := ws.NextReader(); err != nil {
						return
					}
				}
			}))
			defer srv.Close()
			var rec recorder
			o := rec.options(srv.URL)
			o.RawWebSocket = raw
			// 2-second tokens: refreshed half-way, 1 s after they were fetched.
			o.Token = func(context.Context) (string, error) { return jwtUntil(time.Now().Add(2 * time.Second)), nil }
			c, err := New(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case <-c.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("the client did not stop at 4003")
			}
			var ce *CloseError
			if err := c.Err(); !errors.As(err, &ce) || ce.Code != 4003 {
				t.Errorf("Err %v, want the 4003 close", err)
			}
			if got, want := rec.got(), []string{"t:0:1", "t:0:2", "t:0:3", "t:0:4"}; !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
			mu.Lock()
			defer mu.Unlock()
			// 1001 → resume with the IDs; "unavailable" → the same position again; then resync.
			if want := []string{"", "C1~t:0:1,t:0:2", "C1~t:0:1,t:0:2"}; !slices.Equal(cursors, want) {
				t.Errorf("resume tokens %q, want %q", cursors, want)
			}
			if len(rec.resyncs) != 1 || rec.resyncs[0].Reason != "expired" {
				t.Errorf("resyncs %+v, want one expired (unavailable retried first)", rec.resyncs)
			}
			if len(refreshes) != 1 || !strings.HasPrefix(refreshes[0], `{"token":"ey`) && !strings.Contains(refreshes[0], `"token":"ey`) {
				t.Errorf("refresh messages %q", refreshes)
			}
			if last := rec.states[len(rec.states)-1]; last != "closed websocket 4003" {
				t.Errorf("last state %q", last)
			}
		})
	}
}

// TestOnResumeTokenResumesExactly: OnResumeToken gets the token at every cursor and after every
// handled event, without the *Client (its first call may come before New returns: the server
// sends the cursor at once); a second client started from the last one it got sends it as
// ?cursor= and gets only what the first had not handled.
func TestOnResumeTokenResumesExactly(t *testing.T) {
	var mu sync.Mutex
	var cursors []string // ?cursor= of each connection
	conns := 0
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		mu.Lock()
		cursors = append(cursors, r.URL.Query().Get("cursor"))
		n := conns
		conns++
		mu.Unlock()
		send := func(s string) { ws.WriteMessage(websocket.TextMessage, []byte(s)) }
		cur := func(c string) string { return `{"id":"","event":"cursor","data":null,"cursor":"` + c + `"}` }
		switch n {
		case 0:
			send(cur("C1"))
			send(`{"id":"t:0:1","event":"e","data":1}`)
			send(`{"id":"t:1:2","event":"e","data":2}`)
			send(cur("C2"))
			send(`{"id":"t:0:3","event":"e","data":3}`)
		case 1: // a server that replays t:0:3 although listed: the client drops it
			send(`{"id":"t:0:3","event":"e","data":3}`)
			send(`{"id":"t:0:4","event":"e","data":4}`)
		}
		for { // until the client goes
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	var rec recorder
	var saved []string // what OnResumeToken got, in order
	o := rec.options(srv.URL)
	o.OnResumeToken = func(tok string) {
		mu.Lock()
		saved = append(saved, tok)
		mu.Unlock()
	}
	first, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the token after t:0:3", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(saved) > 0 && strings.HasSuffix(saved[len(saved)-1], "t:0:3")
	})
	first.Close()
	mu.Lock()
	want := []string{"C1", "C1~t:0:1", "C1~t:0:1,t:1:2", "C2", "C2~t:0:3"}
	if !slices.Equal(saved, want) {
		t.Errorf("OnResumeToken got %q, want %q", saved, want)
	}
	last := saved[len(saved)-1]
	mu.Unlock()
	if first.ResumeToken() != last {
		t.Errorf("ResumeToken after Close %q, the last OnResumeToken %q", first.ResumeToken(), last)
	}

	var rec2 recorder
	o2 := rec2.options(srv.URL)
	o2.Resume = last
	second, err := New(context.Background(), o2)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitUntil(t, "t:0:4 on the second client", func() bool { return len(rec2.got()) > 0 })
	second.Close()
	if got := rec2.got(); !slices.Equal(got, []string{"t:0:4"}) {
		t.Errorf("second client got %v, want only t:0:4", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"", "C2~t:0:3"}; !slices.Equal(cursors, want) {
		t.Errorf("?cursor= of each connection %q, want %q", cursors, want)
	}
}
