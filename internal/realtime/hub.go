// Package realtime delivers events to the live connections of the users they name.
//
// The Hub indexes connections by user ID (sharded, so lookups never contend on one lock) and fans
// each published event out to every connection of every named user. A Conn owns one bounded send
// queue and writes through its Transport; the transports (WebSocket, SSE here, Socket.IO in its
// own package) only translate frames. Data flows one way: Kafka consumer -> Hub.Publish -> Conn
// queues -> sockets.
package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/stage"
)

// ErrShuttingDown is returned by Register once Shutdown has begun.
var ErrShuttingDown = errors.New("realtime: shutting down")

// ErrTooManyConnections is returned by Register when the user already holds
// HubConfig.MaxConnsPerUser connections.
var ErrTooManyConnections = errors.New("realtime: too many connections for this user")

const numShards = 64

// HubConfig configures a Hub. Every field's zero value has a meaning, given with the field.
type HubConfig struct {
	// SendQueueBytes bounds each connection's queue; zero means 1 MiB.
	SendQueueBytes int
	// Log receives connection and delivery problems; nil discards them.
	Log *slog.Logger
	// Metrics registers the hub's metrics; nil registers nothing.
	Metrics prometheus.Registerer
	// History keeps recent events per user in memory, so that most resumes need no Kafka read.
	History HistoryConfig
	// Replayer serves resuming clients the events they missed that the history cannot (it reads
	// Kafka); nil answers those resumes with a resync event.
	Replayer Replayer
	// MaxConnsPerUser bounds the live connections of one user, over all transports
	// (REALTIME_MAX_CONNECTIONS_PER_USER); zero is no limit. Register enforces it at the
	// insert, so racing connects cannot pass it; the transports answer 429 or connect_error.
	MaxConnsPerUser int
	// AssignWait bounds how long a resume waits for a starting node to be assigned the cursor's
	// partitions (see Attach); 10 s when zero.
	AssignWait time.Duration
	// Batched makes Publish queue frames without waking connection writers; Flush wakes them,
	// once per batch of events, so that one write carries every frame a connection got in the
	// batch. The Kafka consumer calls Flush after each poll. False: every Publish wakes writers.
	Batched bool
	// CursorEvery is how many events a connection gets between two cursor control frames
	// (REALTIME_CURSOR_EVERY; zero means 32): events carry only their ID, so a client that
	// resumes without sending back the IDs it got since its last cursor gets at most
	// CursorEvery-1 events twice (docs/design.md, "Cursor"). A cursor frame is O(partitions)
	// bytes; one every 32 events costs under 30 bytes an event at 200 partitions.
	CursorEvery int
	// Presence is told of every change of a user's connection counts on this hub (package
	// presence); nil tells nobody.
	Presence PresenceSink
	// Receipts is told of every live event written to a connection and of every event a client
	// read (package receipts); nil, the default, tells nobody and costs delivery nothing.
	Receipts ReceiptSink
	// Now is the clock that decides whether an event has expired (notification.Event.ExpiresAt);
	// nil is time.Now. Tests set it.
	Now func() time.Time
	// Stages times the hub's stages (decode_publish, publish_enqueue, enqueue_write: package
	// stage); nil times nothing and reads no clock.
	Stages *stage.Timer
}

// Hub is the user index and fan-out. Make one with NewHub; it is safe for concurrent use.
type Hub struct {
	cfg    HubConfig
	log    *slog.Logger
	m      *metrics
	nextID atomic.Uint64
	down   atomic.Bool
	shards [numShards]shard

	// pubMu serialises publishing, so that a cursor frame, taken after the position was
	// advanced, covers exactly the events queued before it on every connection.
	pubMu   sync.Mutex
	pos     positions
	posSeq  uint64 // moves each time pos does: a connection's cursor is current when its seq matches
	hist    *history
	waiting []*Conn // Batched: connections whose writer Flush must start
	// cursor is the encoded pos at cursorSeq; encoded when a connection needs it, at most once
	// per position (events do not carry it: see cursor.go).
	cursor    string
	cursorSeq uint64
	// assignedc is closed (and replaced) at each Assigned: resumes waiting for a partition wake.
	assignedc chan struct{}
	codec     atomic.Pointer[CursorCodec]
	// codecSet is closed by the first SetCursorCodec: resumes that came earlier wait for it.
	codecSet  chan struct{}
	codecOnce sync.Once
}

type shard struct {
	mu    sync.RWMutex
	users map[string][]*Conn
}

// NewHub returns a Hub; it starts no goroutine.
func NewHub(cfg HubConfig) *Hub {
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = 1 << 20
	}
	if cfg.AssignWait <= 0 {
		cfg.AssignWait = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CursorEvery <= 0 {
		cfg.CursorEvery = 32
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, log: log, m: newMetrics(cfg.Metrics), assignedc: make(chan struct{}), codecSet: make(chan struct{})}
	h.hist = newHistory(cfg.History, h.m)
	for i := range h.shards {
		h.shards[i].users = make(map[string][]*Conn)
	}
	return h
}

func (h *Hub) shard(user string) *shard {
	return &h.shards[fnv32(user)%numShards]
}

// SetCursorCodec sets the codec for the Kafka cluster the hub's events come from; until it is set
// connections get no cursor frame, and resumes wait for it (within HubConfig.AssignWait, then a
// resync "unavailable").
func (h *Hub) SetCursorCodec(cc *CursorCodec) {
	h.codec.Store(cc)
	h.codecOnce.Do(func() { close(h.codecSet) })
}

// Codec is the cursor codec, or nil before SetCursorCodec.
func (h *Hub) Codec() *CursorCodec { return h.codec.Load() }

// ConnOptions describe a connection to Register.
type ConnOptions struct {
	// User is the authenticated user ID; required.
	User string
	// Transport writes the frames; required.
	Transport Transport
	// Expires closes the connection with DisconnectTokenExpired once that time has passed, at
	// the transport's next keepalive tick (see Conn.ExpireIfDue); zero never.
	Expires time.Time
	// Paused holds the connection's frames until Resume: register a connection before its
	// client can see it open (so no event published after that is missed), and release it once
	// the transport is ready.
	Paused bool
	// Skip drops live events below these offsets: the client resumed with a cursor ahead of
	// this node, and already has them.
	Skip []Position
	// SkipIDs drops these events (keyed by position): the client resumed saying it has them.
	SkipIDs map[Position]bool
}

// Register adds a connection to the hub and returns it with the hub's position at that instant:
// every event published after it goes to the connection, none before. The connection's first
// frame is a cursor control frame of that position (the opening cursor), once the hub knows its
// cluster and has partitions. It fails with
// ErrShuttingDown once Shutdown has begun, and with ErrTooManyConnections past
// HubConfig.MaxConnsPerUser.
func (h *Hub) Register(o ConnOptions) (*Conn, []Position, error) {
	return h.register(o, btoi(o.Paused), false)
}

// register registers with holds holds on the connection's frames (see Resume).
// With replaying, one of the holds is a resume replay's, released by resumeReplay.
func (h *Hub) register(o ConnOptions, holds int, replaying bool) (*Conn, []Position, error) {
	if h.down.Load() {
		return nil, nil, ErrShuttingDown
	}
	c := &Conn{
		hub:       h,
		id:        h.nextID.Add(1),
		user:      o.User,
		t:         o.Transport,
		format:    o.Transport.Format(),
		maxQueued: h.cfg.SendQueueBytes,
		holds:     holds,
		replaying: replaying,
		expires:   o.Expires,
		done:      make(chan struct{}),
	}
	c.writer = c.writeLoop
	if len(o.Skip) > 0 {
		c.skip = make(map[partitionKey]int64, len(o.Skip))
		for _, p := range o.Skip {
			c.skip[partitionKey{p.Topic, p.Partition}] = p.Offset
		}
	}
	c.skipIDs = o.SkipIDs
	s := h.shard(o.User)

	h.pubMu.Lock()
	s.mu.Lock()
	if max := h.cfg.MaxConnsPerUser; max > 0 && len(s.users[o.User]) >= max {
		s.mu.Unlock()
		h.pubMu.Unlock()
		return nil, nil, ErrTooManyConnections
	}
	s.users[o.User] = append(s.users[o.User], c)
	h.presenceLocked(o.User, s.users[o.User])
	s.mu.Unlock()
	at := h.pos.snapshot()
	// The opening cursor: a client that drops before its first event resumes from here. A
	// resume's replay queues its own (past the replayed events) instead.
	c.cursorSeq = h.posSeq
	if !replaying {
		h.queueCursorLocked(c, cursorOpen)
	}
	h.pubMu.Unlock()

	h.m.connections.WithLabelValues(formatName(c.format)).Inc()
	// Shutdown may have begun between the check above and the insert: do not strand c. It is
	// returned closing, so that its caller waits for it like for any other (its writer may be
	// writing the close frame already).
	if h.down.Load() {
		c.Close(DisconnectShutdown)
	}
	return c, at, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Resume releases one hold of a paused connection (ConnOptions.Paused, and one more while a
// resume replay runs: see Attach); frames (a replay) go out before the live events queued since
// Register. Frames flow once every hold is released.
func (c *Conn) Resume(frames [][]byte) { c.release(frames, nil, false) }

// resumeReplay releases the replay's hold (see register) with the replayed frames; ids are the
// replayed events' IDs, delivered receipts once the frames are written (see Conn.push).
func (c *Conn) resumeReplay(frames [][]byte, ids []string) { c.release(frames, ids, true) }

func (c *Conn) release(frames [][]byte, ids []string, replay bool) {
	c.mu.Lock()
	if replay {
		c.replaying = false
	}
	if c.closing {
		c.mu.Unlock()
		return
	}
	for _, f := range frames {
		c.queued += len(f)
	}
	c.queue = append(frames[:len(frames):len(frames)], c.queue...)
	if len(ids) > 0 {
		c.ids = append(ids[:len(ids):len(ids)], c.ids...)
	}
	c.holds--
	start := c.holds == 0 && !c.writing && len(c.queue) > 0
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		go c.writer()
	}
}

// closed removes c from the index; Conn.Close calls it once.
func (h *Hub) closed(c *Conn, d Disconnect) {
	s := h.shard(c.user)
	s.mu.Lock()
	conns := s.users[c.user]
	for i, other := range conns {
		if other == c {
			conns[i] = conns[len(conns)-1]
			conns[len(conns)-1] = nil
			conns = conns[:len(conns)-1]
			break
		}
	}
	if len(conns) == 0 {
		delete(s.users, c.user)
	} else {
		s.users[c.user] = conns
	}
	h.presenceLocked(c.user, conns)
	s.mu.Unlock()
	h.m.connections.WithLabelValues(formatName(c.format)).Dec()
	h.m.disconnects.WithLabelValues(disconnectName(d)).Inc()
	if d == DisconnectSlow {
		h.log.Warn("connection closed: slow consumer", "user", c.user, "conn", c.id, "transport", formatName(c.format))
	}
}

// Assigned records the starting offsets of newly assigned partitions; it must be called before
// any event of those partitions is published (kafka.ConsumerConfig.Assigned).
func (h *Hub) Assigned(start map[string]map[int32]int64) {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	for topic, parts := range start {
		for p, off := range parts {
			h.pos.set(topic, p, off)
			h.hist.assigned(partitionKey{topic, p}, off)
		}
	}
	h.posSeq++
	close(h.assignedc)
	h.assignedc = make(chan struct{})
}

// UserConnections returns how many live connections user holds on this hub, all transports.
func (h *Hub) UserConnections(user string) int {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users[user])
}

// Consuming reports whether the hub has been assigned partitions: until then it cannot tell a
// resuming client what it missed (readiness waits for it).
func (h *Hub) Consuming() bool {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	return len(h.pos.list) > 0
}

// awaitPartitions blocks until the hub has a position in every partition of from (it has been
// assigned them, so a resume knows where live events start), or ctx ends: a node that just
// started has not joined its consumer group yet. A partition the hub lacks although it consumes
// other partitions of that topic does not exist here (a forged cursor): no wait. The error is a
// *ResyncError ("unavailable").
func (h *Hub) awaitPartitions(ctx context.Context, from []Position) error {
	for {
		h.pubMu.Lock()
		var missing *Position
		known := false
		for i, f := range from {
			if _, ok := h.pos.index(f.Topic, f.Partition); !ok {
				missing = &from[i]
				known = slices.ContainsFunc(h.pos.list, func(p Position) bool { return p.Topic == f.Topic })
				break
			}
		}
		wake := h.assignedc
		h.pubMu.Unlock()
		switch {
		case missing == nil:
			return nil
		case known:
			return &ResyncError{Reason: "unavailable", Detail: fmt.Sprintf(
				"this node consumes no partition %d of %s", missing.Partition, missing.Topic)}
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return &ResyncError{Reason: "unavailable", Detail: fmt.Sprintf(
				"this node is starting: it has not been assigned %s partition %d yet", missing.Topic, missing.Partition)}
		}
	}
}

// Revoked records that this node no longer consumes parts (a rebalance, or shutdown). Their
// positions stay: they still say how far clients were sent, so cursors stay exact — the final
// cursor a shutdown sends every client included. The history stops being provably complete for
// them until they are assigned again (Assigned sets their new start).
func (h *Hub) Revoked(parts map[string][]int32) {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			h.hist.revoked(partitionKey{topic, p})
		}
	}
}

// Position is the hub's progress now: the next offset to publish in each assigned partition.
func (h *Hub) Position() []Position {
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	return h.pos.snapshot()
}

// Publish fans n out to every connection of every user it names and returns the Event it
// became, with the number of connections it was queued for in Delivered. It never blocks on a
// connection: a connection whose queue overflows is closed as slow. Events of one partition must be published in offset order (the consumer does).
// An event expired already (a consumer catching up) goes to nobody and is not kept for
// replays; the hub's position moves past it all the same.
func (h *Hub) Publish(n *notification.Event) *Event { return h.PublishDecoded(n, time.Time{}) }

// PublishDecoded is Publish for a record decoded at decoded (a time.Now reading; zero: unknown),
// timing its way through the hub from there into HubConfig.Stages (package stage).
func (h *Hub) PublishDecoded(n *notification.Event, decoded time.Time) *Event {
	ev := NewEvent(n)
	var slow []*Conn
	delivered := 0

	h.pubMu.Lock()
	var entered int64 // the stage clock at hub entry; 0: not timed
	stride, next := 0, 0
	if h.cfg.Stages != nil {
		entered = stage.Now()
		if !decoded.IsZero() {
			h.cfg.Stages.Since(stage.DecodePublish, stage.Mono(decoded), entered)
		}
		stride = stage.Stride(len(n.UserIDs))
	}
	h.pos.set(n.Topic, n.Partition, n.Offset+1)
	h.posSeq++
	if !n.ExpiresAt.IsZero() && n.Expired(h.cfg.Now()) { // most events have no expiry: no clock read
		h.pubMu.Unlock()
		h.m.published.Inc()
		h.m.expired.WithLabelValues(pathLive).Inc()
		return ev
	}
	for _, user := range n.UserIDs {
		s := h.shard(user)
		s.mu.RLock()
		for _, c := range s.users[user] {
			var at int64 // time this delivery (a sample of them at fan-out: package stage)
			if entered != 0 && delivered >= next {
				at, next = entered, delivered+stride
			}
			queued, overflow, wake := c.deliver(ev, h.cfg.Batched, at)
			if queued {
				delivered++
			}
			if wake {
				h.waiting = append(h.waiting, c)
			}
			if overflow {
				slow = append(slow, c)
			}
		}
		s.mu.RUnlock()
	}
	h.hist.add(ev, time.Now())
	h.pubMu.Unlock()

	for _, c := range slow {
		c.Close(DisconnectSlow)
	}
	h.m.published.Inc()
	h.m.deliveries.Add(float64(delivered))
	ev.Delivered = delivered
	return ev
}

// Why a cursor frame was sent (realtime_cursor_frames_total{reason}).
const (
	cursorOpen  = "open"  // the connection opened (or a resume's replay ended)
	cursorCount = "count" // HubConfig.CursorEvery events since the last one
	cursorTick  = "tick"  // a keepalive tick, the hub having moved
	cursorAsked = "asked" // the client asked (RequestCursor)
	cursorFinal = "final" // shutdown
)

// SendCursor queues a control frame carrying the hub's position now to c, unless c's last
// cursor is that position already: a client whose user gets few events then holds a fresh
// cursor, so its resume after a disconnect has seconds of records to look through, not hours,
// and the events it got since its last cursor are sent twice at most one tick later. It is exact:
// taken under the publish lock, so every event published before it is queued ahead of it.
// Transports call it on each keepalive tick; Shutdown calls it before the 1001 close, so that
// clients resume on another node with nothing to replay.
func (c *Conn) SendCursor() { c.sendCursor(cursorTick) }

// RequestCursor queues a cursor frame of the hub's position now to c, even if c has it already:
// the client asked for one (docs/client-protocol.md, "Cursor"). Like every cursor frame it waits
// while a resume's replay runs, and while the client's own cursor is ahead of this node.
func (c *Conn) RequestCursor() { c.sendCursor(cursorAsked) }

// clientCursor is the type of the /v1/ws client message {"type":"cursor"}, answered by
// RequestCursor.
const clientCursor = "cursor"

func (c *Conn) sendCursor(why string) {
	h := c.hub
	h.pubMu.Lock()
	overflow := false
	if why == cursorAsked || c.cursorSeq != h.posSeq {
		_, overflow = h.queueCursorLocked(c, why)
	}
	h.pubMu.Unlock()
	if overflow {
		c.Close(DisconnectSlow)
	}
}

// cursorLocked returns the cursor of the hub's position now, "" before the hub knows its
// cluster or has partitions; encoded at most once per position. h.pubMu must be held.
func (h *Hub) cursorLocked() string {
	cc := h.codec.Load()
	if cc == nil || len(h.pos.list) == 0 {
		return ""
	}
	if h.cursor == "" || h.cursorSeq != h.posSeq {
		h.cursor, h.cursorSeq = cc.Encode(h.pos.list), h.posSeq
	}
	return h.cursor
}

// queueCursorLocked queues a cursor frame of the hub's position to c (h.pubMu held), unless a
// cursor now would be wrong for c: a resume's replay is pending (the missed events are not
// queued yet), or the client resumed with a cursor ahead of this node that it has not caught up
// with (the hub's cursor would move it back). It reports whether a frame was queued, and an
// overflow the caller must close c for.
func (h *Hub) queueCursorLocked(c *Conn, why string) (queued, overflow bool) {
	cursor := h.cursorLocked()
	if cursor == "" {
		return false, false
	}
	c.mu.Lock()
	replaying := c.replaying
	c.mu.Unlock()
	if replaying {
		return false, false
	}
	if c.skip != nil || c.skipIDs != nil { // the client resumed with a cursor ahead of this node
		for k, off := range c.skip {
			if i, ok := h.pos.index(k.topic, k.partition); ok && h.pos.list[i].Offset < off {
				return false, false // not caught up: this node's cursor would move the client back
			}
		}
		for id := range c.skipIDs {
			if i, ok := h.pos.index(id.Topic, id.Partition); ok && h.pos.list[i].Offset <= id.Offset {
				return false, false
			}
		}
		c.mu.Lock()
		c.skip, c.skipIDs = nil, nil // caught up: nothing below the client's cursor can come any more
		c.mu.Unlock()
	}
	queued, overflow, _ = c.push(Control{Event: cursorEvent, Cursor: cursor}.Frame(c.format), "", false, 0)
	if queued {
		c.cursorSeq, c.sinceCursor = h.posSeq, 0
		h.m.cursorFrames.WithLabelValues(why).Inc()
	}
	return queued, overflow
}

// Flush starts the writers of the connections that got frames since the last Flush (see
// HubConfig.Batched); without Batched there is nothing to do.
func (h *Hub) Flush() {
	h.pubMu.Lock()
	waiting := h.waiting
	h.waiting = nil
	h.pubMu.Unlock()
	for i, c := range waiting {
		go c.writer()
		waiting[i] = nil
	}
}

// Connections counts the live connections.
func (h *Hub) Connections() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, conns := range s.users {
			n += len(conns)
		}
		s.mu.RUnlock()
	}
	return n
}

// Shutdown refuses new connections, closes every connection with DisconnectShutdown after
// writing what was queued for it, and waits for them until ctx is done; then it closes the
// remaining transports under their writers and returns ctx's error.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.down.Store(true)
	h.Flush()
	var all []*Conn
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, conns := range s.users {
			all = append(all, conns...)
		}
		s.mu.RUnlock()
	}
	for _, c := range all {
		c.sendCursor(cursorFinal) // the position is final: the consumer has stopped
		c.Close(DisconnectShutdown)
	}
	for _, c := range all {
		select {
		case <-c.done:
		case <-ctx.Done():
			for _, c := range all {
				c.forceClose()
			}
			return ctx.Err()
		}
	}
	return nil
}
