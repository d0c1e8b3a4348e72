package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Producer queues records for Kafka without blocking; *kafka.AsyncProducer implements it.
type Producer interface {
	// TryProduce queues rec; done gets nil once Kafka acknowledged it, or the error.
	TryProduce(rec *kgo.Record, done func(*kgo.Record, error))
}

// TrackerConfig configures a Tracker. Topic, Node and Producer are required.
type TrackerConfig struct {
	// Topic is the presence topic (REALTIME_PRESENCE_TOPIC).
	Topic string
	// Node is this node's ID (KAFKA_NODE_ID).
	Node string
	// Heartbeat is the interval of the node's heartbeat records (REALTIME_PRESENCE_HEARTBEAT);
	// zero means 10 s.
	Heartbeat time.Duration
	// Producer sends the records.
	Producer Producer
	// Log receives produce failures; nil discards them.
	Log *slog.Logger
	// Metrics registers presence_records_produced_total and presence_produce_errors_total; nil
	// registers nothing.
	Metrics prometheus.Registerer
	// Now is the clock of the records' since; nil is time.Now.
	Now func() time.Time
}

// Tracker is this node's side of presence: it keeps which users hold connections here
// (realtime.PresenceSink, told by the hub) and produces each user's current state when it
// changes, coalescing bursts: at most one record per user is in flight per flush, always the
// latest state, and a failed one is produced again at the next heartbeat. Make it with
// NewTracker, run Run, and call Stop at shutdown, after the hub closed its connections.
type Tracker struct {
	cfg  TrackerConfig
	boot string
	log  *slog.Logger

	// flushing serialises flushes (Run's and Stop's), so that a user's records go to the
	// producer in the order of the states they carry.
	flushing sync.Mutex

	mu    sync.Mutex
	users map[string]*local
	dirty map[string]struct{}
	wake  chan struct{}
	view  *View // set by NewView; its sweep runs at each heartbeat

	produced *prometheus.CounterVec
	errors   prometheus.Counter
}

type local struct {
	n     realtime.TransportCounts
	since time.Time
}

// NewTracker returns a Tracker; it starts nothing (see Run).
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	rand.Read(b[:])
	t := &Tracker{
		cfg: cfg, boot: hex.EncodeToString(b[:]), log: log,
		users: map[string]*local{}, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_records_produced_total",
			Help: "Presence records this node produced, by kind: online (a user's connections changed), offline (a tombstone: the user's last connection here closed), heartbeat, swept (a tombstone of a record of a node gone for ten REALTIME_PRESENCE_TIMEOUTs).",
		}, []string{"kind"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presence_produce_errors_total",
			Help: "Presence records Kafka did not take (each user's latest state is produced again at the next heartbeat).",
		}),
	}
	for _, k := range []string{kindOnline, kindOffline, kindHeartbeat, kindSwept} {
		t.produced.WithLabelValues(k)
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(t.produced, t.errors)
	}
	return t
}

// Kinds of presence records, the kind label of presence_records_produced_total.
const (
	kindOnline    = "online"
	kindOffline   = "offline"
	kindHeartbeat = "heartbeat"
	kindSwept     = "swept" // a tombstone of a gone node's record (Tracker.sweep)
)

// Boot identifies this run of the node in its records.
func (t *Tracker) Boot() string { return t.boot }

// Connections records user's connection counts on this node (realtime.PresenceSink); it never
// blocks.
func (t *Tracker) Connections(user string, n realtime.TransportCounts) {
	t.mu.Lock()
	switch u := t.users[user]; {
	case n.Total() == 0:
		delete(t.users, user)
	case u == nil:
		t.users[user] = &local{n: n, since: t.cfg.Now()}
	default:
		u.n = n
	}
	t.dirty[user] = struct{}{}
	t.mu.Unlock()
	t.poke()
}

// has reports whether user holds connections on this node.
func (t *Tracker) has(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.users[user] != nil
}

// sweep tombstones the records of nodes gone long ago, when this node's view says it is the one
// to do so (View.sweep), so that the topic and every view forget them.
func (t *Tracker) sweep() {
	if t.view == nil {
		return
	}
	for _, key := range t.view.sweep(t.cfg.Node) {
		t.cfg.Producer.TryProduce(&kgo.Record{Topic: t.cfg.Topic, Key: []byte(key)}, func(rec *kgo.Record, err error) {
			if err != nil {
				t.errors.Inc()
				return // swept again at the next heartbeat
			}
			t.produced.WithLabelValues(kindSwept).Inc()
		})
	}
}

// reassert produces user's current state on this node again: the view read a record of this
// node ID from an earlier run (View's stale hook).
func (t *Tracker) reassert(user string) {
	t.mu.Lock()
	t.dirty[user] = struct{}{}
	t.mu.Unlock()
	t.poke()
}

func (t *Tracker) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run sends a heartbeat at once and every TrackerConfig.Heartbeat, and the users whose state
// changed as soon as they do, until ctx is done.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Heartbeat)
	defer tick.Stop()
	t.heartbeat(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
			t.flush()
		case <-tick.C:
			t.heartbeat(false)
			t.flush()
			t.sweep()
		}
	}
}

// Stop says goodbye: a tombstone for every user still listed (the hub has closed its
// connections, so normally none) and for the node's heartbeat key, so that every view drops the
// node at once instead of after REALTIME_PRESENCE_TIMEOUT. The caller flushes the Producer.
func (t *Tracker) Stop() {
	t.mu.Lock()
	for u := range t.users {
		t.dirty[u] = struct{}{}
	}
	clear(t.users)
	t.mu.Unlock()
	t.flush()
	t.heartbeat(true)
}

// flush produces the latest state of every user that changed since the last flush.
func (t *Tracker) flush() {
	t.flushing.Lock()
	defer t.flushing.Unlock()
	t.mu.Lock()
	if len(t.dirty) == 0 {
		t.mu.Unlock()
		return
	}
	recs := make([]*kgo.Record, 0, len(t.dirty))
	for user := range t.dirty {
		rec := &kgo.Record{Topic: t.cfg.Topic, Key: []byte(userKey(user, t.cfg.Node))}
		if u := t.users[user]; u != nil {
			rec.Value = marshal(userRecord{UserID: user, NodeID: t.cfg.Node, Online: true, Connections: u.n.Total(),
				Transports: fromCounts(u.n), Since: u.since.UTC().Truncate(time.Millisecond), Boot: t.boot})
		}
		recs = append(recs, rec)
	}
	clear(t.dirty)
	t.mu.Unlock()
	for _, rec := range recs {
		kind := kindOnline
		if rec.Value == nil {
			kind = kindOffline
		}
		t.cfg.Producer.TryProduce(rec, func(rec *kgo.Record, err error) {
			if err == nil {
				t.produced.WithLabelValues(kind).Inc()
				return
			}
			t.errors.Inc()
			t.log.Warn("a presence record was not produced; retrying at the next heartbeat", "topic", rec.Topic, "err", err)
			user, _, _ := splitKey(string(rec.Key))
			t.mu.Lock()
			t.dirty[user] = struct{}{}
			t.mu.Unlock()
		})
	}
}

// heartbeat produces the node's heartbeat, or its tombstone with stop.
func (t *Tracker) heartbeat(stop bool) {
	rec := &kgo.Record{Topic: t.cfg.Topic, Key: []byte(heartbeatKey(t.cfg.Node))}
	if !stop {
		t.mu.Lock()
		n := len(t.users)
		t.mu.Unlock()
		rec.Value = marshal(heartbeatRecord{NodeID: t.cfg.Node, Boot: t.boot, HeartbeatAt: t.cfg.Now().UTC().Truncate(time.Millisecond), Users: n})
	}
	t.cfg.Producer.TryProduce(rec, func(rec *kgo.Record, err error) {
		if err != nil {
			t.errors.Inc()
			t.log.Warn("a presence heartbeat was not produced", "topic", rec.Topic, "err", err)
			return
		}
		t.produced.WithLabelValues(kindHeartbeat).Inc()
	})
}
