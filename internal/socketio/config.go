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
	// closed (the open packet's pingTimeout); zero means 20 s. A session that has not connected
	// to a namespace within PingInterval+PongTimeout (45 s by default, socket.io's
	// connectTimeout) is closed too.
	PongTimeout time.Duration
	// WriteTimeout bounds one write to a client: a WebSocket write, or the wait of queued
	// packets for the client's next long-polling GET; zero means 10 s.
	WriteTimeout time.Duration
	// ReplayTimeout bounds the replay a recovering client waits for before its CONNECT reply
	// (it may read Kafka); zero means 25 s, KAFKA_REQUEST_TIMEOUT's default. It must stay below
	// PingInterval+PongTimeout, or the client gives up on the session first.
	ReplayTimeout time.Duration
	// MaxPayload is the largest message the client may send, in bytes: one WebSocket message,
	// or one long-polling POST body (the open packet's maxPayload); zero means 1,000,000.
	// Larger input closes the session (WebSocket close 1009, or HTTP 413 on polling).
	MaxPayload int
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
	defaultMaxPayload    = 1_000_000
	defaultReplayTimeout = 25 * time.Second

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
	if c.MaxPayload <= 0 {
		c.MaxPayload = defaultMaxPayload
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
