package realtime

import "testing"

// Publish reports how many connections it queued the event for: the tracing fan-out span of
// cmd/realtime-service carries it.
func TestPublishCountsDeliveries(t *testing.T) {
	h := NewHub(HubConfig{})
	register(t, h, "alice", newFake(FormatWebSocket, false))
	register(t, h, "alice", newFake(FormatSSE, false))
	register(t, h, "bob", newFake(FormatWebSocket, false))

	for _, tc := range []struct {
		users []string
		want  int
	}{
		{[]string{"alice", "bob"}, 3},
		{[]string{"bob"}, 1},
		{[]string{"nobody-connected"}, 0},
	} {
		if got := h.Publish(event("t", 0, 1, tc.users...)).Delivered; got != tc.want {
			t.Errorf("Publish to %v: Delivered = %d, want %d", tc.users, got, tc.want)
		}
	}
}
