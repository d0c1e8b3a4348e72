package realtime

import (
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

var historyUsers = flag.Int("history-users", 10000, "BenchmarkHistoryMemory: users whose history is filled")

// BenchmarkHistoryMemory measures what the in-memory resume history really costs: it fills the
// history of a hub for -history-users users with the default REALTIME_HISTORY_SIZE (100) events
// each, decoded by the consumer's decoder from ~200-byte concept-mastered records naming one user
// (UUID user and concept IDs) on 2 topics of 3 partitions each (the embedded broker's default),
// then of 12 (the cursor every event and frame carries names every partition), and reports the
// live heap it added (runtime.ReadMemStats after two GCs, before and after) per user and per
// event, next to the history's own estimate (realtime_history_bytes, eventBytes). The bound on
// the history's memory is lifted (REALTIME_HISTORY_MAX_BYTES would evict at 64 MiB) so that every
// event stays. Cases: offline users (no connection: no frame is ever encoded), users online on
// WebSocket when the event was published (its WebSocket frame is encoded and kept with the
// event), and all three formats encoded (the estimate's assumption); then records naming 1,000
// users each (1,000 users, 100 events each, shared).
//
//	go test ./internal/realtime -run '^$' -bench HistoryMemory -benchtime 1x
func BenchmarkHistoryMemory(b *testing.B) {
	for _, partitions := range []int{3, 12} {
		for _, tc := range []struct {
			name    string
			formats []Format
		}{
			{"offline", nil},
			{"websocket", []Format{FormatWebSocket}},
			{"all-formats", []Format{FormatWebSocket, FormatSSE, FormatSocketIO}},
		} {
			b.Run(fmt.Sprintf("%d-partitions/%s", partitions, tc.name), func(b *testing.B) {
				benchHistoryMemory(b, *historyUsers, 100, partitions, 1, tc.formats)
			})
		}
	}
	// Fan-out records: each names 1,000 users (who share the one copy the history keeps).
	b.Run("3-partitions/fanout-1000/offline", func(b *testing.B) {
		benchHistoryMemory(b, 1000, 100, 3, 1000, nil)
	})
	b.Run("3-partitions/fanout-1000/websocket", func(b *testing.B) {
		benchHistoryMemory(b, 1000, 100, 3, 1000, []Format{FormatWebSocket})
	})
}

// benchHistoryMemory fills the history with events naming recipients users each (users must be
// a multiple of recipients), so that each of users users has perUser events.
func benchHistoryMemory(b *testing.B, users, perUser, partitions, recipients int, formats []Format) {
	topics := []string{"concept-notifications", "session-notifications"}
	dec := notification.NewDecoder(notification.NewValidator(), map[string]string{
		topics[0]: notification.EventConceptMastered, topics[1]: notification.EventSessionStartingSoon,
	})
	ids := make([]string, users)
	for i := range ids {
		ids[i] = uuidLike(uint64(i))
	}
	var heapPerEvent, estPerEvent, valueBytes, dataBytes float64
	for range b.N {
		b.StopTimer()
		runtime.GC()
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		h := NewHub(HubConfig{History: HistoryConfig{PerUser: perUser, TTL: time.Hour, MaxBytes: 1 << 40}})
		cc, err := NewCursorCodec("bench-cluster", topics)
		if err != nil {
			b.Fatal(err)
		}
		h.SetCursorCodec(cc)
		start := map[string]map[int32]int64{}
		for _, t := range topics {
			start[t] = map[int32]int64{}
			for p := range partitions {
				start[t][int32(p)] = 1_000_000 // offsets of a partition that has been written to for a while
			}
		}
		h.Assigned(start)
		offsets := make([]int64, partitions)
		for p := range offsets {
			offsets[p] = 1_000_000
		}
		var value []byte
		var vsum, dsum int
		now := time.Now()
		b.StartTimer()
		groups := users / recipients
		events := users * perUser / recipients
		for i := range events {
			p := i % partitions
			g := i % groups
			value = conceptMasteredValue(value[:0], i, ids[g*recipients:(g+1)*recipients])
			rec := &kgo.Record{Topic: topics[0], Partition: int32(p), Offset: offsets[p], Timestamp: now, Value: value}
			offsets[p]++
			n, err := dec.Decode(rec)
			if err != nil {
				b.Fatal(err)
			}
			vsum += len(value)
			dsum += len(n.Data)
			ev := h.Publish(n)
			for _, f := range formats {
				ev.Frame(f)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if kept := len(h.hist.fifo) - h.hist.head; kept != events || len(h.hist.users) != users {
			b.Fatalf("the history keeps %d events of %d users; want %d of %d", kept, len(h.hist.users), events, users)
		}
		heapPerEvent += (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / float64(events)
		estPerEvent += float64(h.hist.bytes) / float64(events)
		valueBytes += float64(vsum) / float64(events)
		dataBytes += float64(dsum) / float64(events)
		runtime.KeepAlive(h)
	}
	n := float64(b.N)
	b.ReportMetric(heapPerEvent/n, "heap-B/event")
	perEvent := float64(perUser) / float64(recipients) // a user's share of its events
	b.ReportMetric(heapPerEvent/n*perEvent, "heap-B/user")
	b.ReportMetric(estPerEvent/n, "estimate-B/event")
	b.ReportMetric(estPerEvent/n*perEvent, "estimate-B/user")
	b.ReportMetric(heapPerEvent/estPerEvent, "heap/estimate")
	b.ReportMetric(valueBytes/n, "value-B")
	b.ReportMetric(dataBytes/n, "data-B")
}

// uuidLike is a UUID-shaped ID (36 characters), unique for i.
func uuidLike(i uint64) string {
	h := i*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(h>>32), uint16(h>>16), i>>40&0xfff, uint16(h)&0xfff, i&0xffffffffffff)
}

// conceptMasteredValue appends a concept-mastered record value naming users: about 200 bytes
// with one user.
func conceptMasteredValue(b []byte, i int, users []string) []byte {
	b = append(b, `{"conceptId":"`...)
	b = append(b, uuidLike(uint64(i%5000)+1<<32)...)
	b = append(b, `","userIds":[`...)
	for j, u := range users {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, u...)
		b = append(b, '"')
	}
	b = append(b, `],"conceptName":"Recursion: base cases and the call stack, part `...)
	b = strconv.AppendInt(b, int64(i%5000), 10)
	b = append(b, `","masteryLevel":0.`...)
	b = strconv.AppendInt(b, int64(100+i%900), 10)
	return append(b, '}')
}
