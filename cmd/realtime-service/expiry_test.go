package main

import (
	"net/http"
	"testing"
	"time"
)

// TestResumeSkipsExpiredAndCollapsedEvents: while a WebSocket client is away, the HTTP API
// produces ten notifications with one collapseKey, one with a ttlMs that runs out before the
// client comes back, and one plain; on resume the client gets exactly the newest of the ten and
// the plain one, then live events — from memory, and from Kafka when the history is off — and
// /metrics counts what was dropped.
func TestResumeSkipsExpiredAndCollapsedEvents(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"from memory": nil,
		"from Kafka":  {"REALTIME_HISTORY_SIZE": "0"},
	} {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env)
			// One conceptId: every record has one key, so one partition, in order.
			post := func(user, options string) string {
				t.Helper()
				body := `{"conceptId":"c","userIds":["` + user + `"],"conceptName":"n","masteryLevel":0.5` + options + `}`
				var p produced
				if resp := s.do("POST", "/v1/notifications/concept-mastered", body, &p); resp.StatusCode != http.StatusCreated {
					t.Fatalf("POST %s: status %d", body, resp.StatusCode)
				}
				return p.ID
			}
			ws, frames := openWS(t, s, "alice", "")
			_, bob := openWS(t, s, "bob", "")
			waitConnected(t, s, 2)
			first := expectIDs(t, frames, post("alice", ""))
			ws.Close()
			waitConnected(t, s, 1)

			var collapsing []string
			for range 10 {
				collapsing = append(collapsing, post("alice", `,"collapseKey":"mastery:c"`))
			}
			post("alice", `,"ttlMs":1500`)
			expiresBy := time.Now().Add(1500 * time.Millisecond) // the record's timestamp is earlier
			plain := post("alice", "")
			expectIDs(t, bob, post("bob", "")) // the node has published every record before it
			time.Sleep(time.Until(expiresBy) + 50*time.Millisecond)

			_, frames = openWS(t, s, "alice", first.Cursor)
			expectIDs(t, frames, collapsing[9], plain)
			expectIDs(t, frames, post("alice", "")) // nothing else came between
			if n := metric(t, s.URL, "realtime_events_collapsed_total", ""); n != 9 {
				t.Errorf("realtime_events_collapsed_total = %v, want 9", n)
			}
			// Published before it expired, it expires in the replay; after, at publish.
			live := metric(t, s.URL, "realtime_events_expired_total", `path="live"`)
			replayed := metric(t, s.URL, "realtime_events_expired_total", `path="replay"`)
			if live+replayed != 1 {
				t.Errorf("realtime_events_expired_total: live %v + replay %v, want 1", live, replayed)
			}
		})
	}
}
