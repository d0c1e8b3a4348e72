package realtime

import (
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// HistoryConfig bounds the in-memory history that serves most resumes without reading Kafka.
// Zero values have the meaning given with each field.
type HistoryConfig struct {
	// PerUser is how many recent events are kept per user; zero disables the history (every
	// resume that missed something reads Kafka).
	PerUser int
	// TTL is how long an event is kept; zero means 5 minutes.
	TTL time.Duration
	// MaxBytes bounds the estimated memory of all kept events; zero means 64 MiB. Past it the
	// oldest events go first, whatever their age.
	MaxBytes int64
}

// history keeps each user's recent events, sharing one copy of each event between its users.
// It knows, per user and partition, from which offset on it is complete: a resume whose cursor
// is at or past that offset is served from memory, exactly.
//
// Completeness: the history holds every event published since the hub's start position of each
// partition (Assigned), except events evicted (1) from a user's ring because the user had too
// many (that user's floor for the partition rises past them) or (2) from the global FIFO because
// they were too old or memory ran short (the global floor rises past them). Since the FIFO
// evicts in publish order, an event evicted globally has every earlier event of its partition
// evicted too, so a user whose ring empties can be forgotten: the global floor covers it.
//
// It is guarded by Hub.pubMu: publishing appends under it and replay reads under it, so what a
// replay sees is exactly what was published before the connection's registration position.
type history struct {
	cfg   HistoryConfig
	users map[string]*userHistory
	start map[partitionKey]int64 // the hub's start per partition (Assigned)
	floor map[partitionKey]int64 // global floor: events below were evicted from the FIFO
	fifo  []histEntry            // every kept event once, in publish order (a ring when full)
	head  int
	bytes int64
	m     *metrics
}

type histEntry struct {
	ev    *Event
	at    time.Time
	bytes int64
}

// userHistory is one user's ring of recent events, oldest first.
type userHistory struct {
	ring  []*Event // grows to cfg.PerUser, then wraps
	head  int      // index of the oldest event
	n     int
	floor map[partitionKey]int64 // events below were evicted from this ring
}

// push adds ev, evicting and returning the oldest event when the ring holds max already.
func (u *userHistory) push(ev *Event, max int) (evicted *Event) {
	if u.n < max {
		if u.n == len(u.ring) { // full below max: grow, oldest first again
			if u.head != 0 {
				u.ring = append(u.ring[u.head:len(u.ring):len(u.ring)], u.ring[:u.head]...)
				u.head = 0
			}
			u.ring = append(u.ring, ev)
		} else {
			u.ring[(u.head+u.n)%len(u.ring)] = ev
		}
		u.n++
		return nil
	}
	evicted = u.ring[u.head]
	u.ring[u.head] = ev
	u.head = (u.head + 1) % len(u.ring)
	return evicted
}

func (u *userHistory) oldest() *Event {
	if u.n == 0 {
		return nil
	}
	return u.ring[u.head]
}

func (u *userHistory) popOldest() {
	u.ring[u.head] = nil
	u.head = (u.head + 1) % len(u.ring)
	u.n--
}

func newHistory(cfg HistoryConfig, m *metrics) *history {
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	return &history{
		cfg:   cfg,
		users: map[string]*userHistory{},
		start: map[partitionKey]int64{},
		floor: map[partitionKey]int64{},
		m:     m,
	}
}

func (h *history) enabled() bool { return h.cfg.PerUser > 0 }

// assigned records where the hub starts in a partition: the history is complete from there.
func (h *history) assigned(k partitionKey, offset int64) { h.start[k] = offset }

// revoked records that the hub stopped consuming a partition: until it is assigned again the
// history cannot prove anything about it (events published meanwhile never reach this node).
func (h *history) revoked(k partitionKey) { delete(h.start, k) }

// eventBytes estimates what keeping ev costs, erring high: the event (its expiry and collapse
// key included) and its data, a frame in each of the three formats (data, ID and framing),
// and per user the ID's string header and ring slot. BenchmarkHistoryMemory holds it to the heap
// the history really adds.
func eventBytes(ev *Event) int64 {
	return int64(640 + len(ev.Data) + len(ev.CollapseKey) + 3*(len(ev.Data)+150) + 80*len(ev.UserIDs))
}

// add keeps ev for each of its users, evicting what is too old, too much or over a user's
// count.
func (h *history) add(ev *Event, now time.Time) {
	if !h.enabled() {
		return
	}
	for _, u := range ev.UserIDs {
		uh := h.users[u]
		if uh == nil {
			uh = &userHistory{}
			h.users[u] = uh
		}
		if old := uh.push(ev, h.cfg.PerUser); old != nil {
			if uh.floor == nil {
				uh.floor = map[partitionKey]int64{}
			}
			uh.floor[partitionKey{old.Topic, old.Partition}] = old.Offset + 1
		}
	}
	e := histEntry{ev: ev, at: now, bytes: eventBytes(ev)}
	h.fifo = append(h.fifo, e)
	h.bytes += e.bytes
	h.evict(now)
	h.m.historyBytes.Set(float64(h.bytes))
	h.m.historyEvents.Set(float64(len(h.fifo) - h.head))
	h.m.historyUsers.Set(float64(len(h.users)))
}

// evict drops events from the FIFO's head while they are older than the TTL or memory is over
// its bound, raising the global floor past them.
func (h *history) evict(now time.Time) {
	for h.head < len(h.fifo) {
		e := h.fifo[h.head]
		if now.Sub(e.at) < h.cfg.TTL && h.bytes <= h.cfg.MaxBytes {
			break
		}
		h.fifo[h.head] = histEntry{}
		h.head++
		h.bytes -= e.bytes
		h.floor[partitionKey{e.ev.Topic, e.ev.Partition}] = e.ev.Offset + 1
		for _, u := range e.ev.UserIDs {
			uh := h.users[u]
			if uh == nil || uh.oldest() != e.ev {
				continue // already gone from that ring (count eviction)
			}
			uh.popOldest()
			if uh.n == 0 {
				delete(h.users, u) // the global floor covers what it knew
			}
		}
	}
	// Compact the FIFO once its dead head is at least half of it.
	if h.head > 0 && h.head >= len(h.fifo)/2 {
		n := copy(h.fifo, h.fifo[h.head:])
		clear(h.fifo[n:])
		h.fifo, h.head = h.fifo[:n], 0
	}
}

// replay returns user's kept events in [from, to) per partition, or ok=false when the history
// is not complete for that range (the caller reads Kafka instead). A partition of to missing from
// from cannot be served from memory.
func (h *history) replay(user string, from, to []Position) (events []*notification.Event, ok bool) {
	if !h.enabled() {
		return nil, false
	}
	want := make(map[partitionKey][2]int64, len(to))
	for _, t := range to {
		k := partitionKey{t.Topic, t.Partition}
		lo, found := int64(0), false
		for _, f := range from {
			if f.Topic == t.Topic && f.Partition == t.Partition {
				lo, found = f.Offset, true
			}
		}
		if !found {
			return nil, false
		}
		if lo >= t.Offset {
			continue // nothing missed there
		}
		start, known := h.start[k]
		if !known || lo < start || lo < h.floor[k] {
			return nil, false
		}
		uh := h.users[user]
		if uh != nil && lo < uh.floor[k] {
			return nil, false
		}
		want[k] = [2]int64{lo, t.Offset}
	}
	if uh := h.users[user]; uh != nil {
		for i := range uh.n {
			ev := uh.ring[(uh.head+i)%len(uh.ring)]
			if r, in := want[partitionKey{ev.Topic, ev.Partition}]; in && ev.Offset >= r[0] && ev.Offset < r[1] {
				events = append(events, &ev.Event)
			}
		}
	}
	return events, true
}
