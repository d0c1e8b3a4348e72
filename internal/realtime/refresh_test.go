package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/realtime-service/realtime-service/internal/auth"
)

var refreshSecret = []byte("refresh-test-secret-refresh-test-secret!")

func refreshToken(t *testing.T, user string, ttl time.Duration) (string, time.Time) {
	t.Helper()
	now := time.Now()
	tok, err := auth.Issue(refreshSecret, user, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok, time.Unix(now.Add(ttl).Unix(), 0)
}

// refreshCount is realtime_token_refreshes_total{transport,result}.
func (m *metrics) refreshCount(transport, result string) int {
	var d dto.Metric
	m.refreshes.WithLabelValues(transport, result).Write(&d)
	return int(d.GetCounter().GetValue())
}

// TestRefreshMovesTheExpiry: a token of the connection's user moves its expiry, earlier or
// later; an invalid one or one of another user leaves it where it was. No clock is involved:
// ExpireIfDue is asked at chosen instants.
func TestRefreshMovesTheExpiry(t *testing.T) {
	v := auth.NewVerifier(refreshSecret)
	bad := auth.NewVerifier([]byte("another-secret-another-secret-another!"))
	later, laterExp := refreshToken(t, "alice", time.Hour)
	other, _ := refreshToken(t, "bob", time.Hour)
	foreign, err := auth.Issue([]byte("another-secret-another-secret-another!"), "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now().Add(time.Minute)
	cases := []struct {
		name    string
		v       *auth.Verifier
		token   string
		wantErr error
		expires time.Time // the expiry after the refresh
		result  string
	}{
		{"same user", v, later, nil, laterExp, "ok"},
		{"signed with another key", v, foreign, auth.ErrInvalidToken, first, "invalid"},
		{"a verifier of another key", bad, later, auth.ErrInvalidToken, first, "invalid"},
		{"no token", v, "", auth.ErrInvalidToken, first, "invalid"},
		{"no verifier", nil, later, auth.ErrInvalidToken, first, "invalid"},
		{"another user", v, other, ErrOtherUser, first, "other-user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(HubConfig{})
			c, _, err := h.Register(ConnOptions{User: "alice", Transport: newFake(FormatWebSocket, false), Expires: first})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Refresh(tc.v, tc.token)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Refresh: %v, want %v", err, tc.wantErr)
			}
			if err == nil && !got.Equal(tc.expires) {
				t.Errorf("Refresh returned %v, want %v", got, tc.expires)
			}
			if c.ExpireIfDue(tc.expires.Add(-time.Second)) {
				t.Fatalf("expired before %v", tc.expires)
			}
			if !c.ExpireIfDue(tc.expires) {
				t.Fatalf("not expired at %v", tc.expires)
			}
			if n := h.m.refreshCount("websocket", tc.result); n != 1 {
				t.Errorf("realtime_token_refreshes_total{transport=websocket,result=%s} = %d, want 1", tc.result, n)
			}
		})
	}
}

// refreshServer serves /v1/ws with the verifier; its connections' first expiry is now+lifetime
// (the HTTP layer's claims), and the server pings every 20 ms, so that an expiry is acted on at
// once.
func refreshServer(t *testing.T, h *Hub, lifetime time.Duration) (*httptest.Server, time.Time) {
	t.Helper()
	expires := time.Now().Add(lifetime)
	ws := NewWebSocketHandler(h, EndpointConfig{PingInterval: 20 * time.Millisecond, Verifier: auth.NewVerifier(refreshSecret)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := auth.WithClaims(r.Context(), auth.Claims{UserID: "alice", Expires: expires})
		ws.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	return srv, expires
}

// wsReader collects what a /v1/ws client reads: event IDs, control frames by event name, and
// the close.
type wsReader struct {
	ws       *websocket.Conn
	ids      []string
	controls []map[string]json.RawMessage
}

// until reads frames until cond holds; it fails the test on a read error (the close, or the
// 10 s bound).
func (r *wsReader) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !cond() {
		_, msg, err := r.ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s: %v (events so far %v)", what, err, r.ids)
		}
		r.add(t, msg)
	}
}

func (r *wsReader) add(t *testing.T, msg []byte) {
	t.Helper()
	var f map[string]json.RawMessage
	if err := json.Unmarshal(msg, &f); err != nil {
		t.Fatalf("frame %s: %v", msg, err)
	}
	var id, event string
	json.Unmarshal(f["id"], &id)
	json.Unmarshal(f["event"], &event)
	switch {
	case id != "":
		r.ids = append(r.ids, id)
	case event != "cursor":
		r.controls = append(r.controls, f)
	}
}

// closed reads until the close and returns its code and reason.
func (r *wsReader) closed(t *testing.T) (int, string) {
	t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := r.ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		if err != nil {
			t.Fatalf("waiting for the close: %v", err)
		}
		r.add(t, msg)
	}
}

func (r *wsReader) control(i int) (event string, data map[string]string) {
	json.Unmarshal(r.controls[i]["event"], &event)
	json.Unmarshal(r.controls[i]["data"], &data)
	return event, data
}

func (r *wsReader) refresh(t *testing.T, token string) {
	t.Helper()
	msg, _ := json.Marshal(map[string]string{"type": "refresh", "token": token})
	if err := r.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Fatal(err)
	}
}

func ids(from, to int64) []string {
	var s []string
	for o := from; o <= to; o++ {
		s = append(s, fmt.Sprintf("concept-notifications:0:%d", o))
	}
	return s
}

// TestWebSocketRefreshKeepsTheConnectionPastTheFirstExpiry: a client refreshes its token in
// place; the connection outlives the first token's expiry by many pings, and the events
// published before, during and after the refresh arrive exactly once, in order, with one
// "refreshed" answer carrying the new token's exp.
func TestWebSocketRefreshKeepsTheConnectionPastTheFirstExpiry(t *testing.T) {
	t.Parallel()
	h := newResumeHub(t, nil)
	srv, firstExp := refreshServer(t, h, 1500*time.Millisecond)
	r := &wsReader{ws: dialWS(t, srv, "")}
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })

	h.Publish(event("concept-notifications", 0, 1, "alice"))
	h.Publish(event("concept-notifications", 0, 2, "alice"))
	token, exp := refreshToken(t, "alice", time.Hour)
	during := make(chan struct{})
	go func() {
		defer close(during)
		for o := int64(3); o <= 5; o++ {
			h.Publish(event("concept-notifications", 0, o, "alice"))
		}
	}()
	r.refresh(t, token)
	r.until(t, "the refresh answer", func() bool { return len(r.controls) == 1 })
	<-during
	if ev, data := r.control(0); ev != "refreshed" || data["expiresAt"] != exp.UTC().Format(time.RFC3339) {
		t.Fatalf("answer %s %v, want refreshed with expiresAt %s", ev, data, exp.UTC().Format(time.RFC3339))
	}

	time.Sleep(time.Until(firstExp) + 10*20*time.Millisecond) // ten pings past the first expiry
	h.Publish(event("concept-notifications", 0, 6, "alice"))
	h.Publish(event("concept-notifications", 0, 7, "alice"))
	r.until(t, "the events after the first expiry", func() bool { return len(r.ids) >= 7 })
	if want := ids(1, 7); !slices.Equal(r.ids, want) {
		t.Errorf("events %v, want %v", r.ids, want)
	}
	if len(r.controls) != 1 || h.Connections() != 1 {
		t.Errorf("controls %d, connections %d: want 1 and 1", len(r.controls), h.Connections())
	}
	if n := h.m.refreshCount("websocket", "ok"); n != 1 {
		t.Errorf("realtime_token_refreshes_total{websocket,ok} = %d, want 1", n)
	}
}

// TestWebSocketRefreshRefusedKeepsTheFirstExpiry: refresh frames with a bad token, a token of
// another key, no token or a token that is not a string get refresh-error answers, in order;
// frames of unknown types and messages that are not JSON get none; the connection then closes
// with 4001 at the first token's expiry, after the events published meanwhile.
func TestWebSocketRefreshRefusedKeepsTheFirstExpiry(t *testing.T) {
	t.Parallel()
	h := newResumeHub(t, nil)
	srv, _ := refreshServer(t, h, time.Second)
	r := &wsReader{ws: dialWS(t, srv, "")}
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })

	foreign, err := auth.Issue([]byte("another-secret-another-secret-another!"), "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{
		`not json`,
		`{"type":"no-such-frame","token":"x"}`,
		`["refresh"]`,
		`{"type":"refresh","token":"not-a-jwt"}`,
		`{"type":"refresh","token":"` + foreign + `"}`,
		`{"type":"refresh"}`,
		`{"type":"refresh","token":42}`,
		`{"type":"refresh","token":"` + strings.Repeat("a", auth.MaxTokenLen) + `"}`, // fits: refused by the verifier
	} {
		if err := r.ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	h.Publish(event("concept-notifications", 0, 1, "alice"))
	code, reason := r.closed(t)
	if code != 4001 {
		t.Errorf("close %d %q, want 4001", code, reason)
	}
	if len(r.controls) != 5 {
		t.Fatalf("%d answers, want 5 refresh-error: %v", len(r.controls), r.controls)
	}
	for i := range r.controls {
		if ev, data := r.control(i); ev != "refresh-error" || data["code"] != "invalid-token" || data["message"] == "" {
			t.Errorf("answer %d: %s %v, want refresh-error invalid-token with a message", i, ev, data)
		}
	}
	if !slices.Equal(r.ids, ids(1, 1)) {
		t.Errorf("events %v, want the one published", r.ids)
	}
	if n := h.m.refreshCount("websocket", "invalid"); n != 5 {
		t.Errorf("realtime_token_refreshes_total{websocket,invalid} = %d, want 5", n)
	}
}

// TestWebSocketRefreshForAnotherUserCloses4003: a valid token of another user closes the
// connection with 4003 after the events queued before it; it is counted.
func TestWebSocketRefreshForAnotherUserCloses4003(t *testing.T) {
	t.Parallel()
	h := newResumeHub(t, nil)
	srv, _ := refreshServer(t, h, time.Hour)
	r := &wsReader{ws: dialWS(t, srv, "")}
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })

	h.Publish(event("concept-notifications", 0, 1, "alice"))
	r.until(t, "the first event", func() bool { return len(r.ids) == 1 })
	token, _ := refreshToken(t, "bob", time.Hour)
	r.refresh(t, token)
	code, reason := r.closed(t)
	if code != int(DisconnectOtherUser.Code) || reason != DisconnectOtherUser.Reason {
		t.Errorf("close %d %q, want %d %q", code, reason, DisconnectOtherUser.Code, DisconnectOtherUser.Reason)
	}
	if len(r.controls) != 0 {
		t.Errorf("answers %v, want none before the close", r.controls)
	}
	waitFor(t, "the disconnect", func() bool { return h.m.disconnectCount("other_user") == 1 })
	if n := h.m.refreshCount("websocket", "other-user"); n != 1 {
		t.Errorf("realtime_token_refreshes_total{websocket,other-user} = %d, want 1", n)
	}
}
