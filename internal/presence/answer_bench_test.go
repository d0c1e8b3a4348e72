package presence

import (
	"strconv"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// BenchmarkAppendUsers is the work of a presence query answered from the view: 1 and 1,000
// users, half of them online on one of three nodes, in a view of 100,000 users.
func BenchmarkAppendUsers(b *testing.B) {
	c := &clock{t: time.Now()}
	bs := &bus{now: c.now}
	var trackers []*Tracker
	var v *View
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		t, view := newNode(bs, c, id)
		t.heartbeat(false)
		trackers = append(trackers, t)
		v = view
	}
	bs.views = []*View{v}
	for i := range 100_000 {
		if i%2 == 0 {
			trackers[i%3].Connections("user-"+strconv.Itoa(i), realtime.TransportCounts{WebSocket: 1})
		}
	}
	for _, t := range trackers {
		t.flush()
	}
	for _, n := range []int{1, 1000} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "user-" + strconv.Itoa(i*37%100_000)
		}
		b.Run(strconv.Itoa(n)+"-users", func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for _, id := range ids {
					buf = v.AppendUser(buf, id)
				}
			}
		})
	}
}
