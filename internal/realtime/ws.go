package realtime

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/auth"
)

// EndpointConfig configures the client endpoints. Every zero value has a meaning, given with the
// field.
type EndpointConfig struct {
	// Admission caps the client connections of the node (admission.Controller.Connect once the
	// request is authenticated, Release when the connection ends); nil admits every connection.
	Admission *admission.Controller
	// Verifier checks the tokens /v1/ws clients send to refresh their connection in place (the
	// refresh frame; see Conn.Refresh); nil refuses every refresh with a refresh-error frame.
	// SSE has no client frames: its clients reconnect with their cursor and a new token.
	Verifier *auth.Verifier
	// PingInterval is how often the server pings (WebSocket) or sends a heartbeat comment
	// (SSE); zero means 25 s.
	PingInterval time.Duration
	// PongTimeout is how long after a ping the WebSocket may stay silent before it is closed;
	// zero means 20 s.
	PongTimeout time.Duration
	// WriteTimeout bounds one write; zero means 10 s.
	WriteTimeout time.Duration
	// Log receives per-connection problems; nil discards them.
	Log *slog.Logger
}

func (c EndpointConfig) withDefaults() EndpointConfig {
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 20 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// maxClientMessage bounds what a client may send on /v1/ws, in bytes: room for a refresh frame
// with any token the verifier accepts (auth.MaxTokenLen) and its JSON around it. A larger message
// closes the connection with 1009 (RFC 6455 §7.4.1).
const maxClientMessage = auth.MaxTokenLen + 1<<10

// pingFrame is a WebSocket ping with no payload.
var pingFrame = wsFrame(opPing, nil)

// NewWebSocketHandler serves GET /v1/ws. The request must already be authenticated (auth.WithClaims
// on its context) and its origin checked: the HTTP layer does both and answers 401/403 before any
// upgrade. A client resumes with ?cursor=<cursor>. Frames are the JSON of docs/design.md,
// "Client frames", one per text message; the server sends pings and closes with the codes of
// disconnect.go. The client may send a refresh frame with a new token (see onMessage).
//
// The handler returns once the connection is registered: an idle connection costs one goroutine
// with a small stack (its reader, which reads frames straight from the socket: wsread.go) and
// one timer (pings, and the token's expiry); gorilla/websocket only answers the handshake.
// Writes bypass it too: events are framed once for every connection and written as is, several
// per syscall.
func NewWebSocketHandler(h *Hub, cfg EndpointConfig) http.Handler {
	cfg = cfg.withDefaults()
	up := websocket.Upgrader{
		ReadBufferSize:  128,          // gorilla's reader is never used (wsread.go reads the socket): the smallest buffer
		WriteBufferPool: &sync.Pool{}, // gorilla's writer is never used; do not hold a buffer
		Subprotocols:    []string{auth.Subprotocol},
		CheckOrigin:     func(*http.Request) bool { return true }, // checked by the HTTP layer
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := auth.FromContext(r.Context())
		if !ok {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		ticket, err := admit(cfg.Admission)
		if err != nil {
			writeNodeFull(w, err)
			return
		}
		// Register before the upgrade answers, held until the socket is ready: every event
		// published once the client sees the connection open reaches it. From here on the
		// transport owns the ticket and releases it when the socket is closed.
		t := &wsTransport{writeTimeout: cfg.WriteTimeout, ticket: ticket, verifier: cfg.Verifier}
		c, err := h.Attach(r.Context(), ConnOptions{User: claims.UserID, Transport: t, Expires: claims.Expires, Paused: true}, r.URL.Query().Get("cursor"))
		if err != nil {
			release(ticket)
		}
		if errors.Is(err, ErrTooManyConnections) {
			writeTooManyConnections(w, h.cfg.MaxConnsPerUser)
			return
		}
		if err != nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			c.Close(DisconnectClientGone) // gorilla answered the bad handshake
			return
		}
		// From here on the socket is read without gorilla (wsread.go), which keeps no
		// buffer: its Conn is garbage once the handshake is answered.
		if !t.open(ws.NetConn(), c) {
			return // closed meanwhile (shutdown): the client got the close frame
		}
		t.startKeepalive(c, cfg.PingInterval, cfg.PongTimeout)
		go t.readLoop(c, cfg.PingInterval+cfg.PongTimeout)
		c.Resume(nil)
	})
}

// wsTransport writes pre-framed messages straight to the socket; gorilla writes nothing after
// the handshake.
type wsTransport struct {
	writeTimeout time.Duration
	ping         atomic.Pointer[time.Timer]
	ticket       *admission.Ticket // released once the socket is closed; nil without admission
	verifier     *auth.Verifier    // checks refresh frames; nil refuses them

	mu sync.Mutex // guards nc, reading and closed across the upgrade
	nc net.Conn
	// reading: the reader goroutine runs and owns closing nc (and releasing the ticket), so
	// that it can drain the client's input first (see LingerClose).
	reading bool
	closed  bool
}

// errNotOpen: a write before the upgrade completed (only a close frame can be, at shutdown).
var errNotOpen = errors.New("websocket not open yet")

// open hands the upgraded socket to the transport; the caller must then start readLoop. If the
// connection was closed while the upgrade ran, it sends the close frame itself, closes the
// socket and reports false.
func (t *wsTransport) open(nc net.Conn, c *Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nc = nc
	if t.closed {
		t.nc.SetWriteDeadline(time.Now().Add(time.Second))
		t.nc.Write(t.CloseFrame(c.Reason()))
		t.nc.Close() // the client sent nothing yet but the handshake: no input to drain
		return false
	}
	t.reading = true
	return true
}

func (t *wsTransport) Format() Format { return FormatWebSocket }

func (t *wsTransport) WriteFrames(frames [][]byte) error {
	t.mu.Lock()
	nc := t.nc
	t.mu.Unlock()
	if nc == nil {
		return errNotOpen
	}
	if err := nc.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
		return err
	}
	if len(frames) == 1 { // the common batch: a plain write, without net.Buffers' allocation
		_, err := nc.Write(frames[0])
		return err
	}
	bufs := net.Buffers(frames)
	_, err := bufs.WriteTo(nc) // writev: one syscall for the batch
	return err
}

func (t *wsTransport) CloseFrame(d Disconnect) []byte {
	if d == DisconnectClientGone {
		return wsCloseFrame(1000, "") // the echo RFC 6455 §5.5.1 asks for
	}
	return wsCloseFrame(d.Code, d.Reason)
}

// Close runs once the close frame is written (or the writer gave up). Once the reader runs it
// only ends the writing side: a blocked write returns, the client reads end of stream after the
// close frame and has CloseLinger to answer; the reader then closes the socket. Before (the
// upgrade failed or is running) it only releases the ticket.
func (t *wsTransport) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	if p := t.ping.Load(); p != nil {
		p.Stop()
	}
	if !t.reading {
		release(t.ticket) // the upgrade failed, or is running: open closes the socket
		return
	}
	t.nc.SetWriteDeadline(time.Now())
	t.nc.SetReadDeadline(time.Now().Add(CloseLinger))
	halfClose(t.nc)
}

// extendRead moves the read deadline to d from now, unless the transport is closed (Close set
// the last one).
func (t *wsTransport) extendRead(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.nc.SetReadDeadline(time.Now().Add(d))
	}
}

// startKeepalive pings every interval; the reader's deadline closes a connection that stays
// silent for interval+timeout.
func (t *wsTransport) startKeepalive(c *Conn, interval, timeout time.Duration) {
	timer := time.AfterFunc(time.Hour, func() {
		if c.ExpireIfDue(time.Now()) {
			return
		}
		c.SendCursor()
		if p := t.ping.Load(); p != nil && c.Send(pingFrame) {
			p.Reset(interval)
		}
	})
	t.ping.Store(timer)
	timer.Reset(interval)
}

// readLoop reads until the client goes (readWSMessage): it answers pings, extends the deadline
// on any frame, and hands each text message to onMessage (binary messages are discarded); a
// message over maxClientMessage closes the connection with 1009, a frame RFC 6455 does not allow
// with 1002. The socket has a read deadline at all times: silence (ping interval + pong timeout)
// after the last frame, CloseLinger once closing. After a text message it goes on in a fresh
// goroutine: handling one (JSON, a token's signature) grows the stack, which an idle connection
// would otherwise keep. When the connection is done it drains the client's input until its
// close frame (the close frame survives: see LingerClose), closes the socket and releases the
// admission ticket.
func (t *wsTransport) readLoop(c *Conn, silence time.Duration) {
	extend := func() { t.extendRead(silence) }
	pong := func(p []byte) { c.Send(wsFrame(opPong, p)) }
	gone := DisconnectClientGone
	extend()
	msg, err := readWSMessage(t.nc, pong, extend)
	switch {
	case err == nil:
		if t.onMessage(c, msg.text) {
			go t.readLoop(c, silence)
			return
		}
	case errors.Is(err, errTooBig):
		gone = DisconnectTooBig
	case errors.Is(err, errProtocol):
		gone = DisconnectProtocol
	default:
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			gone = DisconnectPingTimeout // the deadline passed: silent for interval+timeout
		}
	}
	c.Close(gone) // nothing if the server closed first (a refresh for another user included)
	<-c.Done()    // the close frame is written, or the writer gave up: Close has run
	switch {
	case errors.Is(err, io.EOF): // the client's close frame, or end of stream: nothing follows
	case errors.Is(err, errTooBig), errors.Is(err, errProtocol):
		readToEnd(t.nc) // the frames cannot be told apart any more: bytes, until CloseLinger
	default:
		drainWS(t.nc) // until the client's close frame, end of stream, or CloseLinger
	}
	t.nc.Close()
	release(t.ticket)
}

// clientFrame is a /v1/ws client message: a JSON object whose "type" says what it is, with the
// members that type needs.
type clientFrame struct {
	Type  string          `json:"type"`
	Token json.RawMessage `json:"token"` // refresh: the new token, a string
	ID    json.RawMessage `json:"id"`    // read: the event's ID, a string
}

// onMessage acts on a client's text message (docs/client-protocol.md, "Refresh in place"):
// {"type":"refresh","token":"<jwt>"} refreshes the connection's token in place (Conn.Refresh),
// answered in order with the events by a "refreshed" or "refresh-error" control frame; a
// refresh for another user closes the connection with DisconnectOtherUser and onMessage reports
// false (the reader stops). {"type":"cursor"} asks for a cursor frame (Conn.RequestCursor).
// {"type":"read","id":"<event id>"} records a read receipt (Conn.Read;
// docs/presence-and-receipts.md), unanswered. Any other message, JSON or not, is ignored, as before client frames
// existed: a newer client may send frames this server does not know.
func (t *wsTransport) onMessage(c *Conn, msg []byte) bool {
	var f clientFrame
	if json.Unmarshal(msg, &f) != nil {
		return true
	}
	switch f.Type {
	case clientRefresh:
		var token string
		json.Unmarshal(f.Token, &token) // not a string: "", refused as no token
		expires, err := c.Refresh(t.verifier, token)
		if errors.Is(err, ErrOtherUser) {
			c.Close(DisconnectOtherUser)
			return false
		}
		c.Send(refreshAnswer(c.format, expires, err))
	case clientCursor:
		c.RequestCursor()
	case clientRead: // a read receipt (docs/client-protocol.md, "Read receipts"); a bad ID is ignored
		var id string
		json.Unmarshal(f.ID, &id) // not a string: "", an invalid ID
		c.Read(id)
	}
	return true
}
