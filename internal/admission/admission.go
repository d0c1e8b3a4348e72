// Package admission bounds what clients may hold on one node, before and after they
// authenticate, so that unauthenticated input costs little and is bounded.
//
// Three caps, each counted when it refuses:
//   - MaxConnections: client connections of every transport (WebSocket /v1/ws, SSE /v1/events,
//     Socket.IO sessions on either transport), authenticated or not. Past it a new client gets
//     HTTP 503 with Retry-After (RFC 9110 §15.6.4, §10.2.3): the node is full, another may not be.
//   - MaxPending: sessions that exist before their client authenticated (a Socket.IO session
//     between its Engine.IO handshake and its CONNECT). Past it: 503 with Retry-After.
//   - MaxPendingPerAddress: such sessions from one client address (an IPv4 address, or an IPv6
//     /64, the smallest block one subscriber is commonly given, RFC 6177). Past it: 429 with
//     Retry-After (RFC 6585 §4). Authenticated connections are not limited per address, so
//     users behind one NAT (a school, an office) are only limited while they handshake.
//
// /v1/ws and /v1/events authenticate on the upgrade request itself, so they take a slot with
// Connect; Socket.IO takes one with Pending and calls Ticket.Authenticated after its CONNECT.
package admission

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusals, returned by Connect and Pending. Each is an *Refusal carrying the HTTP status and the
// Retry-After the caller should answer with.
var (
	// ErrNodeFull: MaxConnections client connections are open on this node (HTTP 503).
	ErrNodeFull = &Refusal{Reason: "node-connections", Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
		Detail: "this node holds as many client connections as it is configured for; try again or another node"}
	// ErrTooManyPending: MaxPending unauthenticated sessions are open on this node (HTTP 503).
	ErrTooManyPending = &Refusal{Reason: "node-pending", Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second,
		Detail: "this node holds as many not-yet-authenticated sessions as it is configured for; try again"}
	// ErrAddressBusy: MaxPendingPerAddress unauthenticated sessions come from this client
	// address (HTTP 429).
	ErrAddressBusy = &Refusal{Reason: "address-pending", Status: http.StatusTooManyRequests, RetryAfter: time.Second,
		Detail: "too many not-yet-authenticated sessions from this address; authenticate the open ones first"}
)

// Refusal is why a client was not admitted; Status and RetryAfter are what to answer.
type Refusal struct {
	Reason     string        // metric label and machine-readable code: node-connections, node-pending, address-pending
	Status     int           // 503 or 429
	RetryAfter time.Duration // whole seconds, for the Retry-After header
	Detail     string        // one human sentence
}

func (r *Refusal) Error() string { return "admission: " + r.Detail }

// RetryAfterSeconds is RetryAfter as the decimal value of a Retry-After header.
func (r *Refusal) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int(r.RetryAfter/time.Second)))
}

// Config configures a Controller. A zero cap means no limit.
type Config struct {
	MaxConnections       int // REALTIME_MAX_CONNECTIONS
	MaxPending           int // REALTIME_MAX_PENDING
	MaxPendingPerAddress int // REALTIME_MAX_PENDING_PER_ADDRESS
	// TrustedProxies are the peers whose X-Forwarded-For is believed (HTTP_TRUSTED_PROXIES): the
	// client address is then the right-most address of that header that is not itself a trusted
	// proxy. Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// Log receives at most one line per LogEvery summing up the refusals since the last one;
	// nil discards it.
	Log *slog.Logger
	// Metrics registers realtime_admission_* series; nil registers nothing.
	Metrics prometheus.Registerer
}

// logEvery is the least time between two refusal summaries: a flood costs one log line per
// interval, not one per attempt.
const logEvery = 10 * time.Second

// Controller admits or refuses client connections. Safe for concurrent use; the zero value is
// not usable: use New.
type Controller struct {
	cfg Config

	conns   atomic.Int64 // admitted connections, pending or not
	mu      sync.Mutex
	pending int
	perAddr map[netip.Addr]int32 // pending sessions per address key; entries at zero are deleted

	refusedMu  sync.Mutex
	refused    map[string]int // since the last summary
	lastLogged time.Time

	mConns   prometheus.GaugeFunc
	mPending prometheus.GaugeFunc
	mRefused *prometheus.CounterVec
}

// New returns a Controller with cfg's caps.
func New(cfg Config) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, perAddr: map[netip.Addr]int32{}, refused: map[string]int{}}
	c.mRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "realtime_admission_refused_total",
		Help: "Client connections refused by a node-wide or per-address cap, by reason (node-connections, node-pending, address-pending).",
	}, []string{"reason"})
	c.mConns = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "realtime_admission_connections",
		Help: "Client connections holding an admission slot (every transport, authenticated or not).",
	}, func() float64 { return float64(c.conns.Load()) })
	c.mPending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "realtime_admission_pending",
		Help: "Sessions whose client has not authenticated yet (Socket.IO before its CONNECT).",
	}, func() float64 { return float64(c.PendingSessions()) })
	for _, r := range []*Refusal{ErrNodeFull, ErrTooManyPending, ErrAddressBusy} {
		c.mRefused.WithLabelValues(r.Reason) // every series exists from the start
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(c.mRefused, c.mConns, c.mPending)
	}
	return c
}

// Ticket is one admitted connection's hold on the caps; its owner calls Release exactly when
// the connection ends (more calls are no-ops). The zero value is not usable.
type Ticket struct {
	c       *Controller
	key     netip.Addr
	pending atomic.Bool
	done    atomic.Bool
}

// Connect admits an authenticated connection (/v1/ws, /v1/events), or refuses it with
// ErrNodeFull.
func (c *Controller) Connect() (*Ticket, error) {
	if !c.takeConn() {
		return nil, c.refuse(ErrNodeFull)
	}
	return &Ticket{c: c}, nil
}

// Pending admits a session whose client has yet to authenticate, from client address addr (see
// ClientAddr), or refuses it with ErrNodeFull, ErrTooManyPending or ErrAddressBusy.
func (c *Controller) Pending(addr netip.Addr) (*Ticket, error) {
	key := addressKey(addr)
	c.mu.Lock()
	switch {
	case c.cfg.MaxPending > 0 && c.pending >= c.cfg.MaxPending:
		c.mu.Unlock()
		return nil, c.refuse(ErrTooManyPending)
	case c.cfg.MaxPendingPerAddress > 0 && int(c.perAddr[key]) >= c.cfg.MaxPendingPerAddress:
		c.mu.Unlock()
		return nil, c.refuse(ErrAddressBusy)
	case !c.takeConn():
		c.mu.Unlock()
		return nil, c.refuse(ErrNodeFull)
	}
	c.pending++
	c.perAddr[key]++
	c.mu.Unlock()
	t := &Ticket{c: c, key: key}
	t.pending.Store(true)
	return t, nil
}

// Authenticated ends the ticket's pending state (its client authenticated): it no longer counts
// against MaxPending and MaxPendingPerAddress, only against MaxConnections.
func (t *Ticket) Authenticated() {
	if t.pending.CompareAndSwap(true, false) {
		t.c.leavePending(t.key)
	}
}

// Release gives the ticket's slots back.
func (t *Ticket) Release() {
	if !t.done.CompareAndSwap(false, true) {
		return
	}
	t.Authenticated()
	t.c.conns.Add(-1)
}

// PendingSessions is the number of sessions admitted with Pending and not yet authenticated or
// released.
func (c *Controller) PendingSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// Connections is the number of admitted connections not yet released.
func (c *Controller) Connections() int { return int(c.conns.Load()) }

func (c *Controller) takeConn() bool {
	if n := c.conns.Add(1); c.cfg.MaxConnections > 0 && n > int64(c.cfg.MaxConnections) {
		c.conns.Add(-1)
		return false
	}
	return true
}

func (c *Controller) leavePending(key netip.Addr) {
	c.mu.Lock()
	c.pending--
	if n := c.perAddr[key] - 1; n > 0 {
		c.perAddr[key] = n
	} else {
		delete(c.perAddr, key)
	}
	if len(c.perAddr) == 0 && c.pending == 0 {
		// Go maps keep their peak bucket array: start afresh once idle, so a flood's peak is
		// not held for good.
		c.perAddr = map[netip.Addr]int32{}
	}
	c.mu.Unlock()
}

// refuse counts r and logs a summary at most once per logEvery.
func (c *Controller) refuse(r *Refusal) *Refusal {
	c.mRefused.WithLabelValues(r.Reason).Inc()
	c.refusedMu.Lock()
	c.refused[r.Reason]++
	now := time.Now()
	var summary map[string]int
	if now.Sub(c.lastLogged) >= logEvery {
		summary, c.refused, c.lastLogged = c.refused, map[string]int{}, now
	}
	c.refusedMu.Unlock()
	if summary != nil {
		args := make([]any, 0, 2*len(summary)+2)
		for reason, n := range summary {
			args = append(args, reason, n)
		}
		c.cfg.Log.Warn("admission: client connections refused at a cap (this line sums up at most "+logEvery.String()+"; realtime_admission_refused_total counts each)", args...)
	}
	return r
}

// addressKey is the unit MaxPendingPerAddress counts: an IPv4 address, or the /64 of an IPv6 one.
func addressKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// ClientAddr is the address r comes from: the TCP peer, or, when the peer is a trusted proxy,
// the right-most X-Forwarded-For entry that is not a trusted proxy. An unparsable address
// yields the zero Addr (all such requests share one key).
func (c *Controller) ClientAddr(r *http.Request) netip.Addr {
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	addr := peer.Addr().Unmap()
	if !c.trusted(addr) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr // a hop we cannot read: the last trusted peer answers for it
			}
			if a = a.Unmap(); !c.trusted(a) {
				return a
			}
			addr = a
		}
	}
	return addr
}

func (c *Controller) trusted(a netip.Addr) bool {
	for _, p := range c.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// WriteHeaders sets Retry-After for a refusal; the caller writes its transport's body and status.
func WriteHeaders(w http.ResponseWriter, err error) (*Refusal, bool) {
	var r *Refusal
	if !errors.As(err, &r) {
		return nil, false
	}
	w.Header().Set("Retry-After", r.RetryAfterSeconds())
	return r, true
}
