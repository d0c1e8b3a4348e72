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

// Attach registers a connection (see Register) and, when the client sent a cursor, first sends
// it every event of its user it missed since the cursor, then the live events queued meanwhile,
// with no gap and no duplicate at the seam. A cursor that cannot be honoured (malformed, from
// another cluster, older than Kafka retains, beyond the replay limit) yields one "resync"
// control frame instead, then live events. On a node that has not been assigned the cursor's
// partitions yet (it is starting), Attach first waits for them, within ctx and
// HubConfig.AssignWait; past that the client gets a resync ("unavailable"). The replay runs in
// the background; the connection's frames wait for it.
func (h *Hub) Attach(ctx context.Context, o ConnOptions, cursor string) (*Conn, error) {
	if cursor == "" {
		c, _, err := h.Register(o)
		return c, err
	}
	from, cerr := h.resumeFrom(ctx, cursor)
	if cerr == nil {
		o.Skip = from // live events below the cursor are the client's already
	}
	c, at, err := h.register(o, btoi(o.Paused)+1, true) // the caller's hold, if any, and the replay's
	if err != nil {
		return nil, err
	}
	go func() {
		ctx, cancel := connContext(context.Background(), c)
		defer cancel()
		frames, _ := h.replay(ctx, c, from, at, cerr)
		c.resumeReplay(frames)
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
	from, cerr := h.resumeFrom(ctx, cursor)
	if cerr == nil {
		o.Skip = from
	}
	c, at, err := h.register(o, btoi(o.Paused)+1, true)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := connContext(ctx, c)
	defer cancel()
	frames, honoured := h.replay(ctx, c, from, at, cerr)
	c.resumeReplay(frames)
	return c, honoured, nil
}

// resumeFrom decodes cursor and waits until the hub consumes each of its partitions: only then
// does the hub's position say where live events start for the client, so that what lies between
// the cursor and that position can be replayed. The error is a *ResyncError.
func (h *Hub) resumeFrom(ctx context.Context, cursor string) ([]Position, error) {
	from, err := h.decodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.AssignWait)
	defer cancel()
	if err := h.awaitPartitions(ctx, from); err != nil {
		return nil, err
	}
	// A cursor ahead of this node is normal (another node was further along; live events below
	// it are skipped), unless it is ahead of Kafka itself: forged, or from a topic since deleted
	// and recreated. Skipping up to such offsets would drop every live event.
	if pc, ok := h.cfg.Replayer.(PositionChecker); ok {
		if ahead := aheadOf(from, h.Position()); len(ahead) > 0 {
			if err := pc.CheckPositions(ctx, ahead); err != nil {
				return nil, err
			}
		}
	}
	return from, nil
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

func (h *Hub) decodeCursor(s string) ([]Position, error) {
	codec := h.Codec()
	if codec == nil {
		return nil, &ResyncError{Reason: "unavailable", Detail: errNoCodec.Error()}
	}
	ps, err := codec.Decode(s)
	if err != nil {
		var ce *CursorError
		errors.As(err, &ce)
		return nil, &ResyncError{Reason: ce.Reason, Detail: ce.Detail()}
	}
	return ps, nil
}

// replay returns the frames a resuming connection gets before live events: the missed events
// with per-connection cursors (honoured), or one resync frame (not honoured). Missed events that
// have expired are not sent, nor, of those sharing a collapse key, any but the newest
// (notification.ForReplay); the last frame's cursor covers them all the same.
func (h *Hub) replay(ctx context.Context, c *Conn, from, at []Position, cerr error) (frames [][]byte, honoured bool) {
	if cerr == nil && !behind(from, at) {
		return nil, true
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
		return [][]byte{h.resyncFrame(c.format, re, at)}, false
	}
	kept, expired, collapsed := notification.ForReplay(events, h.cfg.Now())
	h.m.expired.WithLabelValues(pathReplay).Add(float64(expired))
	h.m.collapsed.Add(float64(collapsed))
	if len(kept) == 0 && len(events) > 0 {
		// Every missed event expired or collapsed away: the client's cursor still moves past
		// them, so that its next resume does not read them again.
		return [][]byte{Control{Event: cursorEvent, Cursor: h.Codec().Encode(at)}.Frame(c.format)}, true
	}
	return h.replayFrames(c.format, kept, from, at), true
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

// replayFrames frames events for one connection. Each frame's cursor is the connection's own
// progress: from, advanced past every event already sent, so that it is exact whatever order
// partitions interleave in. Partitions are merged by record time, each kept in offset order.
func (h *Hub) replayFrames(f Format, events []*notification.Event, from, at []Position) [][]byte {
	var p positions
	for _, pos := range from {
		p.set(pos.Topic, pos.Partition, pos.Offset)
	}
	codec := h.Codec()
	frames := make([][]byte, 0, len(events))
	for i, n := range mergeByTime(events) {
		p.set(n.Topic, n.Partition, n.Offset+1)
		if i == len(events)-1 {
			// Past the last missed event the client has everything below at: say so, so that
			// its next resume starts at the seam.
			for _, pos := range at {
				if j, ok := p.index(pos.Topic, pos.Partition); !ok || p.list[j].Offset < pos.Offset {
					p.set(pos.Topic, pos.Partition, pos.Offset)
				}
			}
		}
		ev := NewEvent(n)
		ev.Cursor = codec.Encode(p.list)
		frames = append(frames, ev.Frame(f))
	}
	h.m.replayed.Add(float64(len(frames)))
	return frames
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
	if codec := h.Codec(); codec != nil {
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
	_, err := h.decodeCursor(cursor)
	return err
}
