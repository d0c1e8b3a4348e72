package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDemoPageInChromium: the service in development mode (no REALTIME_JWT_SECRET, no
// REALTIME_API_KEYS: GET /v1/dev/token exists and the API is open) serves the demo page, and
// headless Chromium (test/interop/e2e/browser.mjs, playwright-core) uses it as a person would:
// types a user, picks WebSocket, then SSE, then Socket.IO, clicks Connect and waits for the
// connected status; then notifications sent through the page's own form and one produced by
// KafkaJS straight to concept-notifications show up in its list with their event name and text;
// Disconnect leaves the page saying "not connected". Screenshots go to
// test/artifacts/demo-<transport>.png. WebSocket and SSE run the project's JS client, which the
// page imports from /static/realtime.min.js (web.TestClientBundleIsFresh holds it to
// clients/js/src). The Socket.IO mode runs the page's socket.io-client@4
// bundle, which must be the unmodified npm package's (dist/socket.io.min.js of the version
// test/interop pins); Socket.IO events carry their event ID in a trailing {"id"} argument, which
// the page shows as it does the WebSocket and SSE frames' id.
//
// Then what a new user trips over: a Socket.IO status must follow the engine's upgrade from
// polling to WebSocket; and after Disconnect, connecting the same page as another user starts
// an empty list for them (heading, count), with no resume cursor and no de-duplication state
// carried over from the previous user.
//
// Then the cursor contract (docs/client-protocol.md, "Cursor") on each transport: the page holds
// the cursor of the opening cursor frame and the IDs of the two events after it; after
// Disconnect, two more events, and Connect, it resumes with "<cursor>~<id>,<id>" (seen in the
// WebSocket's ?cursor= and the SSE request's ?lastEventId=), shows the two it missed, and the
// server sends nothing twice: a resume with the cursor alone would have brought the first two
// again, which the JS client would drop unseen (so the test reads the IDs on the wire) and the
// page's Socket.IO code would count as dropped duplicates. A cursor frame follows the replay. On
// Socket.IO, an engine that drops is recovered by socket.io-client itself (socket.recovered),
// whose offset the page's auth function extends with the ID received since the cursor: again
// nothing to drop.
//
// Then a reload on each transport: the page gets two events, is left for about:blank, two more
// are sent, and the page is opened again in the same tab: it connects by itself as the same user
// over the same transport, resumes with the stored "<cursor>~<id>,<id>", shows the two it missed
// above the two before (its list kept), and the server sends neither of the first two again.
func TestDemoPageInChromium(t *testing.T) {
	interop := nodeModules(t)
	browser := interopTool(t, "chromium", "apt-get install chromium (the Debian package)")
	s := startService(t, map[string]string{"REALTIME_JWT_SECRET": "", "REALTIME_API_KEYS": ""})
	s.waitConsuming()
	// The page's Socket.IO client is npm socket.io-client@4 as published.
	npm, err := os.ReadFile(filepath.Join(interop, "node_modules", "socket.io-client", "dist", "socket.io.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	if served := s.do("GET", "/static/vendor/socket.io.min.js", nil, nil); served.StatusCode != http.StatusOK {
		t.Errorf("GET /static/vendor/socket.io.min.js: %d", served.StatusCode)
	} else if body, _ := io.ReadAll(served.Body); !bytes.Equal(body, npm) {
		t.Errorf("/static/vendor/socket.io.min.js (%d bytes) is not socket.io-client's dist/socket.io.min.js (%d bytes)", len(body), len(npm))
	}
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "test", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	// Some 40 page loads and connections in a row (30 to 50 s on a shared 2-core machine): a
	// bound for a hang, not a timing check.
	out := runNodeWithin(t, "e2e/browser.mjs", map[string]string{
		"E2E_URL": s.URL, "E2E_BROKER": s.Broker, "E2E_CHROMIUM": browser, "E2E_ARTIFACTS": artifacts,
	}, 3*time.Minute)
	var res struct {
		Transports []struct {
			Transport, User, Status, Count, Screenshot string
			Notes                                      []struct {
				Via, Sent, ID, Event, Text, Kind, Meta string
				Data                                   map[string]any
			}
			AfterDisconnect struct{ Status, State string }
			Problems        []string
		}
		Upgrade struct {
			Status   string
			Problems []string
		}
		SwitchUser struct {
			AliceCount, Heading, Count, BobSent string
			CursorAtSwitch                      bool
			IDs, Seen                           []string
			Problems                            []string
		}
		Resume []resumeRun
		Reload []resumeRun
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("browser.mjs output: %v\n%s", err, out)
	}
	if len(res.Transports) != 3 {
		t.Fatalf("transports %+v, want websocket, sse and socketio", res.Transports)
	}
	label := map[string]string{"websocket": "WebSocket", "sse": "SSE", "socketio": "Socket.IO"}
	for _, tr := range res.Transports {
		status := "connected as " + tr.User + " over " + label[tr.Transport]
		if tr.Transport == "socketio" { // and the Engine.IO transport it connected over
			if tr.Status != status+" (polling)" && tr.Status != status+" (websocket)" {
				t.Errorf("%s: status %q, want %q followed by (polling) or (websocket)", tr.Transport, tr.Status, status)
			}
		} else if tr.Status != status {
			t.Errorf("%s: status %q, want %q", tr.Transport, tr.Status, status)
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
			// The note's ID is the event ID, the one the API or KafkaJS reported, on every
			// transport.
			if n.Via != w.via || !strings.HasPrefix(n.Sent, w.idPrefix) || n.ID != n.Sent || n.Event != w.event || n.Text != w.text {
				t.Errorf("%s: note %d is %+v, want via %s, ID %q (on %s), event %s, text %q", tr.Transport, i, n, w.via, n.Sent, w.idPrefix, w.event, w.text)
			}
			// Shown as a notification of its event, not as a control message (resync, disconnect).
			if n.Kind != "note "+w.event || strings.HasPrefix(n.Meta, "control") {
				t.Errorf("%s: note %d (%s) has class %q and meta %q, want class \"note %s\" and no \"control\" label", tr.Transport, i, w.event, n.Kind, n.Meta, w.event)
			}
			// The meta line leads with the event ID; Socket.IO events have no time of their own,
			// so there the page says when it received them.
			wantMeta := n.Sent + " · "
			if tr.Transport == "socketio" {
				wantMeta += "received "
			}
			if !strings.HasPrefix(n.Meta, wantMeta) {
				t.Errorf("%s: note %d meta %q, want it to start with %q", tr.Transport, i, n.Meta, wantMeta)
			}
			if _, leaked := n.Data["userIds"]; leaked || len(n.Data) == 0 {
				t.Errorf("%s: note %d data %v, want the value without its recipient list", tr.Transport, i, n.Data)
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

	if up := res.Upgrade; up.Status != "connected as browser-upgrade over Socket.IO (websocket)" {
		t.Errorf("Socket.IO after the upgrade: status %q, want \"connected as browser-upgrade over Socket.IO (websocket)\" (problems: %v)", up.Status, up.Problems)
	} else {
		for _, p := range up.Problems {
			t.Errorf("Socket.IO upgrade: %s", p)
		}
	}

	sw := res.SwitchUser
	if sw.AliceCount != "2" {
		t.Errorf("switching users: alice's list counts %q, want 2", sw.AliceCount)
	}
	if sw.Heading != "Notifications for switch-bob 1" || sw.Count != "1" || len(sw.IDs) != 1 || sw.IDs[0] != sw.BobSent {
		t.Errorf("switching users: bob's list is %q with IDs %v (count %q), want \"Notifications for switch-bob 1\" with bob's %s alone", sw.Heading, sw.IDs, sw.Count, sw.BobSent)
	}
	if sw.CursorAtSwitch {
		t.Error("switching users: bob's WebSocket resumed from alice's cursor (?cursor= on its URL)")
	}
	if len(sw.Seen) != 1 || sw.Seen[0] != sw.BobSent {
		t.Errorf("switching users: the de-duplication set holds %v, want bob's %s alone", sw.Seen, sw.BobSent)
	}
	for _, p := range sw.Problems {
		t.Errorf("switching users: %s", p)
	}

	if len(res.Resume) != 3 || len(res.Reload) != 3 {
		t.Fatalf("resume %+v and reload %+v, want websocket, sse and socketio each", res.Resume, res.Reload)
	}
	for _, r := range res.Resume {
		checkResume(t, "resume", r)
	}
	for _, r := range res.Reload {
		checkResume(t, "reload", r)
		if status := "connected as reload-" + r.Transport + " over " + label[r.Transport]; !strings.HasPrefix(r.After.Status, status) {
			t.Errorf("%s reload: the page says %q, want %q: it must connect again by itself, as the same user over the same transport", r.Transport, r.After.Status, status)
		}
		// After a reload the wire holds only what the new page got: none of the events before.
		for _, id := range r.Before {
			if slices.Contains(r.After.Wire, id) {
				t.Errorf("%s reload: the server sent %s again (wire %v): the resume token did not list it", r.Transport, id, r.After.Wire)
			}
		}
	}
}

// resumeRun is what browser.mjs reports of one resume (after Disconnect and Connect, or after a
// reload) on one transport.
type resumeRun struct {
	Transport    string
	Before, Away []string
	Held         struct {
		Cursor string
		Since  []string
	}
	Token *string
	After struct {
		Status, Count, Shown string
		IDs, Since, Wire     []string
		Dropped              int
		CursorMoved          bool
	}
	Recovery *struct {
		Status, Sent string
		Held         []string
		Shown        bool
		Dropped      int
	}
	Problems []string
}

// checkResume checks one resume run of TestDemoPageInChromium (what is the check's name in the
// errors): the page held the opening cursor and the two IDs after it, resumed with both, shows
// the two sent while away above the two before, once each, and no event came twice: not on the
// wire (the events the page's WebSockets and SSE requests carried, before the JS client
// de-duplicates) and not into the page's list (Socket.IO, where the page de-duplicates).
func checkResume(t *testing.T, what string, r resumeRun) {
	t.Helper()
	if len(r.Before) != 2 || len(r.Away) != 2 {
		t.Errorf("%s %s: sent %v before and %v while away, want two each", r.Transport, what, r.Before, r.Away)
		return
	}
	// The opening cursor came before the first event, so both events are IDs since it.
	if r.Held.Cursor == "" || !slices.Equal(r.Held.Since, r.Before) {
		t.Errorf("%s %s: the page held cursor %q and IDs %v, want a cursor and the IDs %v of the events after it", r.Transport, what, r.Held.Cursor, r.Held.Since, r.Before)
	}
	want := r.Held.Cursor + "~" + strings.Join(r.Before, ",")
	switch {
	case r.Transport == "socketio" && r.Token != nil:
		t.Errorf("socketio %s: token %q, want none read (it goes in the CONNECT auth)", what, *r.Token)
	case r.Transport != "socketio" && r.Token == nil:
		t.Errorf("%s %s: the page resumed with no token, want %q", r.Transport, what, want)
	case r.Transport != "socketio" && *r.Token != want:
		t.Errorf("%s %s: the page resumed with %q, want %q", r.Transport, what, *r.Token, want)
	}
	a := r.After
	// The list shows the newest first: the two sent while away (replayed in partition
	// order, and they are of two topics: either order), above the two before.
	ok := a.Count == "4" && len(a.IDs) == 4 && a.IDs[2] == r.Before[1] && a.IDs[3] == r.Before[0]
	if ok {
		away := slices.Sorted(slices.Values(a.IDs[:2]))
		ok = slices.Equal(away, slices.Sorted(slices.Values(r.Away)))
	}
	if !ok {
		t.Errorf("%s %s: the list holds %v (count %q), want %v (either order) above %s and %s, once each", r.Transport, what, a.IDs, a.Count, r.Away, r.Before[1], r.Before[0])
	}
	if a.Dropped != 0 {
		t.Errorf("%s %s: the page dropped %d duplicates, want 0: the server sent again events whose IDs the resume token listed", r.Transport, what, a.Dropped)
	}
	// WebSocket and SSE: every event ID on the wire once, whatever the JS client drops.
	if r.Transport != "socketio" {
		for _, id := range r.Away {
			if !slices.Contains(a.Wire, id) {
				t.Errorf("%s %s: %s is not among the IDs on the wire %v: the page's connections are not the ones the test reads", r.Transport, what, id, a.Wire)
			}
		}
		wire := map[string]int{}
		for _, id := range a.Wire {
			if wire[id]++; wire[id] == 2 {
				t.Errorf("%s %s: the server sent %s twice (wire %v): the resume token did not list it", r.Transport, what, id, a.Wire)
			}
		}
	}
	if !a.CursorMoved || len(a.Since) != 0 {
		t.Errorf("%s %s: after the replay the cursor moved %v with IDs since %v, want a new cursor (the frame that ends the replay) and none", r.Transport, what, a.CursorMoved, a.Since)
	}
	if !strings.Contains(a.Shown, "0 duplicates dropped") {
		t.Errorf("%s %s: the page says %q, want it to count 0 duplicates dropped", r.Transport, what, a.Shown)
	}
	if r.Transport == "socketio" && what == "resume" {
		rec := r.Recovery
		switch {
		case rec == nil:
			t.Error("socketio resume: no recovery run")
		case !strings.Contains(rec.Status, "recovered") || !rec.Shown:
			t.Errorf("socketio recovery: status %q, event sent while away shown %v; want recovered and shown", rec.Status, rec.Shown)
		case len(rec.Held) != 1:
			t.Errorf("socketio recovery: the page held IDs %v since its cursor, want the one event before the drop", rec.Held)
		case rec.Dropped != a.Dropped:
			t.Errorf("socketio recovery: the page dropped %d more duplicates, want none: the recovery offset did not carry the ID since the cursor", rec.Dropped-a.Dropped)
		}
	}
	for _, p := range r.Problems {
		t.Errorf("%s %s: %s", r.Transport, what, p)
	}
}

// TestDemoPageIsServed: the service serves the demo page at "/" and its assets under /static/
// (README, "A first look": open http://localhost:3000/), in development and production alike.
func TestDemoPageIsServed(t *testing.T) {
	s := startService(t, nil)
	for path, want := range map[string]struct{ contentType, contains string }{
		"/":                               {"text/html", `id="notifications"`},
		"/static/app.js":                  {"javascript", "createClient"},
		"/static/realtime.min.js":         {"javascript", "createClient"},
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
