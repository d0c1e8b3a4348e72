package realtime

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

func TestResumeFromMemoryDoesNotReadKafka(t *testing.T) {
	rp := &memReplayer{}
	h := NewHub(HubConfig{Replayer: rp, History: HistoryConfig{PerUser: 10}})
	cc, _ := NewCursorCodec("c", []string{"t"})
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{"t": {0: 0}})
	first := newFake(FormatWebSocket, false)
	c := register(t, h, "alice", first)
	h.Publish(event("t", 0, 0, "alice"))
	waitFor(t, "first", func() bool { return len(first.got()) == 2 })
	cursor := holding(frames(t, first), true)
	c.Close(DisconnectClientGone)
	for i := 1; i <= 3; i++ {
		h.Publish(event("t", 0, int64(i), "alice", "bob"))
	}
	tr := newFake(FormatWebSocket, false)
	if _, err := h.Attach(context.Background(), ConnOptions{User: "alice", Transport: tr}, cursor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay", func() bool { return len(tr.got()) == 4 })
	ids := idsOf(eventsOnly(frames(t, tr)))
	if !slices.Equal(ids, []string{"t:0:1", "t:0:2", "t:0:3"}) || rp.calls != 0 {
		t.Errorf("got %v with %d Kafka reads, want 1-3 from memory", ids, rp.calls)
	}
}

// TestHistoryMatchesTheLog publishes random events to random users across partitions, with
// evictions by count, age and memory, and checks every answer the history gives against the full
// log: when it claims to be complete for a range, it must return exactly the user's events there.
func TestHistoryMatchesTheLog(t *testing.T) {
	for _, cfg := range []HistoryConfig{
		{PerUser: 5, TTL: time.Hour},
		{PerUser: 1000, TTL: 30 * time.Millisecond},
		{PerUser: 1000, TTL: time.Hour, MaxBytes: 20_000},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			hist := newHistory(cfg, newMetrics(nil))
			users := []string{"a", "b", "c", "d"}
			parts := []partitionKey{{"t", 0}, {"t", 1}, {"u", 0}}
			next := map[partitionKey]int64{}
			for _, p := range parts {
				next[p] = 10 // the hub started at offset 10
				hist.assigned(p, 10)
			}
			var log []*Event
			now := time.Unix(0, 0)
			served := 0
			for step := range 2000 {
				p := parts[rng.IntN(len(parts))]
				var to []string
				for _, u := range users {
					if rng.IntN(3) == 0 {
						to = append(to, u)
					}
				}
				if len(to) == 0 {
					to = []string{users[rng.IntN(len(users))]}
				}
				ev := NewEvent(&notification.Event{Topic: p.topic, Partition: p.partition, Offset: next[p], UserIDs: to, Data: []byte(`{}`)})
				next[p]++
				now = now.Add(time.Millisecond)
				hist.add(ev, now)
				log = append(log, ev)

				if step%7 != 0 {
					continue
				}
				// A random cursor between the start and now, per partition.
				user := users[rng.IntN(len(users))]
				var from, at []Position
				for _, q := range parts {
					from = append(from, Position{q.topic, q.partition, 10 + rng.Int64N(next[q]-9)})
					at = append(at, Position{q.topic, q.partition, next[q]})
				}
				got, ok := hist.replay(user, from, at)
				if !ok {
					continue
				}
				served++
				var want []*notification.Event
				for _, e := range log {
					if !slices.Contains(e.UserIDs, user) {
						continue
					}
					for _, f := range from {
						if f.Topic == e.Topic && f.Partition == e.Partition && e.Offset >= f.Offset {
							want = append(want, &e.Event)
						}
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("step %d user %s from %v: history gave %d events, the log has %d", step, user, from, len(got), len(want))
				}
			}
			if served == 0 {
				t.Error("the history never served a replay: the test checks nothing")
			}
			if hist.bytes > max(cfg.MaxBytes, 0) && cfg.MaxBytes > 0 {
				t.Errorf("history holds %d bytes, over its bound %d", hist.bytes, cfg.MaxBytes)
			}
		})
	}
}

func TestHistoryRefusesWhatItCannotProve(t *testing.T) {
	hist := newHistory(HistoryConfig{PerUser: 2, TTL: time.Hour}, newMetrics(nil))
	hist.assigned(partitionKey{"t", 0}, 5)
	at := []Position{{"t", 0, 9}}
	for i := int64(5); i < 9; i++ {
		hist.add(NewEvent(&notification.Event{Topic: "t", Offset: i, UserIDs: []string{"a"}, Data: []byte(`{}`)}), time.Now())
	}
	for _, tc := range []struct {
		name string
		from []Position
		ok   bool
	}{
		{"before the hub's start", []Position{{"t", 0, 4}}, false},
		{"evicted by count", []Position{{"t", 0, 6}}, false},
		{"within the ring", []Position{{"t", 0, 7}}, true},
		{"nothing missed", []Position{{"t", 0, 9}}, true},
		{"partition unknown to the cursor", nil, false},
	} {
		if _, ok := hist.replay("a", tc.from, at); ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
		}
	}
	if _, ok := hist.replay("nobody", []Position{{"t", 0, 5}}, at); !ok {
		t.Error("a user without events since the start has a complete (empty) history")
	}
}
