package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestDevTokenOnlyInDevelopmentMode: GET /v1/dev/token, which mints a client token for any user,
// exists only with no REALTIME_JWT_SECRET on a listener bound to loopback, whatever the broker;
// everywhere else it is a 404 problem. The start-up log has exactly one line naming the mode and
// saying why.
func TestDevTokenOnlyInDevelopmentMode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    map[string]string
		status int
		mode   string
		reason []string // each must appear on the mode line
	}{
		{"embedded broker with a secret", map[string]string{"REALTIME_API_KEYS": ""}, http.StatusNotFound,
			"production", []string{"embedded broker", "REALTIME_JWT_SECRET set", "loopback listener 127.0.0.1:"}},
		{"no secret on all interfaces", map[string]string{"REALTIME_JWT_SECRET": "", "REALTIME_API_KEYS": "", "HTTP_ADDR": "0.0.0.0:0"},
			http.StatusNotFound, "production", []string{"no REALTIME_JWT_SECRET", "non-loopback listener", "no GET /v1/dev/token"}},
		{"development", map[string]string{"REALTIME_JWT_SECRET": "", "REALTIME_API_KEYS": ""}, http.StatusOK,
			"development", []string{"embedded broker", "no REALTIME_API_KEYS", "no REALTIME_JWT_SECRET", "loopback listener 127.0.0.1:", "GET /v1/dev/token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startService(t, tc.env)
			resp, err := http.Get(s.URL + "/v1/dev/token?user=alice")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("GET /v1/dev/token: %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusNotFound && (resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"code":"not-found"`)) {
				t.Errorf("GET /v1/dev/token: %s %s, want a not-found problem", resp.Header.Get("Content-Type"), body)
			}
			var lines []string
			for _, l := range strings.Split(s.Logs.String(), "\n") {
				if strings.Contains(l, " mode=") {
					lines = append(lines, l)
				}
				if strings.Contains(l, "development mode:") {
					t.Errorf("a scattered development-mode warning: %s", l)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d start-up lines name the mode, want 1:\n%s", len(lines), s.Logs)
			}
			if !strings.Contains(lines[0], " mode="+tc.mode+" ") {
				t.Errorf("mode line %q, want mode=%s", lines[0], tc.mode)
			}
			for _, r := range tc.reason {
				if !strings.Contains(lines[0], r) {
					t.Errorf("mode line %q lacks %q", lines[0], r)
				}
			}
		})
	}
}

// freePort returns a TCP port nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}
