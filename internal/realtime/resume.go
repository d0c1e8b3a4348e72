package realtime

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// Replayer finds the events a resuming client missed.
type Replayer interface {
	// Replay returns user's events with offsets in [from, to) of each partition, in offset order
	// within a partition. A partition missing from from is read from its start. The error is a
	// *ResyncError when the range cannot be served (expired, too long).
	Replay(ctx context.Context, user string, from, to []Position) ([]*notification.Event, error)
}

// PositionChecker is implemented by a Replayer that can tell whether positions exist in Kafka.
type PositionChecker interface {
	// CheckPositions returns a *ResyncError (reason "ahead-of-log") when a position lies beyond
	// the end of its partition's log, nil otherwise (also when Kafka cannot be asked).
	CheckPositions(ctx context.Context, ps []Position) error
}

// ResyncError says why a resume cannot be honoured; the client gets a "resync" event with Reason.
type ResyncError struct {
	Reason string // machine-readable: malformed, other-cluster, unknown-topic, expired, too-far-behind, ahead-of-log, unavailable
	Detail string
}

func (e *ResyncError) Error() string { return "resync: " + e.Reason + ": " + e.Detail }

// Attach registers a connection (see Register) and, when the client sent a resume token (a
// cursor, optionally followed by the IDs of the events it got after it: see ParseResume), first
// sends it every event of its user it missed since the cursor but those IDs, then a cursor frame
// past them, then the live events queued meanwhile, with no gap and no duplicate at the seam. A
// cursor that cannot be honoured (malformed, from another cluster, older than Kafka retains,
// beyond the replay limit) yields one "resync" control frame instead, which carries the new
// cursor, then live events. On a node that has not been assigned the cursor's
// partitions yet (it is starting), Attach first waits for them, within ctx and
// HubConfig.AssignWait; past that the client gets a resync ("unavailable"). The replay runs in
// the background; the connection's frames wait for it.
func (h *Hub) Attach(ctx context.Context, o ConnOptions, cursor string) (*Conn, error) {
	if cursor == "" {
		c, _, err := h.Register(o)
		return c, err
	}
	from, have, cerr := h.resumeFrom(ctx, cursor)
	if cerr == nil {
		o.Skip, o.SkipIDs = from, have // live events below the cursor are the client's already
	}
	c, at, err := h.register(o, btoi(o.Paused)+1, true) // the caller's hold, if any, and the replay's
	if err != nil {
		return nil, err
	}
	go func() {
		ctx, cancel := connContext(context.Background(), c)
		defer cancel()
		frames, ids, _ := h.replay(ctx, c, from, at, have, cerr)
		c.resumeReplay(frames, ids)
	}()
	return c, nil
}

// AttachResume is Attach with the replay done before it returns, for protocols that must tell
// the client whether its resume was honoured before anything else (Socket.IO's CONNECT reply
// decides `socket.recovered`). honoured reports that every missed event is queued ahead of the
// live ones; otherwise a resync frame is. The caller must pass o.Paused and release its hold
// with Resume(nil) once its own reply is written. It returns within ctx, which bounds the wait
// for partitions and a Kafka read.
func (h *Hub) AttachResume(ctx context.Context, o ConnOptions, cursor string) (c *Conn, honoured bool, err error) {
	from, have, cerr := h.resumeFrom(ctx, cursor)
	if cerr == nil {
		o.Skip, o.SkipIDs = from, have
	}
	c, at, err := h.register(o, btoi(o.Paused)+1, true)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := connContext(ctx, c)
	defer cancel()
	frames, ids, honoured := h.replay(ctx, c, from, at, have, cerr)
	c.resumeReplay(frames, ids)
	return c, honoured, nil
}

// resumeFrom decodes a resume token, moves its cursor past the IDs it lists (see advance; have
// holds those of partitions the cursor lacks), and waits until the hub consumes each of the
// cursor's partitions: only then does the hub's position say where live events start for the
// client, so that what lies between the cursor and that position can be replayed. The error is
// a *ResyncError.
func (h *Hub) resumeFrom(ctx context.Context, token string) (from []Position, have map[Position]bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.AssignWait)
	defer cancel()
	// A node that has just started may not know its cluster yet: the cursor waits for it as for
	// its partitions below.
	select {
	case <-h.codecSet:
	case <-ctx.Done():
	}
	from, have, err = h.decodeResume(token)
	if err != nil {
		return nil, nil, err
	}
	if err := h.awaitPartitions(ctx, from); err != nil {
		return nil, nil, err
	}
	// A cursor ahead of this node is normal (another node was further along; live events below
	// it are skipped), unless it is ahead of Kafka itself: forged, or from a topic since deleted
	// and recreated. Skipping up to such offsets would drop every live event.
	if pc, ok := h.cfg.Replayer.(PositionChecker); ok {
		if ahead := aheadOf(from, h.Position()); len(ahead) > 0 {
			if err := pc.CheckPositions(ctx, ahead); err != nil {
				return nil, nil, err
			}
		}
	}
	return from, have, nil
}

// aheadOf returns the positions of from beyond the hub's position at.
func aheadOf(from, at []Position) []Position {
	var out []Position
	for _, f := range from {
		i := slices.IndexFunc(at, func(a Position) bool { return a.Topic == f.Topic && a.Partition == f.Partition })
		if i >= 0 && f.Offset > at[i].Offset {
			out = append(out, f)
		}
	}
	return out
}

// connContext is a context that ends when c closes or parent ends: a replay for a client that
// left stops reading Kafka.
func connContext(parent context.Context, c *Conn) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// decodeResume reads a resume token (ParseResume) into the position to resume from and the
// event IDs the client has beyond it (see advance). The error is a *ResyncError.
func (h *Hub) decodeResume(token string) ([]Position, map[Position]bool, error) {
	codec := h.Codec()
	if codec == nil {
		return nil, nil, &ResyncError{Reason: "unavailable", Detail: errNoCodec.Error()}
	}
	cursor, ids, err := ParseResume(token)
	var ps []Position
	if err == nil {
		ps, err = codec.Decode(cursor)
	}
	if err != nil {
		var ce *CursorError
		errors.As(err, &ce)
		return nil, nil, &ResyncError{Reason: ce.Reason, Detail: ce.Detail()}
	}
	from, have := advance(ps, ids)
	return from, have, nil
}

// replay returns the frames a resuming connection gets before live events: the missed events
// (but those in have) and a cursor frame past them, the connection's opening cursor (honoured),
// or one resync frame carrying the hub's cursor (not honoured). Missed events that have expired
// are not sent, nor, of those sharing a collapse key, any but the newest
// (notification.ForReplay); the cursor frame covers them all the same. ids are the IDs of the
// replayed events, for delivered receipts (nil without HubConfig.Receipts).
func (h *Hub) replay(ctx context.Context, c *Conn, from, at []Position, have map[Position]bool, cerr error) (frames [][]byte, ids []string, honoured bool) {
	if cerr == nil && !behind(from, at) {
		return h.openingCursor(c.format, from, at), nil, true
	}
	var events []*notification.Event
	err := cerr
	if err == nil {
		h.pubMu.Lock()
		kept, ok := h.hist.replay(c.user, from, at)
		h.pubMu.Unlock()
		switch {
		case ok:
			events = kept
			h.m.replays.WithLabelValues("memory").Inc()
		case h.cfg.Replayer == nil:
			err = &ResyncError{Reason: "unavailable", Detail: "this node keeps no history that far back and cannot read Kafka"}
		default:
			events, err = h.cfg.Replayer.Replay(ctx, c.user, from, at)
			h.m.replays.WithLabelValues("kafka").Inc()
		}
	}
	if err != nil {
		var re *ResyncError
		if !errors.As(err, &re) {
			re = &ResyncError{Reason: "unavailable", Detail: err.Error()}
		}
		h.m.resyncs.WithLabelValues(re.Reason).Inc()
		return [][]byte{h.resyncFrame(c.format, re, at)}, nil, false
	}
	if len(have) > 0 {
		events = slices.DeleteFunc(events, func(n *notification.Event) bool {
			return have[Position{n.Topic, n.Partition, n.Offset}]
		})
	}
	kept, expired, collapsed := notification.ForReplay(events, h.cfg.Now())
	h.m.expired.WithLabelValues(pathReplay).Add(float64(expired))
	h.m.collapsed.Add(float64(collapsed))
	// The cursor frame after the missed events moves the client's cursor past them, and past
	// those left out, so that its next resume does not read them again.
	frames, ids = h.replayFrames(c.format, kept)
	return append(frames, h.openingCursor(c.format, from, at)...), ids, true
}

// openingCursor is the cursor frame a resumed connection gets once the missed events are queued:
// from, where the client was, moved up to at, where live events start (a partition of from ahead
// of at stays: live events below it are skipped).
func (h *Hub) openingCursor(f Format, from, at []Position) [][]byte {
	codec := h.Codec()
	if codec == nil {
		return nil
	}
	var p positions
	for _, pos := range from {
		p.set(pos.Topic, pos.Partition, pos.Offset)
	}
	for _, pos := range at {
		if j, ok := p.index(pos.Topic, pos.Partition); !ok || p.list[j].Offset < pos.Offset {
			p.set(pos.Topic, pos.Partition, pos.Offset)
		}
	}
	if len(p.list) == 0 {
		return nil
	}
	h.m.cursorFrames.WithLabelValues(cursorOpen).Inc()
	return [][]byte{Control{Event: cursorEvent, Cursor: codec.Encode(p.list)}.Frame(f)}
}

// behind reports whether some partition of at is ahead of from, i.e. events may be missing.
func behind(from, at []Position) bool {
	for _, a := range at {
		i := slices.IndexFunc(from, func(f Position) bool { return f.Topic == a.Topic && f.Partition == a.Partition })
		if i < 0 || from[i].Offset < a.Offset {
			return true
		}
	}
	return false
}

// replayFrames frames events for one connection, merged by record time across partitions, each
// partition kept in offset order. The frames carry their IDs only: the opening cursor after
// them is the client's new resume position. ids are the events' IDs in the same order, when
// HubConfig.Receipts wants them.
func (h *Hub) replayFrames(f Format, events []*notification.Event) (frames [][]byte, ids []string) {
	frames = make([][]byte, 0, len(events)+1)
	for _, n := range mergeByTime(events) {
		ev := NewEvent(n)
		frames = append(frames, ev.Frame(f))
		if h.cfg.Receipts != nil {
			ids = append(ids, ev.ID())
		}
	}
	h.m.replayed.Add(float64(len(frames)))
	return frames, ids
}

// mergeByTime orders events by record time across partitions while keeping each partition's
// events in offset order (a k-way merge: record times need not grow within a partition).
func mergeByTime(events []*notification.Event) []*notification.Event {
	byPart := map[partitionKey][]*notification.Event{}
	var keys []partitionKey
	for _, e := range events {
		k := partitionKey{e.Topic, e.Partition}
		if _, ok := byPart[k]; !ok {
			keys = append(keys, k)
		}
		byPart[k] = append(byPart[k], e)
	}
	for _, k := range keys {
		slices.SortFunc(byPart[k], func(a, b *notification.Event) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	out := make([]*notification.Event, 0, len(events))
	for len(out) < len(events) {
		var best partitionKey
		found := false
		for _, k := range keys {
			q := byPart[k]
			if len(q) > 0 && (!found || q[0].Time.Before(byPart[best][0].Time)) {
				best, found = k, true
			}
		}
		out = append(out, byPart[best][0])
		byPart[best] = byPart[best][1:]
	}
	return out
}

func (h *Hub) resyncFrame(f Format, re *ResyncError, at []Position) []byte {
	cursor := ""
	if codec := h.Codec(); codec != nil && len(at) > 0 { // no partitions: no position to give
		cursor = codec.Encode(at)
	}
	return Control{
		Event:  "resync",
		Data:   map[string]string{"reason": re.Reason, "message": re.Detail},
		Cursor: cursor,
	}.Frame(f)
}

// CheckCursor returns nil when this hub can read cursor (a *ResyncError otherwise). Socket.IO
// answers a recovery attempt with `recovered: true` only then; Attach re-reads the cursor.
func (h *Hub) CheckCursor(cursor string) error {
	_, _, err := h.decodeResume(cursor)
	return err
}
