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

// BenchmarkDeliveryPoison is delivery's cost to refuse a poison record (DecodeForDelivery, as
// the delivery consumer calls it; BenchmarkDecodePoison is Decode, the dead-letter duty's): the
// bench's poison record (bench/poison.go: valid JSON, userIds empty, masteryLevel 2), which the
// fast scan refuses alone, and the same record with a space inside userIds, which the scan leaves
// to the reflective path. allocs/op is the allocations per refused record.
func BenchmarkDeliveryPoison(b *testing.B) {
	d := NewDecoder(NewValidator(), map[string]string{TopicConcepts: EventConceptMastered})
	for _, bc := range []struct{ name, value string }{
		{"scan", `{"conceptId":"poison-1","userIds":[],"conceptName":"poison","masteryLevel":2}`},
		{"unsure", `{"conceptId":"poison-1","userIds":[ ],"conceptName":"poison","masteryLevel":2}`},
	} {
		rec := &kgo.Record{Topic: TopicConcepts, Value: []byte(bc.value)}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.DecodeForDelivery(rec); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
