package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
)

// refreshReport is what test/interop/e2e/refresh.mjs prints.
type refreshReport struct {
	Error    string   `json:"error"`
	WSFrames []string `json:"wsFrames"`
	WSClosed *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"wsClosed"`
	WSOpen    bool `json:"wsOpen"`
	SIOEvents []struct {
		Event string            `json:"event"`
		Args  []json.RawMessage `json:"args"`
	} `json:"sioEvents"`
	SIOAcks        []map[string]string `json:"sioAcks"`
	SIOConnects    int                 `json:"sioConnects"`
	SIODisconnects []string            `json:"sioDisconnects"`
	OtherWSClosed  *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"otherWsClosed"`
	OtherAck         map[string]string `json:"otherAck"`
	OtherDisconnects []string          `json:"otherDisconnects"`
	OtherActive      bool              `json:"otherActive"`
	PastFirstExp     bool              `json:"pastFirstExp"`
}

// TestTokenRefreshInPlaceWithRealClients: the `ws` client on /v1/ws and socket.io-client (long-
// polling, then WebSocket) connect with a token that expires in a few seconds, refresh it on the
// open connection while KafkaJS produces, and are still connected past the first token's exp
// (five pings of 200 ms later); each gets every record produced before, during and after the
// refresh exactly once, in partition order, and one answer carrying the new token's exp. A
// refresh with bob's token on alice's connections closes the `ws` one with 4003 and disconnects
// the socket.io one with "io server disconnect", after which socket.io-client does not reconnect
// by itself.
func TestTokenRefreshInPlaceWithRealClients(t *testing.T) {
	nodeModules(t)
	s := startService(t, map[string]string{"REALTIME_PING_INTERVAL": "200"})
	s.waitConsuming()
	value := func(i int) string {
		return fmt.Sprintf(`{"conceptId":"r%d","userIds":["alice"],"conceptName":"Refresh %d","masteryLevel":0.5}`, i, i)
	}
	plan := map[string][]string{"before": {value(1), value(2), value(3)}, "during": {value(4), value(5), value(6)}, "after": {value(7), value(8), value(9)}}
	var want []string
	for i := 1; i <= 9; i++ {
		want = append(want, fmt.Sprintf("r%d", i))
	}

	var refreshExp time.Time
	p := startScript(t, "e2e/refresh.mjs", map[string]string{"E2E_URL": s.URL, "E2E_BROKER": s.Broker, "E2E_PLAN": mustJSON(plan)})
	var line string
	for {
		line = p.next(t)
		var st struct{ Step string }
		if json.Unmarshal([]byte(line), &st) != nil || st.Step != "tokens" {
			break
		}
		now := time.Now()
		issue := func(user string, ttl time.Duration) string {
			tok, err := auth.Issue([]byte(testSecret), user, ttl, now)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		// The first token lives 4 s (exp in whole seconds: 3 to 4 s from now), time for the
		// clients to connect on a loaded machine.
		refreshExp = time.Unix(now.Add(time.Hour).Unix(), 0)
		p.send(t, mustJSON(map[string]any{
			"first": issue("alice", 4*time.Second), "refresh": issue("alice", time.Hour), "other": issue("bob", time.Hour),
			"firstExp": now.Add(4 * time.Second).Unix(),
		}))
	}
	if err := p.wait(); err != nil {
		t.Fatalf("refresh.mjs: %v\n%.8000s\nstderr:\n%s", err, line, p.stderr)
	}
	var r refreshReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("refresh.mjs output: %v\n%.8000s", err, line)
	}
	if !r.PastFirstExp {
		t.Fatal("the script ended before the first token's exp")
	}
	wantExp := refreshExp.UTC().Format(time.RFC3339)

	// WebSocket: every record once, in order; one "refreshed" answer; still open.
	var wsKeys []string
	var answers []string
	for _, raw := range r.WSFrames {
		var f struct {
			ID    string
			Event string
			Data  struct {
				ConceptID string
				ExpiresAt string
			}
		}
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			t.Fatalf("ws frame %s: %v", raw, err)
		}
		switch {
		case f.ID != "":
			wsKeys = append(wsKeys, f.Data.ConceptID)
		case f.Event != "cursor":
			answers = append(answers, f.Event+" "+f.Data.ExpiresAt)
		}
	}
	if !slices.Equal(wsKeys, want) {
		t.Errorf("ws records %v, want %v", wsKeys, want)
	}
	if !slices.Equal(answers, []string{"refreshed " + wantExp}) {
		t.Errorf("ws answers %v, want one refreshed with expiresAt %s", answers, wantExp)
	}
	if !r.WSOpen || r.WSClosed != nil {
		t.Errorf("ws closed %+v past the first token's exp, want open", r.WSClosed)
	}

	// Socket.IO: every record once, in order; the ack; one connect, no disconnect.
	var sioKeys []string
	for _, e := range r.SIOEvents {
		if e.Event == "cursor" {
			continue
		}
		var d struct{ ConceptID string }
		if len(e.Args) == 0 || json.Unmarshal(e.Args[0], &d) != nil {
			t.Fatalf("socket.io event %s %s", e.Event, e.Args)
		}
		sioKeys = append(sioKeys, d.ConceptID)
	}
	if !slices.Equal(sioKeys, want) {
		t.Errorf("socket.io records %v, want %v", sioKeys, want)
	}
	if len(r.SIOAcks) != 1 || r.SIOAcks[0]["expiresAt"] != wantExp {
		t.Errorf("socket.io refresh ack %v, want {expiresAt: %s}", r.SIOAcks, wantExp)
	}
	if r.SIOConnects != 1 || len(r.SIODisconnects) != 0 {
		t.Errorf("socket.io connects %d, disconnects %v: want 1 and none", r.SIOConnects, r.SIODisconnects)
	}

	// Another user's token.
	if r.OtherWSClosed == nil || r.OtherWSClosed.Code != 4003 {
		t.Errorf("ws refreshed with bob's token: closed %+v, want 4003", r.OtherWSClosed)
	}
	if r.OtherAck["error"] != "other-user" || !slices.Equal(r.OtherDisconnects, []string{"io server disconnect"}) || r.OtherActive {
		t.Errorf("socket.io refreshed with bob's token: ack %v, disconnects %v, active %v; want other-user, [io server disconnect], false",
			r.OtherAck, r.OtherDisconnects, r.OtherActive)
	}
	if ok := metric(t, s.URL, "realtime_token_refreshes_total", `result="ok",transport="websocket"`); ok != 1 {
		t.Errorf("realtime_token_refreshes_total{websocket,ok} = %v, want 1", ok)
	}
	if n := metric(t, s.URL, "realtime_token_refreshes_total", `result="other-user",transport="socketio"`); n != 1 {
		t.Errorf("realtime_token_refreshes_total{socketio,other-user} = %v, want 1", n)
	}
}
