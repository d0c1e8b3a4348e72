package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoPageInChromium: the service in development mode (no REALTIME_JWT_SECRET, no
// REALTIME_API_KEYS: GET /v1/dev/token exists and the API is open) serves the demo page, and
// headless Chromium (test/interop/e2e/browser.mjs, playwright-core) uses it as a person would:
// types a user, picks WebSocket, then SSE, clicks Connect and waits for the connected status;
// then notifications sent through the page's own form and one produced by KafkaJS straight to
// concept-notifications show up in its list with their event name and text; Disconnect leaves
// the page saying "not connected". Screenshots go to test/artifacts/demo-<transport>.png.
func TestDemoPageInChromium(t *testing.T) {
	nodeModules(t)
	browser := interopTool(t, "chromium", "apt-get install chromium (the Debian package)")
	s := startService(t, map[string]string{"REALTIME_JWT_SECRET": "", "REALTIME_API_KEYS": ""})
	s.waitConsuming()
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "test", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	out := runNode(t, "e2e/browser.mjs", map[string]string{
		"E2E_URL": s.URL, "E2E_BROKER": s.Broker, "E2E_CHROMIUM": browser, "E2E_ARTIFACTS": artifacts,
	})
	var res struct {
		Transports []struct {
			Transport, User, Status, Count, Screenshot string
			Notes                                      []struct {
				Via, ID, Event, Text string
				Data                 map[string]any
			}
			AfterDisconnect struct{ Status, State string }
			Problems        []string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("browser.mjs output: %v\n%s", err, out)
	}
	if len(res.Transports) != 2 {
		t.Fatalf("transports %+v, want websocket and sse", res.Transports)
	}
	label := map[string]string{"websocket": "WebSocket", "sse": "SSE"}
	for _, tr := range res.Transports {
		if want := "connected as " + tr.User + " over " + label[tr.Transport]; tr.Status != want {
			t.Errorf("%s: status %q, want %q", tr.Transport, tr.Status, want)
		}
		type want struct{ via, idPrefix, event, text string }
		wants := []want{
			{"page form", "concept-notifications:", "concept-mastered", "Mastered JavaScript Arrays (92%)"},
			{"page form", "session-notifications:", "session-starting-soon", "Your session starts in 5 minutes"},
			{"kafkajs", "concept-notifications:", "concept-mastered", "Mastered Kafka Streams (KafkaJS, " + label[tr.Transport] + ") (75%)"},
		}
		if len(tr.Notes) != len(wants) {
			t.Errorf("%s: notes %+v, want %d", tr.Transport, tr.Notes, len(wants))
			continue
		}
		for i, w := range wants {
			n := tr.Notes[i]
			if n.Via != w.via || !strings.HasPrefix(n.ID, w.idPrefix) || n.Event != w.event || n.Text != w.text {
				t.Errorf("%s: note %d is %+v, want via %s, an ID on %s, event %s, text %q", tr.Transport, i, n, w.via, w.idPrefix, w.event, w.text)
			}
			if users, _ := n.Data["userIds"].([]any); len(users) != 1 || users[0] != tr.User {
				t.Errorf("%s: note %d data %v, want userIds [%s]", tr.Transport, i, n.Data, tr.User)
			}
		}
		if tr.Count != "3" {
			t.Errorf("%s: the list counts %q notifications, want 3 (no duplicates, nothing else)", tr.Transport, tr.Count)
		}
		if d := tr.AfterDisconnect; d.Status != "not connected" || d.State != "idle" {
			t.Errorf("%s: after Disconnect the status is %q (%s), want \"not connected\" (idle)", tr.Transport, d.Status, d.State)
		}
		for _, p := range tr.Problems {
			t.Errorf("%s: %s", tr.Transport, p)
		}
		if st, err := os.Stat(tr.Screenshot); err != nil || st.Size() == 0 {
			t.Errorf("%s: screenshot %s: %v", tr.Transport, tr.Screenshot, err)
		} else {
			t.Logf("%s: screenshot %s", tr.Transport, tr.Screenshot)
		}
	}
}

// TestDemoPageIsServed: the service serves the demo page at "/" and its assets under /static/
// (README, "A first look": open http://localhost:3000/), in development and production alike.
func TestDemoPageIsServed(t *testing.T) {
	s := startService(t, nil)
	for path, want := range map[string]struct{ contentType, contains string }{
		"/":                               {"text/html", `id="notifications"`},
		"/static/app.js":                  {"javascript", "function connect()"},
		"/static/vendor/socket.io.min.js": {"javascript", ""},
	} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), want.contentType) || !strings.Contains(string(body), want.contains) {
			t.Errorf("GET %s: %d %s, want 200 %s with %q\n%.300s", path, resp.StatusCode, resp.Header.Get("Content-Type"), want.contentType, want.contains, body)
		}
	}
}
