package presence

import (
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ViewConfig configures a View. Every zero value has the meaning given with its field.
type ViewConfig struct {
	// Timeout is how old a node's last heartbeat may be before the node counts as gone and its
	// users' records no longer count (REALTIME_PRESENCE_TIMEOUT); zero means 30 s.
	Timeout time.Duration
	// Tracker is this node's tracker: records of this node ID from an earlier run (another
	// boot), and tombstones of users it holds connections of, make it produce the user's
	// current state again, so that the topic says what this node knows; at each heartbeat it
	// sweeps the records of nodes gone long ago (see sweep). Nil ignores all three.
	Tracker *Tracker
	// Log receives malformed records; nil discards them.
	Log *slog.Logger
	// Metrics registers presence_users_online, presence_nodes_live and
	// presence_view_lag_seconds; nil registers nothing.
	Metrics prometheus.Registerer
	// Now is the clock of heartbeat ages; nil is time.Now.
	Now func() time.Time
}

// View is the cluster-wide presence as read from the presence topic: every node's presence
// records and heartbeats. A user is online when at least one node that is alive (its last
// heartbeat, of the run that wrote the record, is younger than ViewConfig.Timeout) holds a
// connection of the user. Apply feeds it records (kafka.Follow); the lookups answer from memory
// and are safe for concurrent use.
type View struct {
	cfg ViewConfig
	log *slog.Logger

	mu    sync.RWMutex
	nodes map[string]nodeState
	users map[string][]entry

	lag prometheus.Gauge
}

// nodeState is a node's last heartbeat: its run and when it was sent (the record's timestamp,
// never later than when this view read it, so that a clock ahead cannot keep a node alive).
type nodeState struct {
	boot string
	seen time.Time
}

// entry is one node's presence record of a user.
type entry struct {
	node  string
	boot  string
	n     transports
	since time.Time
	at    time.Time // the record's timestamp
}

// NewView returns an empty View.
func NewView(cfg ViewConfig) *View {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &View{cfg: cfg, log: log, nodes: map[string]nodeState{}, users: map[string][]entry{},
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presence_view_lag_seconds",
			Help: "Age of the last presence record when this node's view read it, in seconds (its timestamp to now): how far the cluster-wide view is behind.",
		})}
	if cfg.Tracker != nil {
		cfg.Tracker.view = v
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(v.lag,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "presence_users_online",
				Help: "Users online cluster-wide, as this node's presence view sees them (a connection on a live node).",
			}, func() float64 { return float64(v.Online()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "presence_nodes_live",
				Help: "Nodes whose last heartbeat is younger than REALTIME_PRESENCE_TIMEOUT, this one included.",
			}, func() float64 { return float64(v.LiveNodes()) }))
	}
	return v
}

// Apply reads one record of the presence topic into the view (records of a partition in offset
// order). A record whose key or value is malformed is skipped and logged.
func (v *View) Apply(rec *kgo.Record) {
	now := v.cfg.Now()
	v.lag.Set(max(now.Sub(rec.Timestamp), 0).Seconds())
	user, node, ok := splitKey(string(rec.Key))
	if !ok {
		v.log.Warn("presence record with a malformed key skipped", "key", string(rec.Key), "partition", rec.Partition, "offset", rec.Offset)
		return
	}
	if user == "" {
		v.applyHeartbeat(rec, node, now)
		return
	}
	var r userRecord
	if rec.Value != nil {
		if err := json.Unmarshal(rec.Value, &r); err != nil || r.Boot == "" {
			v.log.Warn("presence record with a malformed value skipped", "key", string(rec.Key), "partition", rec.Partition, "offset", rec.Offset, "err", err)
			return
		}
	}
	stale := false
	v.mu.Lock()
	es := v.users[user]
	i := 0
	for i < len(es) && es[i].node != node {
		i++
	}
	switch {
	case rec.Value == nil && i < len(es): // offline on node
		es[i] = es[len(es)-1]
		es = es[:len(es)-1]
	case rec.Value == nil: // nothing to remove
	case i < len(es):
		es[i] = entry{node: node, boot: r.Boot, n: r.Transports, since: r.Since, at: rec.Timestamp}
	default:
		es = append(es, entry{node: node, boot: r.Boot, n: r.Transports, since: r.Since, at: rec.Timestamp})
	}
	if len(es) == 0 {
		delete(v.users, user)
	} else {
		v.users[user] = es
	}
	if t := v.cfg.Tracker; t != nil && node == t.cfg.Node {
		// A record of this node ID that is not this run's (an earlier run's), or a tombstone
		// this node did not write (a sweep, below, while this node was cut off): this node
		// states the user's current state again.
		stale = rec.Value != nil && r.Boot != t.boot || rec.Value == nil && t.has(user)
	}
	v.mu.Unlock()
	if stale {
		v.cfg.Tracker.reassert(user)
	}
}

func (v *View) applyHeartbeat(rec *kgo.Record, node string, now time.Time) {
	if rec.Value == nil { // the node stopped
		v.mu.Lock()
		delete(v.nodes, node)
		v.mu.Unlock()
		return
	}
	var hb heartbeatRecord
	if err := json.Unmarshal(rec.Value, &hb); err != nil || hb.Boot == "" {
		v.log.Warn("presence heartbeat with a malformed value skipped", "key", string(rec.Key), "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return
	}
	seen := rec.Timestamp
	if seen.After(now) {
		seen = now
	}
	v.mu.Lock()
	v.nodes[node] = nodeState{boot: hb.Boot, seen: seen}
	v.mu.Unlock()
}

// sweepAfter is how long after its last heartbeat a node's records are swept from the topic:
// ten presence timeouts (5 minutes by default), long after every view stopped counting them.
func (v *View) sweepAfter() time.Duration { return 10 * v.cfg.Timeout }

// sweep returns the keys of the records to tombstone, from nodes gone for sweepAfter: their
// users' records and their heartbeat, and the user records of nodes the view has no heartbeat
// of, as old. Only the live node with the smallest ID sweeps (self is that node's ID), so that
// each record is tombstoned once in normal operation; nil otherwise.
func (v *View) sweep(self string) []string {
	now := v.cfg.Now()
	v.mu.RLock()
	defer v.mu.RUnlock()
	if ns, ok := v.nodes[self]; !ok || now.Sub(ns.seen) >= v.cfg.Timeout {
		return nil // this node is not alive in its own view (yet)
	}
	for id, ns := range v.nodes {
		if id < self && now.Sub(ns.seen) < v.cfg.Timeout {
			return nil // another live node sweeps
		}
	}
	var keys []string
	gone := func(node string) bool {
		ns, ok := v.nodes[node]
		return !ok || now.Sub(ns.seen) > v.sweepAfter()
	}
	for id := range v.nodes {
		if gone(id) {
			keys = append(keys, heartbeatKey(id))
		}
	}
	for user, es := range v.users {
		for i := range es {
			if e := &es[i]; e.node != self && now.Sub(e.at) > v.sweepAfter() && (gone(e.node) || v.nodes[e.node].boot != e.boot) {
				keys = append(keys, userKey(user, e.node))
			}
		}
	}
	return keys
}

// alive reports whether e's node is alive in the run that wrote e; the caller holds v.mu.
func (v *View) alive(e *entry, now time.Time) bool {
	ns, ok := v.nodes[e.node]
	return ok && ns.boot == e.boot && now.Sub(ns.seen) < v.cfg.Timeout
}

// Presence is one user's presence across the cluster.
type Presence struct {
	UserID string
	// Online: at least one live node holds a connection of the user.
	Online bool
	// Connections counts them, all nodes and transports; Transports per transport.
	Connections int
	Transports  transports
	// Nodes are the live nodes that hold them.
	Nodes []string
	// Since is the earliest of those nodes' since: when the user's oldest live run of
	// connections on a node began; zero when offline.
	Since time.Time
}

// Lookup returns user's presence now.
func (v *View) Lookup(user string) Presence {
	now := v.cfg.Now()
	p := Presence{UserID: user}
	v.mu.RLock()
	defer v.mu.RUnlock()
	for i := range v.users[user] {
		e := &v.users[user][i]
		if !v.alive(e, now) {
			continue
		}
		p.Online = true
		p.Transports.WebSocket += e.n.WebSocket
		p.Transports.SSE += e.n.SSE
		p.Transports.SocketIO += e.n.SocketIO
		p.Nodes = append(p.Nodes, e.node)
		if p.Since.IsZero() || e.since.Before(p.Since) {
			p.Since = e.since
		}
	}
	p.Connections = p.Transports.WebSocket + p.Transports.SSE + p.Transports.SocketIO
	return p
}

// Online counts the users online cluster-wide.
func (v *View) Online() int {
	now := v.cfg.Now()
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for _, es := range v.users {
		for i := range es {
			if v.alive(&es[i], now) {
				n++
				break
			}
		}
	}
	return n
}

// LiveNodes counts the nodes whose last heartbeat is younger than the timeout.
func (v *View) LiveNodes() int {
	now := v.cfg.Now()
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for _, ns := range v.nodes {
		if now.Sub(ns.seen) < v.cfg.Timeout {
			n++
		}
	}
	return n
}
