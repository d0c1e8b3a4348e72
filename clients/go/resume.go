package client

import (
	"maps"
	"slices"
	"strings"
)

// Resume is a client's resume position and de-duplication window, as docs/client-protocol.md
// ("Cursor") asks of every client: the cursor of the last cursor (or resync) frame, the IDs of
// the events received after it, and the last Window event IDs received, to drop a second copy.
// Not safe for concurrent use; [Client] guards its own.
type Resume struct {
	cursor string
	ids    []string // IDs after the cursor, oldest first
	// MaxIDs bounds the IDs the token lists (the server takes up to 4,096); past it the list
	// keeps the last ID of each partition, which tells the server as much (every event of the
	// user below it in that partition was received: docs/design.md, "Cursor"). Default 100.
	MaxIDs int
	// Window is how many event IDs Seen remembers, the newest kept ([Options].Dedup: 1000 by
	// default); zero or less remembers all (the load tool's exact duplicate count).
	Window int
	seen   map[string]struct{}
	ring   []string // the remembered IDs in arrival order, a ring when full
	next   int      // the ring's oldest slot once full
	// Dups counts events Seen reported as already received.
	Dups int64
}

// NewResume starts from a resume token ("" for a fresh start) as Token returned it, e.g. from
// storage; the IDs it lists count as received.
func NewResume(token string, window int) *Resume {
	r := &Resume{MaxIDs: 100, Window: window, seen: map[string]struct{}{}}
	cursor, rest, _ := strings.Cut(token, "~")
	r.cursor = cursor
	if rest != "" && cursor != "" {
		for _, id := range strings.Split(rest, ",") {
			r.Add(id)
		}
	}
	return r
}

// Cursor returns the last cursor, "" before any.
func (r *Resume) Cursor() string { return r.cursor }

// Token returns the resume token for the next connection: "" (start afresh) before any cursor,
// the cursor alone when no event came after it, else "<cursor>~<id>,<id>,...".
func (r *Resume) Token() string {
	if r.cursor == "" || len(r.ids) == 0 {
		return r.cursor
	}
	return r.cursor + "~" + strings.Join(r.ids, ",")
}

// SetCursor keeps c, the cursor of a cursor or resync frame: it covers every event received
// before it, so the IDs listed so far are dropped. An empty c changes nothing.
func (r *Resume) SetCursor(c string) {
	if c == "" {
		return
	}
	r.cursor = c
	r.ids = r.ids[:0]
}

// Seen reports whether an event with this ID was received already (and counts it in Dups).
func (r *Resume) Seen(id string) bool {
	_, ok := r.seen[id]
	if ok {
		r.Dups++
	}
	return ok
}

// Add records that the event with this ID was received (after the application had it): it is
// remembered for Seen and, once a cursor came, listed in the token.
func (r *Resume) Add(id string) {
	if _, ok := r.seen[id]; !ok {
		r.seen[id] = struct{}{}
		if r.Window > 0 {
			if len(r.ring) < r.Window {
				r.ring = append(r.ring, id)
			} else {
				delete(r.seen, r.ring[r.next])
				r.ring[r.next] = id
				r.next = (r.next + 1) % r.Window
			}
		}
	}
	if r.cursor == "" {
		return // before any cursor there is no position to add it to
	}
	r.ids = append(r.ids, id)
	if max := r.MaxIDs; max > 0 && len(r.ids) > max {
		r.ids = lastPerPartition(r.ids)
	}
}

// Forget clears the de-duplication window (after a resync with a new position, where IDs may
// start over: a topic deleted and created again).
func (r *Resume) Forget() {
	clear(r.seen)
	r.ring, r.next = r.ring[:0], 0
}

// lastPerPartition keeps, of ids, the last of each "<topic>:<partition>", in their order.
func lastPerPartition(ids []string) []string {
	last := map[string]int{}
	for i, id := range ids {
		last[id[:max(0, strings.LastIndexByte(id, ':'))]] = i
	}
	out := ids[:0:0]
	for i, id := range ids {
		if last[id[:max(0, strings.LastIndexByte(id, ':'))]] == i {
			out = append(out, id)
		}
	}
	return out
}

// Clone returns a copy of r, for another client resuming from the same position.
func (r *Resume) Clone() *Resume {
	c := *r
	c.ids = slices.Clone(r.ids)
	c.seen = maps.Clone(r.seen)
	c.ring = slices.Clone(r.ring)
	return &c
}
