package socketio

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/auth"
)

// Config configures a Handler. Every field's zero value has a meaning, given with the field.
type Config struct {
	// Verifier checks the JWT a client sends in its Socket.IO CONNECT packet; required
	// (NewHandler panics without it).
	Verifier *auth.Verifier
	// Admission caps sessions node-wide and, before the client's CONNECT, per client address
	// (admission.Controller.Pending at the handshake, Authenticated at CONNECT, Release at the
	// end); nil admits every session.
	Admission *admission.Controller
	// AllowedOrigins are the browser origins allowed to connect, with the semantics of
	// config.Realtime.AllowedOrigins: "scheme://host[:port]" entries, or "*" for any origin;
	// empty allows same-origin pages and clients that send no Origin header. A request from any
	// other origin is refused with HTTP 403 {"code":4,"message":"Forbidden"}, on both transports.
	AllowedOrigins []string
	// PingInterval is how often the server sends an Engine.IO ping (engine.io-protocol v4,
	// "Heartbeat"); zero means 25 s, socket.io's default. It is announced to the client in the
	// open packet.
	PingInterval time.Duration
	// PongTimeout is how long the client has to answer a ping with a pong before the session is
	// closed (the open packet's pingTimeout); zero means 20 s. After the CONNECT the WebSocket
	// reader also gives up on a client silent for PingInterval+PongTimeout.
	PongTimeout time.Duration
	// AuthTimeout is how long a session may exist before its client's Socket.IO CONNECT to "/"
	// is verified (REALTIME_AUTH_TIMEOUT); zero means 5 s. socket.io-client sends its CONNECT
	// right after the open packet, so this only bounds what an unauthenticated client holds: past
	// it the session is closed (WebSocket close 1008, or the close packet on polling), counted as
	// realtime_socketio_protocol_errors_total{reason="auth_timeout"}. It also bounds the reads of
	// such a session (the WebSocket read deadline, a POST body's read deadline).
	AuthTimeout time.Duration
	// WriteTimeout bounds one write to a client: a WebSocket write, or the wait of queued
	// packets for the client's next long-polling GET; zero means 10 s.
	WriteTimeout time.Duration
	// ReplayTimeout bounds the replay a recovering client waits for before its CONNECT reply
	// (it may read Kafka); zero means 25 s, KAFKA_REQUEST_TIMEOUT's default. It must stay below
	// PingInterval+PongTimeout, or the client gives up on the session first.
	ReplayTimeout time.Duration
	// MaxPayload is the largest message an authenticated client may send, in bytes: one
	// WebSocket message, or one long-polling POST body (announced as the open packet's
	// maxPayload; REALTIME_MAX_MESSAGE_BYTES); zero means 65,536. Our clients send only CONNECT
	// and "refresh" events (a token each), acks, pongs and disconnects, a few KiB at most even
	// batched in one POST, so 64 KiB is ample, where socket.io's 1 MB default would let every
	// connection hold 1 MB of buffer. Larger input closes the session: WebSocket close 1009
	// (RFC 6455 §7.4.1), or HTTP 413 with the Engine.IO error body on polling, counted as
	// realtime_socketio_protocol_errors_total{reason="too_large"}.
	MaxPayload int
	// PreAuthMaxPayload is the same limit before the client's CONNECT is verified
	// (REALTIME_PREAUTH_MAX_MESSAGE_BYTES); zero means 16,384, room for a CONNECT with a large
	// token. It is not announced (a client sends only its CONNECT before then); above MaxPayload
	// it is lowered to MaxPayload.
	PreAuthMaxPayload int
	// NoCursorArg sends events without the trailing {"id"} argument to clients whose CONNECT
	// does not say (auth "cursorArg"): `42["<event>",<data>]`, each followed by
	// `42["cursor",{"id":"<id>"}]`, and cursor packets as `42["cursor","<cursor>"]`, for handlers
	// that take exactly the event's arguments (python-socketio, Swift, Kotlin, Dart). False
	// (REALTIME_SOCKETIO_CURSOR_ARG=true, the default) keeps `42["<event>",<data>,{"id":"<id>"}]`
	// and `42["cursor",null,"<cursor>"]`, whose trailing string socket.io-client's connection
	// state recovery keeps as its offset (docs/socketio-conformance.md, "The cursor").
	NoCursorArg bool
	// Log receives per-session problems at debug level and unexpected ones at warn; nil
	// discards them.
	Log *slog.Logger
	// Metrics registers the Socket.IO series (sessions by transport, upgrades, protocol
	// errors by reason); nil registers nothing.
	Metrics prometheus.Registerer
}

// Defaults of Config's zero values.
const (
	defaultPingInterval  = 25 * time.Second
	defaultPongTimeout   = 20 * time.Second
	defaultWriteTimeout  = 10 * time.Second
	defaultMaxPayload    = 64 << 10
	defaultPreAuthMax    = 16 << 10
	defaultAuthTimeout   = 5 * time.Second
	defaultReplayTimeout = 25 * time.Second

	// closeLinger bounds what follows a WebSocket Close frame the server sends: the wait for the
	// client's Close (RFC 6455 §7.1.1: the server closes TCP after the closing handshake) and the
	// reading and discarding of input still in flight. Closing TCP with unread input makes the
	// kernel send a reset, which may destroy the Close frame before the client reads it (RFC 6455
	// §7.1.1 leaves lingering to the implementation; a reset client sees 1006).
	closeLinger = time.Second

	// upgradeTimeout bounds the WebSocket probe: from the upgrade request to the client's
	// upgrade packet (engine.io's upgradeTimeout).
	upgradeTimeout = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.PingInterval <= 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = defaultPongTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.ReplayTimeout <= 0 {
		c.ReplayTimeout = defaultReplayTimeout
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = defaultAuthTimeout
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = defaultMaxPayload
	}
	if c.PreAuthMaxPayload <= 0 {
		c.PreAuthMaxPayload = defaultPreAuthMax
	}
	c.PreAuthMaxPayload = min(c.PreAuthMaxPayload, c.MaxPayload)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
