package realtime

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realtime-service/realtime-service/internal/stage"
)

// Transport writes frames to one client connection. The transports (WebSocket, SSE, Socket.IO)
// only translate frames; queueing, backpressure and closing live in Conn.
type Transport interface {
	// Format is the frame format this transport writes.
	Format() Format
	// WriteFrames writes frames, in order, with as few writes as it can (ideally one). Conn
	// calls it from one goroutine at a time. An error means the connection is broken.
	WriteFrames(frames [][]byte) error
	// CloseFrame is the last frame telling the client why it is disconnected, or nil when
	// the protocol has none.
	CloseFrame(d Disconnect) []byte
	// Close closes the underlying connection. It must be idempotent and safe to call while
	// WriteFrames runs (it makes a blocked write return).
	Close()
}

// forceCloseAfter is how long a closing connection may keep its writer blocked on a client that
// reads nothing before its socket is closed under it.
const forceCloseAfter = 2 * time.Second

// Conn is one live connection of one user as the hub sees it: a bounded send queue drained by a
// writer goroutine that exists only while there is something to write, so an idle connection
// costs no goroutine here. Send never blocks: past the queue bound the connection is closed with
// DisconnectSlow, and nobody else waits for it.
type Conn struct {
	hub       *Hub
	id        uint64
	user      string
	t         Transport
	format    Format
	maxQueued int // bytes

	mu     sync.Mutex
	queue  [][]byte
	spare  [][]byte // the previous batch's backing array, reused
	queued int      // bytes in queue
	// ids are the IDs of the live events whose frames are in queue (HubConfig.Receipts only):
	// once the writer wrote them, they are delivered. spareIDs is the previous batch's array.
	ids, spareIDs []string
	writing       bool // a writer goroutine runs (or Close owns the finish)
	holds         int  // frames wait while > 0: the transport is not ready, or a replay runs
	// replaying: a resume's replay is pending. The live frames queued meanwhile come after
	// the events being replayed, so they must never reach the client without them: a close
	// then drops them (the client keeps its old cursor), and no cursor frame is queued.
	replaying bool
	closing   bool
	reason    Disconnect
	skip      map[partitionKey]int64 // drop events below these offsets (see Resume)
	skipIDs   map[Position]bool      // drop these events: the client said it has them
	expires   time.Time              // the token's exp; zero: never (moved by Refresh)
	// cursorSeq is the Hub.posSeq of the last cursor frame queued to the client, sinceCursor
	// the events queued since (both guarded by Hub.pubMu).
	cursorSeq   uint64
	sinceCursor int
	force       *time.Timer
	forced      atomic.Bool // the transport was closed under a blocked writer (forceClose)
	done        chan struct{}

	// stamps are the stage clock readings (package stage) at which the timed frames in queue
	// were queued (HubConfig.Stages only): enqueue_write is timed from them once written.
	// spareStamps is the previous batch's array.
	stamps, spareStamps []int64
	// writer is c.writeLoop, made once: `go c.writer()` starts a writer without allocating the
	// closure `go c.writeLoop()` would at each wake.
	writer func()
}

// User is the ID of the user the connection belongs to (the token's sub).
func (c *Conn) User() string { return c.user }

// ExpireIfDue closes the connection with DisconnectTokenExpired when its token's expiry
// (ConnOptions.Expires, or the last Refresh) has passed, and reports whether it did. Transports
// call it on each keepalive tick, so a connection outlives its token by at most one ping
// interval, at the cost of no timer of its own.
func (c *Conn) ExpireIfDue(now time.Time) bool {
	c.mu.Lock()
	expires := c.expires
	c.mu.Unlock()
	if expires.IsZero() || now.Before(expires) {
		return false
	}
	c.Close(DisconnectTokenExpired)
	return true
}

// Done is closed once the connection is closed and its transport released.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Reason is why the connection was closed; valid after Done.
func (c *Conn) Reason() Disconnect {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// Send queues a frame the transport itself produced (a ping, a pong, a heartbeat comment). It
// returns false if the connection is closing or the frame overflowed the queue (the connection
// is then closed as slow).
func (c *Conn) Send(frame []byte) bool {
	ok, overflow := c.enqueue(frame)
	if overflow {
		c.Close(DisconnectSlow)
	}
	return ok
}

// deliver queues ev's frame unless a resume filter says the client has it already, and after
// every HubConfig.CursorEvery events a cursor frame. It reports whether the frame was queued,
// whether the queue overflowed (the caller closes the connection once it holds no hub lock) and,
// with deferWake, whether the caller must start the writer (Hub.Flush does, once per batch).
// at, when not 0, is the stage clock at hub entry: the delivery is timed (package stage).
// Hub.pubMu must be held.
func (c *Conn) deliver(ev *Event, deferWake bool, at int64) (queued, overflow, wake bool) {
	if (c.skip != nil || c.skipIDs != nil) && c.skips(ev) {
		return false, false, false
	}
	id := ""
	if c.hub.cfg.Receipts != nil {
		id = ev.id
	}
	queued, overflow, wake = c.push(ev.Frame(c.format), id, deferWake, at)
	if queued {
		c.sinceCursor++
		if c.sinceCursor >= c.hub.cfg.CursorEvery {
			// The writer, if the event's push started one, is reserved already: this push
			// starts none.
			_, overflow = c.hub.queueCursorLocked(c, cursorCount)
		}
	}
	return queued, overflow, wake
}

func (c *Conn) skips(ev *Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	below, ok := c.skip[partitionKey{ev.Topic, ev.Partition}]
	return ok && ev.Offset < below || c.skipIDs[Position{ev.Topic, ev.Partition, ev.Offset}]
}

func (c *Conn) enqueue(frame []byte) (queued, overflow bool) {
	queued, overflow, _ = c.push(frame, "", false, 0)
	return queued, overflow
}

// push queues frame and starts the writer if none runs, or with deferWake leaves that to the
// caller (wake): the writer is then reserved, and its frames wait for the caller's go writeLoop.
// id, when not empty, is the ID of the live event frame carries, for its delivery receipt.
// at, when not 0, is the stage clock at hub entry: publish_enqueue is timed now, and
// enqueue_write once the writer wrote the frame.
func (c *Conn) push(frame []byte, id string, deferWake bool, at int64) (queued, overflow, wake bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false, false, false
	}
	if c.queued+len(frame) > c.maxQueued {
		c.mu.Unlock()
		return false, true, false
	}
	if c.queue == nil {
		c.queue, c.spare = c.spare, nil // reuse the last batch's array
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if id != "" {
		if c.ids == nil {
			c.ids, c.spareIDs = c.spareIDs, nil
		}
		c.ids = append(c.ids, id)
	}
	if at != 0 {
		now := stage.Now()
		c.hub.cfg.Stages.Since(stage.PublishEnqueue, at, now)
		if c.stamps == nil {
			c.stamps, c.spareStamps = c.spareStamps, nil
		}
		c.stamps = append(c.stamps, now)
	}
	start := !c.writing && c.holds == 0
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start && deferWake {
		return true, false, true
	}
	if start {
		go c.writer()
	}
	return true, false, false
}

// writeLoop drains the queue in batches until it is empty, then exits; when the connection is
// closing it finishes it once the last frame is written.
func (c *Conn) writeLoop() {
	for {
		c.mu.Lock()
		batch := c.queue
		if len(batch) == 0 || c.holds > 0 && !c.closing {
			closing := c.closing
			if !closing {
				c.writing = false
			}
			c.mu.Unlock()
			if closing {
				c.finish()
			}
			return
		}
		c.queue, c.spare = c.spare, nil
		c.queued = 0
		ids, stamps := c.ids, c.stamps
		c.ids, c.stamps = nil, nil
		c.mu.Unlock()

		err := c.t.WriteFrames(batch)
		clear(batch)
		if err == nil && len(stamps) > 0 {
			now := stage.Now()
			for _, at := range stamps {
				c.hub.cfg.Stages.Since(stage.EnqueueWrite, at, now)
			}
		}
		if err == nil && len(ids) > 0 {
			c.hub.cfg.Receipts.Delivered(c.user, formatName(c.format), ids)
		}

		c.mu.Lock()
		if cap(batch) <= 64 {
			c.spare = batch[:0]
		}
		if cap(ids) <= 64 {
			clear(ids)
			c.spareIDs = ids[:0]
		}
		if cap(stamps) <= 64 {
			c.spareStamps = stamps[:0]
		}
		c.mu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !c.forced.Load() {
				c.hub.m.writeTimeouts.Inc()
			}
			c.closeNow(DisconnectClientGone)
			c.finish()
			return
		}
	}
}

// Close closes the connection with reason d: no frame is accepted after it; queued frames are
// written first when d says so, then the transport's close frame, then the transport is closed.
// It never blocks. Closing an already closing connection does nothing.
func (c *Conn) Close(d Disconnect) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.reason = true, d
	if !d.flush || c.replaying {
		clear(c.queue)
		c.queue, c.queued, c.ids, c.stamps = c.queue[:0], 0, nil, nil
	}
	if f := c.t.CloseFrame(d); f != nil {
		c.queue = append(c.queue, f)
	}
	start := !c.writing
	c.writing = true
	if !start && !d.flush {
		// The writer may be blocked on a client that reads nothing: bound the wait.
		c.force = time.AfterFunc(forceCloseAfter, c.forceClose)
	}
	c.mu.Unlock()

	c.hub.closed(c, d)
	if start {
		go c.writer()
	}
}

// forceClose closes the transport under a writer that may be blocked; the write it fails is not
// a write timeout.
func (c *Conn) forceClose() {
	c.forced.Store(true)
	c.t.Close()
}

// closeNow marks the connection closed without a close frame (its transport is broken).
func (c *Conn) closeNow(d Disconnect) {
	c.mu.Lock()
	already := c.closing
	c.closing, c.queue, c.queued, c.ids, c.stamps = true, nil, 0, nil, nil
	if !already {
		c.reason = d
	}
	c.mu.Unlock()
	if !already {
		c.hub.closed(c, d)
	}
}

// finish releases the transport; it runs once, on the goroutine that owns the writer.
func (c *Conn) finish() {
	c.t.Close()
	c.mu.Lock()
	if c.force != nil {
		c.force.Stop()
	}
	c.mu.Unlock()
	close(c.done)
}
