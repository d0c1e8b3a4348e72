package notification

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkDecodeEvent decodes and validates one record of each built-in event (the two
// notification shapes of docs/design.md, "Topics and records") and of an event without a schema,
// each naming one user: the consumer's cost per record before fan-out. allocs/op is the
// allocations per decoded record.
func BenchmarkDecodeEvent(b *testing.B) {
	d := NewDecoder(NewValidator(), map[string]string{
		TopicSessions: EventSessionStartingSoon,
		TopicConcepts: EventConceptMastered,
		"other":       "other-event",
	})
	for _, bc := range []struct {
		name string
		rec  *kgo.Record
	}{
		{"concept-mastered", &kgo.Record{Topic: TopicConcepts, Value: []byte(
			`{"bench":"r1.42.1234567","conceptId":"c42","userIds":["user-17"],"conceptName":"JavaScript Arrays","masteryLevel":0.9}`)}},
		{"session-starting-soon", &kgo.Record{Topic: TopicSessions, Value: []byte(
			`{"sessionId":"s42","userIds":["user-17"],"message":"Your session starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`)}},
		{"no schema", &kgo.Record{Topic: "other", Value: []byte(
			`{"userIds":["user-17"],"text":"hello","n":3}`)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(bc.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
