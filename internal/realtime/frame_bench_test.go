package realtime

import (
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// BenchmarkFrame builds one event's frame in each transport's format, from the decoded record:
// what Publish pays once per record and format (the frame is then shared by every recipient).
func BenchmarkFrame(b *testing.B) {
	n := &notification.Event{
		Name: "concept-mastered", Topic: "concept-notifications", Partition: 2, Offset: 123456,
		Time: time.UnixMilli(1764842400123), UserIDs: []string{"user-17"},
		Data: []byte(`{"bench":"r1.42.1234567","conceptId":"c42","conceptName":"JavaScript Arrays","masteryLevel":0.9}`),
	}
	for _, bc := range []struct {
		name string
		f    Format
	}{
		{"ws", FormatWebSocket},
		{"sse", FormatSSE},
		{"socketio", FormatSocketIO},
		{"socketio-plain", FormatSocketIOPlain},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := NewEvent(n)
				if len(ev.Frame(bc.f)) == 0 {
					b.Fatal("empty frame")
				}
			}
		})
	}
}
