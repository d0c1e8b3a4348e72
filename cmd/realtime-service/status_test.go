package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusPageInChromium: the service in development mode serves the status page at /status,
// and headless Chromium (test/interop/e2e/status.mjs) opens it while the demo page is connected
// as alice and notifications for her flow through the HTTP API, plus one poison record. The page
// must show the connection, notifications in and deliveries out per second above zero, the dead
// letter and its warning, and draw each chart (points and coloured pixels).
//
// Screenshots of the demo page (one notification shown) and of the status page go to
// test/artifacts; with UPDATE_SCREENSHOTS=1 they also replace docs/images/demo.png and
// docs/images/status.png, the ones README.md shows (CI never rewrites them).
func TestStatusPageInChromium(t *testing.T) {
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
	env := map[string]string{"E2E_URL": s.URL, "E2E_CHROMIUM": browser, "E2E_ARTIFACTS": artifacts}
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		env["E2E_LOOP"] = "250" // about 30 s of traffic: charts with some history to show
	}
	out := runNode(t, "e2e/status.mjs", env)
	var res struct {
		Demo  struct{ Count string }
		Peak  struct{ Connections, InRate, OutRate float64 }
		After struct {
			Connections, DLQ float64
			DLQBy, Live      string
			Errors           []string
		}
		Charts   map[string]struct{ Points, Inked int }
		Problems []string
		Sent     int
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("status.mjs output: %v\n%s", err, out)
	}
	if res.Demo.Count != "1" {
		t.Errorf("the demo page shows %q notifications, want 1", res.Demo.Count)
	}
	if p := res.Peak; p.Connections != 1 || p.InRate <= 0 || p.OutRate <= 0 {
		t.Errorf("while %d notifications flowed the page showed at most %v connections, %v in/s, %v out/s; want 1 and both rates above 0", res.Sent, p.Connections, p.InRate, p.OutRate)
	}
	if a := res.After; a.Connections != 1 || a.DLQ != 1 || !strings.Contains(a.DLQBy, "1") || a.Live != "live" {
		t.Errorf("after the loop the page shows %+v, want 1 connection, 1 dead letter, live", a)
	}
	if !slicesContain(res.After.Errors, "WARN", "poison record copied to the dead-letter topic") {
		t.Errorf("warnings list %q, want the dead-letter warning", res.After.Errors)
	}
	for _, name := range []string{"connections", "throughput", "lag", "trouble"} {
		c, ok := res.Charts[name]
		if !ok || c.Points == 0 || c.Inked == 0 {
			t.Errorf("chart %s drew %d points, %d coloured pixels; want some of both", name, c.Points, c.Inked)
		}
	}
	for _, p := range res.Problems {
		t.Error(p)
	}

	// The PNGs README.md shows are rewritten only on request.
	for _, name := range []string{"demo.png", "status.png"} {
		png, err := os.ReadFile(filepath.Join(artifacts, name))
		if err != nil || len(png) == 0 {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		t.Logf("screenshot %s", filepath.Join(artifacts, name))
		if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
			dst := filepath.Join("..", "..", "docs", "images", name)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("updated %s", dst)
		}
	}
}

// TestStatusAPIKey: with REALTIME_API_KEYS set, GET /v1/status needs a key and the page (which
// holds no data) does not; with the key the report names this node and has its samples.
func TestStatusAPIKey(t *testing.T) {
	s := startService(t, nil)
	resp, err := http.Get(s.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/status without a key: %d, want 401", resp.StatusCode)
	}
	page, err := http.Get(s.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /status: %d %s, want the page", page.StatusCode, page.Header.Get("Content-Type"))
	}
	var report struct {
		Node    string
		Samples []json.RawMessage
	}
	waitUntil(t, "a sample in /v1/status", func() bool {
		r := s.do("GET", "/v1/status", nil, &report)
		return r.StatusCode == http.StatusOK && len(report.Samples) > 0
	})
	if want := strings.TrimPrefix(s.Group, "realtime-service."); report.Node != want {
		t.Errorf("node %q, want %q (KAFKA_NODE_ID)", report.Node, want)
	}
}

// TestStatusPageAsksForTheAPIKey: with REALTIME_API_KEYS set, the status page in Chromium asks
// for the key, says when it is refused, shows the node once it is right, and keeps it for the tab.
func TestStatusPageAsksForTheAPIKey(t *testing.T) {
	nodeModules(t)
	browser := interopTool(t, "chromium", "apt-get install chromium (the Debian package)")
	s := startService(t, nil)
	out := runNode(t, "e2e/status.mjs", map[string]string{"E2E_URL": s.URL, "E2E_CHROMIUM": browser,
		"E2E_ARTIFACTS": t.TempDir(), "E2E_API_KEY": testAPIKey})
	var res struct {
		KeyFlow struct {
			Asked, Refused, Live, Node string
			AfterReload                struct {
				Live  string
				Asked bool
			}
		}
		Problems []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("status.mjs output: %v\n%s", err, out)
	}
	k := res.KeyFlow
	if k.Asked != "API key needed" || k.Refused != "That key was refused." || k.Live != "live" ||
		k.Node != strings.TrimPrefix(s.Group, "realtime-service.") || k.AfterReload.Live != "live" || k.AfterReload.Asked {
		t.Errorf("key flow %+v: want asked, refused, then live for this node, and live without asking after a reload", k)
	}
	for _, p := range res.Problems {
		t.Error(p)
	}
}

// slicesContain reports whether some s in list contains every one of parts.
func slicesContain(list []string, parts ...string) bool {
	for _, s := range list {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(s, p)
		}
		if ok {
			return true
		}
	}
	return false
}
