package client

import (
	"strconv"
	"testing"
)

// BenchmarkResumeToken is what OnResumeToken costs per event: a new ID added to the resume
// position (and to the de-duplication window of 1000) and the token built, "<cursor>~<id>,...",
// with the cursor of a 3-partition node and 1 to 32 IDs after it (a cursor every 32 events, as
// REALTIME_CURSOR_EVERY's default has it).
func BenchmarkResumeToken(b *testing.B) {
	ids := make([]string, 4096) // more than the window: an ID comes back once forgotten
	for i := range ids {
		ids[i] = "concept-notifications:" + strconv.Itoa(i%3) + ":" + strconv.Itoa(1_000_000+i)
	}
	r := NewResume("", 1000)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%32 == 0 {
			r.SetCursor("AtTJpRAC2GLIbgMAAAAAAAAWgUPCAwAAAAAAAA")
		}
		r.Add(ids[n%len(ids)])
		if r.Token() == "" {
			b.Fatal("no token after a cursor")
		}
		n++
	}
}
