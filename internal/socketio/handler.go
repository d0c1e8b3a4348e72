package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Handler serves Engine.IO v4 / Socket.IO v5 clients; make one with NewHandler and mount it at
// /socket.io/ for every method. Safe for concurrent use.
type Handler struct {
	hub      *realtime.Hub
	cfg      Config
	upgrader websocket.Upgrader
	// wsOnly upgrades WebSocket-only sessions with a read buffer of the session's own
	// (readerOwner): ReadBufferSize 0 makes gorilla read through the buffer Hijack returns.
	wsOnly websocket.Upgrader
	m      *metrics

	mu       sync.Mutex
	sessions map[string]*session
	peak     int // the most sessions since the map was last rebuilt (see removeSession)
	down     bool
	empty    chan struct{} // closed when the last session leaves after Shutdown began
	// noops: the sids of long-polling sessions their client closed with no GET pending, until
	// the GET sent with the close takes its noop or closeLinger passes (see owesNoop); noopQ
	// holds them in the order they expire.
	noops map[string]time.Time
	noopQ []string

	logMu      sync.Mutex // the debug log sample (see debug)
	logStart   time.Time
	logLines   int
	logDropped int
}

// NewHandler returns the handler of /socket.io/ delivering hub's events (see the package doc). It
// starts no goroutine; sessions start theirs and end them when they close. It panics if
// cfg.Verifier is nil, and registers its metrics on cfg.Metrics (panicking if they are already
// registered).
//
// Requests (engine.io-protocol v4, "Transports"): `?EIO=4&transport=polling|websocket[&sid=<id>]`.
// A request the protocol refuses gets HTTP 400 (403 for a refused Origin) with the JSON body
// `{"code":<n>,"message":<text>}` of the reference server: 0 "Transport unknown", 1 "Session ID
// unknown", 2 "Bad handshake method", 3 "Bad request", 4 "Forbidden", 5 "Unsupported protocol
// version" (so EIO=3 clients are refused with 5). A POST body over the limit (PreAuthMaxPayload
// before the CONNECT, MaxPayload after) gets 413 with code 3, and new sessions after Shutdown 503
// with code 3. A handshake that Config.Admission refuses gets its status (503 node full, 429 too
// many unauthenticated sessions from the address) with Retry-After and code 3, the refusal's
// sentence as message; nothing is allocated for it and nothing logged (admission counts it). A
// WebSocket with the sid of a session that already has one (probing, upgraded, or
// WebSocket-only) is accepted and closed with a Close frame 1008 (engine.io-protocol v4,
// "WebSocket": "the server MUST close the WebSocket connection"), counted as
// realtime_socketio_protocol_errors_total{reason="second_websocket"}.
func NewHandler(hub *realtime.Hub, cfg Config) *Handler {
	if cfg.Verifier == nil {
		panic("socketio: Config.Verifier is required")
	}
	cfg = cfg.withDefaults()
	h := &Handler{
		hub: hub,
		cfg: cfg,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  128,                                      // idle sessions dominate; a CONNECT or an ack takes a few reads more
			WriteBufferPool: &sync.Pool{},                             // gorilla's writer is never used; hold no buffer
			CheckOrigin:     func(*http.Request) bool { return true }, // checked in ServeHTTP
		},
		m:        newMetrics(cfg.Metrics),
		sessions: make(map[string]*session),
		noops:    make(map[string]time.Time),
	}
	h.wsOnly = h.upgrader
	h.wsOnly.ReadBufferSize = 0
	return h
}

// eioError is an Engine.IO error answer: HTTP status and the JSON body {"code","message"}.
type eioError struct {
	status  int
	code    int
	message string
}

// The Engine.IO errors (codes and messages of the reference server, engine.io's Server.errors).
var (
	errTransportUnknown    = eioError{http.StatusBadRequest, 0, "Transport unknown"}
	errSessionUnknown      = eioError{http.StatusBadRequest, 1, "Session ID unknown"}
	errBadHandshakeMethod  = eioError{http.StatusBadRequest, 2, "Bad handshake method"}
	errBadRequest          = eioError{http.StatusBadRequest, 3, "Bad request"}
	errForbidden           = eioError{http.StatusForbidden, 4, "Forbidden"}
	errUnsupportedProtocol = eioError{http.StatusBadRequest, 5, "Unsupported protocol version"}
	errTooLarge            = eioError{http.StatusRequestEntityTooLarge, 3, "Bad request"}
	errShuttingDown        = eioError{http.StatusServiceUnavailable, 3, "Server shutting down"}
)

func writeError(w http.ResponseWriter, e eioError) {
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{e.code, e.message})
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	w.Write(body)
}

// ServeHTTP routes an Engine.IO request: CORS and preflight first, then the query
// (transport, EIO), then the session named by sid or a new one.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.allowOrigin(w, r) {
		h.m.protocolErrors.WithLabelValues("origin").Inc()
		writeError(w, errForbidden)
		return
	}
	if r.Method == http.MethodOptions {
		preflight(w, r)
		return
	}
	q := r.URL.Query()
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		writeError(w, errTransportUnknown)
		return
	}
	if q.Get("EIO") != "4" {
		writeError(w, errUnsupportedProtocol)
		return
	}
	isWS := transport == "websocket"
	if isWS && !websocket.IsWebSocketUpgrade(r) {
		writeError(w, errBadRequest)
		return
	}
	if sid := q.Get("sid"); sid != "" {
		s := h.session(sid)
		switch {
		case s == nil && !isWS && r.Method == http.MethodGet && h.takeNoop(sid):
			writePayload(w, h.cfg.WriteTimeout, [][]byte{noopPacket})
		case s == nil:
			writeError(w, errSessionUnknown)
		case isWS:
			s.serveUpgrade(w, r)
		case r.Method == http.MethodGet:
			s.poll(w, r)
		case r.Method == http.MethodPost:
			s.post(w, r)
		default:
			writeError(w, errBadRequest)
		}
		return
	}
	if r.Method != http.MethodGet {
		writeError(w, errBadHandshakeMethod)
		return
	}
	if h.isDown() {
		writeError(w, errShuttingDown)
		return
	}
	ticket, ok := h.admit(w, r)
	if !ok {
		return
	}
	s := h.newSession(ticket, auth.TokenFromRequest(r))
	if isWS {
		h.serveWebSocketHandshake(w, r, s)
		return
	}
	h.servePollingHandshake(w, s)
}

// admit takes the new session's pending admission slot (nil without Config.Admission), or
// answers the refusal and reports false.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (*admission.Ticket, bool) {
	a := h.cfg.Admission
	if a == nil {
		return nil, true
	}
	t, err := a.Pending(a.ClientAddr(r))
	if err != nil {
		if ref, ok := admission.WriteHeaders(w, err); ok {
			writeError(w, eioError{ref.Status, 3, ref.Detail})
		} else {
			writeError(w, errShuttingDown)
		}
		return nil, false
	}
	return t, true
}

// openPacket is the Engine.IO open packet (engine.io-protocol v4, "Handshake"): the session id,
// the upgrades (["websocket"] on polling, none on WebSocket) and the heartbeat and payload limits
// in milliseconds and bytes.
func (h *Handler) openPacket(sid string, polling bool) []byte {
	upgrades := []string{}
	if polling {
		upgrades = []string{"websocket"}
	}
	data, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}{sid, upgrades, h.cfg.PingInterval.Milliseconds(), h.cfg.PongTimeout.Milliseconds(), h.cfg.MaxPayload})
	return appendEIOPacket(nil, eioOpen, data)
}

// newID returns a random, URL-safe 20-character id (120 bits), for session ids, socket ids and
// recovery pids.
func newID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newSession makes a session on long-polling (the WebSocket handshake sets kind); the auth
// timeout counts from now.
func (h *Handler) newSession(ticket *admission.Ticket, token string) *session {
	return &session{h: h, id: newID(), ticket: ticket, token: token, authDeadline: time.Now().Add(h.cfg.AuthTimeout)}
}

// addSession registers s and starts its timers; false once Shutdown has begun.
func (h *Handler) addSession(s *session) bool {
	h.mu.Lock()
	if h.down {
		h.mu.Unlock()
		return false
	}
	h.sessions[s.id] = s
	h.peak = max(h.peak, len(h.sessions))
	h.mu.Unlock()
	h.m.sessions.WithLabelValues(s.kind.String()).Inc()
	s.start()
	return true
}

func (h *Handler) session(sid string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[sid]
}

// shrinkFrom is the least peak of sessions after which removeSession rebuilds the table.
const shrinkFrom = 1024

// removeSession forgets a closed session that used transport kind. A Go map keeps the buckets
// of its peak size for good, so once the table holds less than a quarter of its peak (of at
// least shrinkFrom sessions) it is copied into a map of its current size: a flood's peak is
// given back, at a cost linear in what remains, amortized over the removals since the peak.
func (h *Handler) removeSession(s *session, kind transportKind) {
	h.mu.Lock()
	if h.sessions[s.id] != s {
		h.mu.Unlock()
		return
	}
	delete(h.sessions, s.id)
	if n := len(h.sessions); h.peak >= shrinkFrom && n < h.peak/4 {
		h.sessions, h.peak = maps.Clone(h.sessions), n
	}
	if h.down && len(h.sessions) == 0 && h.empty != nil {
		close(h.empty)
		h.empty = nil
	}
	h.mu.Unlock()
	h.m.sessions.WithLabelValues(kind.String()).Dec()
}

// owesNoop records that the long-polling session sid was closed by its client's close packet
// while no GET was pending. engine.io-client sends the close in a POST while its GET is pending
// (the protocol's test suite sends both at once), and answers the GET with a noop; our POST may
// be handled before that GET arrives, which then gets the noop too, within closeLinger. The
// entries expire in order; each costs a map entry for a second.
func (h *Handler) owesNoop(sid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.pruneNoopsLocked(now)
	h.noops[sid] = now.Add(closeLinger)
	h.noopQ = append(h.noopQ, sid)
}

// takeNoop reports whether a GET for the closed session sid is owed a noop, and forgets it.
func (h *Handler) takeNoop(sid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneNoopsLocked(time.Now())
	_, ok := h.noops[sid]
	delete(h.noops, sid)
	return ok
}

// pruneNoopsLocked forgets the expired noops; h.mu is held.
func (h *Handler) pruneNoopsLocked(now time.Time) {
	for len(h.noopQ) > 0 {
		sid := h.noopQ[0]
		if exp, ok := h.noops[sid]; ok && exp.After(now) {
			return
		}
		delete(h.noops, sid)
		h.noopQ[0] = ""
		h.noopQ = h.noopQ[1:]
	}
	if len(h.noopQ) == 0 {
		h.noopQ = nil // let a flood's backing array go
	}
}

func (h *Handler) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// Shutdown refuses new sessions (HTTP 503) and closes the sessions that never connected to the
// default namespace; a pending long-poll gets the Engine.IO close packet, so the client
// reconnects, to another node. Sessions attached to the hub are closed by Hub.Shutdown (call it
// too, in either order). Shutdown waits until every session is gone or ctx is done; then it
// closes the rest at once and returns ctx's error.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.down = true
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		if s.conn.Load() == nil {
			s.closeWith(websocket.CloseGoingAway)
		}
	}
	h.mu.Lock()
	if len(h.sessions) == 0 {
		h.mu.Unlock()
		return nil
	}
	if h.empty == nil {
		h.empty = make(chan struct{})
	}
	empty := h.empty
	h.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		h.mu.Lock()
		all = all[:0]
		for _, s := range h.sessions {
			all = append(all, s)
		}
		h.mu.Unlock()
		for _, s := range all {
			s.closeWith(websocket.CloseGoingAway)
		}
		return ctx.Err()
	}
}

// Debug logs are sampled: at most debugLines per debugEvery, the next line telling how many were
// left out. Per-session lines come from what clients do, so a flood of sessions (each timing out
// at once, say) must not become a flood of lines, nor of goroutines waiting for the log's writer.
const (
	debugLines = 20
	debugEvery = 10 * time.Second
)

// debug logs a per-session event at debug level, sampled; the metrics count every one.
func (h *Handler) debug(msg string, args ...any) {
	if !h.cfg.Log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	h.logMu.Lock()
	if now := time.Now(); now.Sub(h.logStart) >= debugEvery {
		if h.logDropped > 0 {
			args = append(args, "omitted_since_last", h.logDropped)
		}
		h.logStart, h.logLines, h.logDropped = now, 0, 0
	}
	if h.logLines >= debugLines {
		h.logDropped++
		h.logMu.Unlock()
		return
	}
	h.logLines++
	h.logMu.Unlock()
	h.cfg.Log.Debug("socketio: "+msg, args...)
}

// protocolError counts and logs input that breaks the protocol; the caller closes the session.
func (h *Handler) protocolError(s *session, reason string, err error) {
	h.m.protocolErrors.WithLabelValues(reason).Inc()
	h.debug("protocol error", "sid", s.id, "reason", reason, "err", err)
}

func (h *Handler) upgraded() {
	h.m.upgrades.Inc()
	h.m.sessions.WithLabelValues(kindPolling.String()).Dec()
	h.m.sessions.WithLabelValues(kindWebSocket.String()).Inc()
}

func (h *Handler) connected(recovered bool) {
	if recovered {
		h.m.connects.WithLabelValues("recovered").Inc()
	} else {
		h.m.connects.WithLabelValues("ok").Inc()
	}
}
