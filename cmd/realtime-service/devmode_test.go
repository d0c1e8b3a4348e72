package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDevelopmentRestartExplainsStaleTokens: in development mode (no REALTIME_JWT_SECRET) the
// signing secret is random per start, so a token of the previous run is refused after a restart;
// the 401 says so and where a new token comes from, on /v1/ws and /v1/events alike, instead of
// a bare "bad signature".
func TestDevelopmentRestartExplainsStaleTokens(t *testing.T) {
	dev := map[string]string{"REALTIME_JWT_SECRET": "", "REALTIME_API_KEYS": ""}
	first := startService(t, dev)
	var tok struct{ Token string }
	if resp := first.do("GET", "/v1/dev/token?user=alice", nil, &tok); resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("GET /v1/dev/token: %d %+v", resp.StatusCode, tok)
	}
	first.Stop()

	second := startService(t, dev) // the restart: another random secret
	for _, path := range []string{"/v1/events", "/v1/ws"} {
		resp, err := http.Get(second.URL + path + "?access_token=" + url.QueryEscape(tok.Token))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct{ Code, Detail string }
		json.Unmarshal(body, &p)
		if resp.StatusCode != http.StatusUnauthorized || p.Code != "user-unauthorized" {
			t.Errorf("GET %s with the earlier run's token: %d %s, want 401 user-unauthorized", path, resp.StatusCode, body)
			continue
		}
		if !strings.Contains(p.Detail, "changes at every start") || !strings.Contains(p.Detail, "GET /v1/dev/token?user=<id>") {
			t.Errorf("GET %s with the earlier run's token: detail %q, want it to say that the development secret changes at every start and how to get a new token", path, p.Detail)
		}
	}
}
