// Package config reads the service's configuration from the environment once, at start-up.
//
// The variable names, units and defaults of the Kafka settings are those of the original NestJS
// service (docs/configuration.md, "Variables"), so its env files keep working. Durations are
// whole milliseconds, as they were there. A malformed value is reported as one line naming the
// variable, the value and the expected form; Load reports every malformed variable at once.
package config

import (
	"crypto"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Config is the whole service configuration. The zero value is not useful: use Load.
type Config struct {
	Kafka    Kafka
	HTTP     HTTP
	Realtime Realtime
	Log      Log
	// DebugAddr is where net/http/pprof listens (DEBUG_ADDR); empty (the default) disables it.
	// Bind it to loopback: profiles expose internals.
	DebugAddr string
}

// Kafka holds the broker connection and consumer settings.
type Kafka struct {
	// Brokers are the seed brokers (KAFKA_BROKERS, comma-separated host:port). Empty means the
	// embedded single-node development broker is started; see Embedded.
	Brokers []string
	// EmbeddedAddr is where the embedded broker listens (KAFKA_EMBEDDED_ADDR, default 127.0.0.1:9092).
	EmbeddedAddr string
	// EmbeddedDataDir is where the embedded broker keeps its log (KAFKA_EMBEDDED_DATA_DIR);
	// empty (the default) keeps it in memory, lost on exit.
	EmbeddedDataDir string
	// EmbeddedPartitions is the partition count of the topics the embedded broker creates
	// (KAFKA_EMBEDDED_PARTITIONS, default 3).
	EmbeddedPartitions int32
	// ClientID is the Kafka client.id (KAFKA_CLIENT_ID, default "realtime-service").
	ClientID string
	// ConnectionTimeout bounds a broker dial (KAFKA_CONNECTION_TIMEOUT, ms, default 3000).
	ConnectionTimeout time.Duration
	// RequestTimeout bounds one request, and an HTTP produce as a whole
	// (KAFKA_REQUEST_TIMEOUT, ms, default 25000).
	RequestTimeout time.Duration
	// RetryBackoff is the first retry backoff (KAFKA_RETRY_INITIAL_RETRY_TIME, ms, default 100);
	// later retries back off exponentially from it.
	RetryBackoff time.Duration
	// Retries is how often a failed request is retried (KAFKA_RETRY_RETRIES, default 8).
	Retries int
	// GroupID is the consumer group prefix (KAFKA_GROUP_ID, default "realtime-service").
	GroupID string
	// NodeID names this node in its consumer group (KAFKA_NODE_ID, default the hostname).
	NodeID string
	// SASL authenticates to managed clusters; the zero value means no SASL.
	SASL SASL
	// TLS enables TLS to the brokers (KAFKA_TLS=true), verified against the system roots or
	// TLSCAFile (KAFKA_TLS_CA_FILE, a PEM bundle) when that is set.
	TLS       bool
	TLSCAFile string
	// Topics are the consumed topics with the event name each one carries and, optionally, where
	// its records name their recipients (REALTIME_TOPICS, default
	// "session-notifications=session-starting-soon,concept-notifications=concept-mastered";
	// entries "topic=event;recipients=/pointer|key|header:<name>;strip=false;value=raw-string").
	Topics []TopicEvent
	// DLQTopic receives records that fail to decode or validate
	// (REALTIME_DLQ_TOPIC, default "realtime-service.dlq").
	DLQTopic string
	// PresenceTopic is the compacted topic of presence records and node heartbeats
	// (REALTIME_PRESENCE_TOPIC, default "realtime-service.presence"; docs/presence-and-receipts.md).
	PresenceTopic string
	// ReceiptsTopic receives delivery and read receipts (REALTIME_RECEIPTS_TOPIC); empty (the
	// default) produces none.
	ReceiptsTopic string
}

// SASL mechanisms accepted in KAFKA_SASL_MECHANISM.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL holds KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty = no SASL),
// KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD.
type SASL struct {
	Mechanism string
	Username  string
	Password  string
}

// TopicEvent maps a consumed topic to the event name its records carry unless a record's
// `event-type` header overrides it, and says where its records name their recipients
// (REALTIME_TOPICS options recipients, strip and value; see notification.Shape).
type TopicEvent struct {
	Topic string
	Event string
	// Shape is the zero Shape (recipients in a JSON value's "userIds") unless options say otherwise.
	Shape notification.Shape
}

// Embedded reports whether the embedded broker is used (KAFKA_BROKERS unset or empty).
func (k Kafka) Embedded() bool { return len(k.Brokers) == 0 }

// ConsumerGroup is this node's consumer group: "<GroupID>.<NodeID>" (docs/design.md, "Many nodes"),
// so that every node sees every record.
func (k Kafka) ConsumerGroup() string { return k.GroupID + "." + k.NodeID }

// DeadLetterGroup is the consumer group every node joins for dead-letter duty:
// "<GroupID>.dlq" (docs/design.md, "Many nodes"). Kafka gives each partition to one member, so
// each poison record is copied to the dead-letter topic once per cluster. KAFKA_NODE_ID "dlq"
// is refused: its own group would be this one.
func (k Kafka) DeadLetterGroup() string { return k.GroupID + ".dlq" }

// TopicNames lists the consumed topics in configuration order.
func (k Kafka) TopicNames() []string {
	names := make([]string, len(k.Topics))
	for i, t := range k.Topics {
		names[i] = t.Topic
	}
	return names
}

// HTTP holds the listener settings and the service-to-service API keys.
type HTTP struct {
	// Addr is the listen address (HTTP_ADDR, default "127.0.0.1:3000": this machine only; set
	// ":3000" to accept other machines, as the container image and manifests do). Only on a
	// loopback listener can the development token endpoint exist (see DevTokens).
	Addr string
	// MaxBodyBytes caps a request body; larger bodies get 413 (HTTP_MAX_BODY_BYTES, default 1 MiB).
	MaxBodyBytes int64
	// ShutdownTimeout bounds graceful shutdown after SIGINT/SIGTERM
	// (HTTP_SHUTDOWN_TIMEOUT, ms, default 10000).
	ShutdownTimeout time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For header names the client address
	// (HTTP_TRUSTED_PROXIES, comma-separated CIDRs or addresses); empty (the default) takes the
	// TCP peer as the client. Only the per-address cap (REALTIME_MAX_PENDING_PER_ADDRESS) uses it.
	TrustedProxies []netip.Prefix
	// APIKeys authorise the service API (REALTIME_API_KEYS, comma-separated, each at least 16
	// characters). Empty is allowed only with the embedded broker (development).
	APIKeys []string
	// IdempotencyCacheSize bounds the first answers to produce requests with an Idempotency-Key
	// header that a node keeps, for Realtime.IdempotencyWindow, to answer a retry with them
	// (HTTP_IDEMPOTENCY_CACHE_SIZE, entries, default 10000). Past it the oldest answer is
	// forgotten: a retry of it is produced again, and its record dropped by every hub.
	IdempotencyCacheSize int
}

// Realtime holds the client-facing settings: authentication, origins, queues and history.
type Realtime struct {
	// JWTSecret verifies client tokens, HS256 (REALTIME_JWT_SECRET, at least 32 bytes as
	// RFC 7518 §3.2 asks of an HS256 key). Empty is allowed only with the embedded broker: a
	// random secret is generated at start, and on a loopback listener a development token
	// endpoint is enabled (see DevTokens).
	JWTSecret string
	// JWTPublicKeyFile is a PEM file whose public key verifies client tokens
	// (REALTIME_JWT_PUBLIC_KEY_FILE: PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE; RSA of 2048 bits or
	// more, EC P-256/P-384/P-521, or Ed25519). Load reads it into JWTPublicKey.
	JWTPublicKeyFile string
	JWTPublicKey     crypto.PublicKey
	// JWKSURL serves the JWK Set of an identity provider whose keys, chosen by a token's kid,
	// verify client tokens (REALTIME_JWKS_URL; https, or http to a loopback host).
	JWKSURL string
	// JWKSRefreshInterval is how often the JWK Set is fetched again (REALTIME_JWKS_REFRESH_INTERVAL,
	// ms, default 300000).
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval is the least time between fetches caused by tokens naming an unknown
	// kid (REALTIME_JWKS_MIN_REFRESH_INTERVAL, ms, default 30000).
	JWKSMinRefreshInterval time.Duration
	// JWKSFetchTimeout bounds one JWK Set fetch (REALTIME_JWKS_FETCH_TIMEOUT, ms, default 5000).
	JWKSFetchTimeout time.Duration
	// JWTIssuer, when set, must be every client token's iss (REALTIME_JWT_ISSUER).
	JWTIssuer string
	// JWTAudience, when set, must be one of every client token's aud (REALTIME_JWT_AUDIENCE).
	JWTAudience string
	// JWTUserClaim names the claim holding the user ID (REALTIME_JWT_USER_CLAIM, default "sub").
	JWTUserClaim string
	// AllowedOrigins are the browser origins allowed to connect besides same-origin pages
	// (REALTIME_ALLOWED_ORIGINS, comma-separated "scheme://host[:port]" entries, "null" for pages
	// whose origin is opaque, or "*"). Scheme, host and port must all match (RFC 6454). Empty
	// (the default) allows same-origin pages and clients that send no Origin header; behind a
	// proxy that terminates TLS, list the public https origin (X-Forwarded-Proto is not trusted).
	AllowedOrigins []string
	// SendQueueBytes bounds the frames queued for one connection; past it the connection is
	// closed as slow (REALTIME_SEND_QUEUE_BYTES, default 1 MiB).
	SendQueueBytes int
	// MaxConnections bounds the client connections of a node, every transport, authenticated or
	// not; past it a new client gets 503 with Retry-After (REALTIME_MAX_CONNECTIONS, default
	// 10000; 0 is no limit).
	MaxConnections int
	// MaxPending bounds the sessions of a node whose client has not authenticated yet (a
	// Socket.IO session before its CONNECT); past it 503 with Retry-After (REALTIME_MAX_PENDING,
	// default 2000; 0 is no limit).
	MaxPending int
	// MaxPendingPerAddress bounds such sessions from one client address, an IPv6 /64 counting as
	// one; past it 429 with Retry-After (REALTIME_MAX_PENDING_PER_ADDRESS, default 64; 0 is no
	// limit). Authenticated connections are not counted per address.
	MaxPendingPerAddress int
	// AuthTimeout bounds how long a Socket.IO session may exist before its client's CONNECT is
	// verified; past it the session is closed (REALTIME_AUTH_TIMEOUT, ms, default 5000).
	AuthTimeout time.Duration
	// PreAuthMaxMessageBytes bounds one Socket.IO message (a WebSocket message, a long-polling
	// POST body) before the CONNECT is verified; past it WebSocket close 1009 or HTTP 413
	// (REALTIME_PREAUTH_MAX_MESSAGE_BYTES, bytes, default 16384, 1024 to 1 MiB).
	PreAuthMaxMessageBytes int
	// MaxMessageBytes bounds one Socket.IO message after the CONNECT, announced to the client as
	// maxPayload (REALTIME_MAX_MESSAGE_BYTES, bytes, default 65536, 1024 to 16 MiB).
	MaxMessageBytes int
	// SocketIOCursorArg makes Socket.IO events `42["<event>",<data>,{"id":"<id>"}]` and cursor
	// packets `42["cursor",null,"<cursor>"]`, whose trailing string is socket.io-client's
	// recovery offset; false makes events `42["<event>",<data>]`, each followed by
	// `42["cursor",{"id":"<id>"}]`, and cursor packets `42["cursor","<cursor>"]`, for clients
	// whose handlers take exactly the payload (python-socketio; docs/design.md, "Cursor"). A
	// client's CONNECT auth `cursorArg` (a boolean) overrides it (REALTIME_SOCKETIO_CURSOR_ARG,
	// default true).
	SocketIOCursorArg bool
	// MaxConnectionsPerUser bounds the live connections one user holds on a node, over all
	// transports; 0 is no limit (REALTIME_MAX_CONNECTIONS_PER_USER, default 100).
	MaxConnectionsPerUser int
	// PingInterval is how often the server pings a WebSocket or Socket.IO connection and sends
	// an SSE heartbeat comment (REALTIME_PING_INTERVAL, ms, default 25000, Socket.IO's default).
	PingInterval time.Duration
	// PongTimeout is how long after a ping a missing pong closes the connection
	// (REALTIME_PONG_TIMEOUT, ms, default 20000, Socket.IO's pingTimeout).
	PongTimeout time.Duration
	// WriteTimeout bounds one write to a connection (REALTIME_WRITE_TIMEOUT, ms, default 10000).
	WriteTimeout time.Duration
	// CursorEvery is how many events a connection gets between two cursor control frames
	// (REALTIME_CURSOR_EVERY, default 32, 1 to 100000; see realtime.HubConfig.CursorEvery).
	CursorEvery int
	// HistorySize is how many recent events are kept per user for fast resume
	// (REALTIME_HISTORY_SIZE, default 100; 0 disables the in-memory history).
	HistorySize int
	// HistoryTTL is how long an event stays in the in-memory history
	// (REALTIME_HISTORY_TTL, ms, default 300000).
	HistoryTTL time.Duration
	// HistoryMaxBytes bounds the estimated memory of the in-memory history; past it the oldest
	// events go first (REALTIME_HISTORY_MAX_BYTES, default 64 MiB).
	HistoryMaxBytes int64
	// ReplayMaxRecords bounds how many records one resume may read from Kafka before it gives
	// up with a resync event (REALTIME_REPLAY_MAX_RECORDS, default 100000).
	ReplayMaxRecords int
	// IdempotencyWindow is how far apart in record timestamps two records of one topic and
	// partition with the same idempotency-key header may be for the second to be dropped
	// (REALTIME_IDEMPOTENCY_WINDOW, ms, default 300000); it also bounds how long the HTTP API
	// keeps a first answer for a retry.
	IdempotencyWindow time.Duration
	// IdempotencyMaxKeys bounds the idempotency keys a node remembers within that window, all
	// partitions together (REALTIME_IDEMPOTENCY_MAX_KEYS, default 100000); past it the oldest are
	// forgotten early (realtime_idempotency_keys_evicted_total).
	IdempotencyMaxKeys int
	// PresenceHeartbeat is the interval of a node's heartbeat records on the presence topic
	// (REALTIME_PRESENCE_HEARTBEAT, ms, default 10000).
	PresenceHeartbeat time.Duration
	// PresenceTimeout is how old a node's last heartbeat may be before the node counts as gone
	// and its users offline (REALTIME_PRESENCE_TIMEOUT, ms, default 30000; more than
	// PresenceHeartbeat).
	PresenceTimeout time.Duration
	// PresenceQueryMaxUsers bounds the user IDs of one POST /v1/presence/query
	// (REALTIME_PRESENCE_QUERY_MAX_USERS, default 1000); more get 400.
	PresenceQueryMaxUsers int
	// ReceiptQueue bounds the receipts a node holds for Kafka; past it new ones are dropped and
	// counted (REALTIME_RECEIPT_QUEUE, records, default 65536).
	ReceiptQueue int
	// ReadMaxIDs bounds the event IDs of one POST /v1/events/read (REALTIME_READ_MAX_IDS,
	// default 100); more get 400.
	ReadMaxIDs int
	// ReplayConcurrency bounds the Kafka reads of all resumes at a time on a node
	// (REALTIME_REPLAY_CONCURRENCY, default 4).
	ReplayConcurrency int
	// ReplayPerUser bounds one user's Kafka reads at a time; the user's other resumes wait,
	// and a freed read goes to the next user in turn (REALTIME_REPLAY_PER_USER, default 1).
	ReplayPerUser int
	// ReplayQueuePerUser bounds one user's resumes waiting for a read; past it a resume gets a
	// resync "unavailable" at once (REALTIME_REPLAY_QUEUE_PER_USER, default 8).
	ReplayQueuePerUser int
}

// Log holds LOG_LEVEL (debug, info, warn, error; default info) and LOG_FORMAT (text or json;
// default text).
type Log struct {
	Level  string
	Format string
}

// Load reads the configuration through getenv (os.Getenv in production). It returns an *Error
// listing every malformed variable. What serving needs beyond that is CheckServe's.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	var c Config

	c.Kafka.Brokers = r.hostPorts("KAFKA_BROKERS")
	c.Kafka.EmbeddedAddr = r.hostPort("KAFKA_EMBEDDED_ADDR", "127.0.0.1:9092")
	c.Kafka.EmbeddedDataDir = r.str("KAFKA_EMBEDDED_DATA_DIR", "")
	c.Kafka.EmbeddedPartitions = int32(r.intRange("KAFKA_EMBEDDED_PARTITIONS", 3, 1, 1000))
	c.Kafka.ClientID = r.str("KAFKA_CLIENT_ID", "realtime-service")
	c.Kafka.ConnectionTimeout = r.millis("KAFKA_CONNECTION_TIMEOUT", 3000)
	c.Kafka.RequestTimeout = r.millis("KAFKA_REQUEST_TIMEOUT", 25000)
	c.Kafka.RetryBackoff = r.millis("KAFKA_RETRY_INITIAL_RETRY_TIME", 100)
	c.Kafka.Retries = r.intRange("KAFKA_RETRY_RETRIES", 8, 0, 1000)
	_ = getenv("KAFKAJS_NO_PARTITIONER_WARNING") // accepted so old env files keep working
	c.Kafka.GroupID = r.str("KAFKA_GROUP_ID", "realtime-service")
	c.Kafka.NodeID = r.str("KAFKA_NODE_ID", "")
	if c.Kafka.NodeID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			r.fail("KAFKA_NODE_ID", "", "a node name; the hostname could not be read")
		}
		c.Kafka.NodeID = host
	}
	if strings.Contains(c.Kafka.NodeID, "/") {
		r.fail("KAFKA_NODE_ID", c.Kafka.NodeID, "a node name without / (presence record keys are <user ID>/<node ID>)")
	}
	if c.Kafka.NodeID == "dlq" {
		r.fail("KAFKA_NODE_ID", c.Kafka.NodeID, "a node name other than dlq (<KAFKA_GROUP_ID>.dlq is the dead-letter duty's shared group)")
	}
	c.Kafka.SASL = r.sasl()
	c.Kafka.TLS = r.boolean("KAFKA_TLS", false)
	c.Kafka.TLSCAFile = r.str("KAFKA_TLS_CA_FILE", "")
	c.Kafka.Topics = r.topics("REALTIME_TOPICS",
		"session-notifications=session-starting-soon,concept-notifications=concept-mastered")
	c.Kafka.DLQTopic = r.topicName("REALTIME_DLQ_TOPIC", "realtime-service.dlq")
	c.Kafka.PresenceTopic = r.topicName("REALTIME_PRESENCE_TOPIC", "realtime-service.presence")
	c.Kafka.ReceiptsTopic = r.topicName("REALTIME_RECEIPTS_TOPIC", "")

	c.HTTP.Addr = r.listenAddr("HTTP_ADDR", "127.0.0.1:3000")
	c.HTTP.MaxBodyBytes = int64(r.intRange("HTTP_MAX_BODY_BYTES", 1<<20, 1024, 1<<30))
	c.HTTP.ShutdownTimeout = r.millis("HTTP_SHUTDOWN_TIMEOUT", 10000)
	c.HTTP.TrustedProxies = r.prefixes("HTTP_TRUSTED_PROXIES")
	c.HTTP.APIKeys = r.list("REALTIME_API_KEYS", 16, "comma-separated API keys of at least 16 characters each")

	c.Realtime.JWTSecret = r.str("REALTIME_JWT_SECRET", "")
	if s := c.Realtime.JWTSecret; s != "" && len(s) < 32 {
		r.fail("REALTIME_JWT_SECRET", "<redacted>", "a secret of at least 32 bytes (RFC 7518 §3.2 for HS256)")
	}
	c.Realtime.JWTPublicKeyFile, c.Realtime.JWTPublicKey = r.publicKeyFile("REALTIME_JWT_PUBLIC_KEY_FILE")
	c.Realtime.JWKSURL = r.str("REALTIME_JWKS_URL", "")
	if err := auth.CheckJWKSURL(c.Realtime.JWKSURL); c.Realtime.JWKSURL != "" && err != nil {
		r.fail("REALTIME_JWKS_URL", c.Realtime.JWKSURL, "the https URL of a JWK Set (http only to localhost, 127.0.0.0/8 or ::1): "+err.Error())
	}
	c.Realtime.JWKSRefreshInterval = r.millis("REALTIME_JWKS_REFRESH_INTERVAL", 300000)
	c.Realtime.JWKSMinRefreshInterval = r.millis("REALTIME_JWKS_MIN_REFRESH_INTERVAL", 30000)
	c.Realtime.JWKSFetchTimeout = r.millis("REALTIME_JWKS_FETCH_TIMEOUT", 5000)
	c.Realtime.JWTIssuer = r.str("REALTIME_JWT_ISSUER", "")
	c.Realtime.JWTAudience = r.str("REALTIME_JWT_AUDIENCE", "")
	c.Realtime.JWTUserClaim = r.str("REALTIME_JWT_USER_CLAIM", "sub")
	c.Realtime.AllowedOrigins = r.origins("REALTIME_ALLOWED_ORIGINS")
	c.Realtime.SendQueueBytes = r.intRange("REALTIME_SEND_QUEUE_BYTES", 1<<20, 1024, 1<<30)
	c.Realtime.MaxConnections = r.intRange("REALTIME_MAX_CONNECTIONS", 10000, 0, 10_000_000)
	c.Realtime.MaxPending = r.intRange("REALTIME_MAX_PENDING", 2000, 0, 10_000_000)
	c.Realtime.MaxPendingPerAddress = r.intRange("REALTIME_MAX_PENDING_PER_ADDRESS", 64, 0, 10_000_000)
	c.Realtime.AuthTimeout = r.millis("REALTIME_AUTH_TIMEOUT", 5000)
	c.Realtime.PreAuthMaxMessageBytes = r.intRange("REALTIME_PREAUTH_MAX_MESSAGE_BYTES", 16<<10, 1024, 1<<20)
	c.Realtime.MaxMessageBytes = r.intRange("REALTIME_MAX_MESSAGE_BYTES", 64<<10, 1024, 16<<20)
	c.Realtime.SocketIOCursorArg = r.boolean("REALTIME_SOCKETIO_CURSOR_ARG", true)
	c.Realtime.MaxConnectionsPerUser = r.intRange("REALTIME_MAX_CONNECTIONS_PER_USER", 100, 0, 1_000_000)
	c.Realtime.PingInterval = r.millis("REALTIME_PING_INTERVAL", 25000)
	c.Realtime.PongTimeout = r.millis("REALTIME_PONG_TIMEOUT", 20000)
	c.Realtime.WriteTimeout = r.millis("REALTIME_WRITE_TIMEOUT", 10000)
	c.Realtime.CursorEvery = r.intRange("REALTIME_CURSOR_EVERY", 32, 1, 100000)
	c.Realtime.HistorySize = r.intRange("REALTIME_HISTORY_SIZE", 100, 0, 100000)
	c.Realtime.HistoryTTL = r.millis("REALTIME_HISTORY_TTL", 300000)
	c.Realtime.HistoryMaxBytes = int64(r.intRange("REALTIME_HISTORY_MAX_BYTES", 64<<20, 1<<20, 1<<40))
	c.Realtime.ReplayMaxRecords = r.intRange("REALTIME_REPLAY_MAX_RECORDS", 100000, 1, 100000000)
	c.Realtime.IdempotencyWindow = r.millis("REALTIME_IDEMPOTENCY_WINDOW", 300000)
	c.Realtime.IdempotencyMaxKeys = r.intRange("REALTIME_IDEMPOTENCY_MAX_KEYS", 100000, 1, 100000000)
	c.Realtime.PresenceHeartbeat = r.millis("REALTIME_PRESENCE_HEARTBEAT", 10000)
	c.Realtime.PresenceTimeout = r.millis("REALTIME_PRESENCE_TIMEOUT", 30000)
	if c.Realtime.PresenceTimeout <= c.Realtime.PresenceHeartbeat {
		r.fail("REALTIME_PRESENCE_TIMEOUT", r.get("REALTIME_PRESENCE_TIMEOUT"), "more milliseconds than REALTIME_PRESENCE_HEARTBEAT ("+strconv.FormatInt(c.Realtime.PresenceHeartbeat.Milliseconds(), 10)+"), e.g. three heartbeats")
	}
	c.Realtime.PresenceQueryMaxUsers = r.intRange("REALTIME_PRESENCE_QUERY_MAX_USERS", 1000, 1, 100000)
	c.Realtime.ReceiptQueue = r.intRange("REALTIME_RECEIPT_QUEUE", 65536, 1, 10_000_000)
	c.Realtime.ReadMaxIDs = r.intRange("REALTIME_READ_MAX_IDS", 100, 1, 10000)
	c.HTTP.IdempotencyCacheSize = r.intRange("HTTP_IDEMPOTENCY_CACHE_SIZE", 10000, 1, 10000000)
	c.Realtime.ReplayConcurrency = r.intRange("REALTIME_REPLAY_CONCURRENCY", 4, 1, 1000)
	c.Realtime.ReplayPerUser = r.intRange("REALTIME_REPLAY_PER_USER", 1, 1, 1000)
	c.Realtime.ReplayQueuePerUser = r.intRange("REALTIME_REPLAY_QUEUE_PER_USER", 8, 1, 100000)

	c.Log.Level = r.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error")
	c.Log.Format = r.oneOf("LOG_FORMAT", "text", "text", "json")
	c.DebugAddr = r.str("DEBUG_ADDR", "")
	if c.DebugAddr != "" {
		c.DebugAddr = r.listenAddr("DEBUG_ADDR", "")
	}

	if len(r.problems) > 0 {
		return Config{}, &Error{Problems: r.problems}
	}
	return c, nil
}

// ClientTokensConfigured reports whether client tokens are verified with a configured key
// source (REALTIME_JWT_SECRET, REALTIME_JWT_PUBLIC_KEY_FILE or REALTIME_JWKS_URL). Without one,
// serve signs tokens with a random secret that changes at every start. This is the one place
// that knows the key sources: a new one must be added here (and to KeySources), so that the
// development token endpoint stays off with it.
func (c Config) ClientTokensConfigured() bool { return len(c.KeySources()) > 0 }

// KeySources names the variables of the client-token key sources that are set, in the order
// REALTIME_JWT_SECRET, REALTIME_JWT_PUBLIC_KEY_FILE, REALTIME_JWKS_URL.
func (c Config) KeySources() []string {
	var set []string
	if c.Realtime.JWTSecret != "" {
		set = append(set, "REALTIME_JWT_SECRET")
	}
	if c.Realtime.JWTPublicKeyFile != "" {
		set = append(set, "REALTIME_JWT_PUBLIC_KEY_FILE")
	}
	if c.Realtime.JWKSURL != "" {
		set = append(set, "REALTIME_JWKS_URL")
	}
	return set
}

// DevTokens reports whether GET /v1/dev/token, which issues a client token for any user to
// anyone who asks, may exist: only when no client-token key is configured
// (ClientTokensConfigured) and the HTTP listener, as bound, is on loopback (127.0.0.0/8 or ::1;
// a wildcard such as ":3000" or "0.0.0.0:3000" is not). This is what development mode means.
func (c Config) DevTokens(listener net.Addr) bool {
	return !c.ClientTokensConfigured() && loopback(listener)
}

// Mode names the mode serve runs in, "development" when DevTokens holds and "production"
// otherwise, and says why in one line: the broker, the API keys, the client-token key, the
// listener, and what follows from them that an operator must know (an open API, a token endpoint,
// tokens nobody can verify).
func (c Config) Mode(listener net.Addr) (mode, reason string) {
	var why []string
	if c.Kafka.Embedded() {
		why = append(why, "embedded broker")
	} else {
		why = append(why, "KAFKA_BROKERS set")
	}
	if len(c.HTTP.APIKeys) == 0 {
		why = append(why, "no REALTIME_API_KEYS (the service API is open to anyone who reaches the listener)")
	} else {
		why = append(why, "REALTIME_API_KEYS set")
	}
	if c.ClientTokensConfigured() {
		why = append(why, strings.Join(c.KeySources(), " and ")+" set")
	} else {
		why = append(why, "no REALTIME_JWT_SECRET (client tokens are signed with a random secret that changes at every start)")
	}
	where := "listener " + listener.String()
	if loopback(listener) {
		why = append(why, "loopback "+where)
	} else {
		why = append(why, "non-loopback "+where)
	}
	switch {
	case c.DevTokens(listener):
		return "development", strings.Join(append(why, "GET /v1/dev/token?user=<id> issues client tokens to anyone who asks"), ", ")
	case !c.ClientTokensConfigured():
		why = append(why, "no GET /v1/dev/token (it needs a loopback listener), so no client can get a token this service accepts: set REALTIME_JWT_SECRET, REALTIME_JWT_PUBLIC_KEY_FILE or REALTIME_JWKS_URL")
	}
	return "production", strings.Join(why, ", ")
}

// loopback reports whether addr, a bound listener address, is on 127.0.0.0/8 or ::1.
func loopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case nil:
		return false
	}
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// CheckServe reports what serving needs beyond well-formed values: with a real broker
// (KAFKA_BROKERS set) the service API is never open and clients need real tokens, so
// REALTIME_API_KEYS and a client-token key source (REALTIME_JWT_SECRET,
// REALTIME_JWT_PUBLIC_KEY_FILE or REALTIME_JWKS_URL) are required. Only the embedded development
// broker runs without them. Without a key source, REALTIME_JWT_ISSUER, REALTIME_JWT_AUDIENCE and
// a REALTIME_JWT_USER_CLAIM other than sub are refused: development tokens lack those claims.
// Example values of the README and deploy/ (anything containing "change-me") are refused
// everywhere: they are public. The error is an *Error.
func (c Config) CheckServe() error {
	problems := c.exampleSecretProblems()
	if !c.ClientTokensConfigured() { // development tokens carry sub, iat and exp only
		for _, v := range []struct{ name, value string }{
			{"REALTIME_JWT_ISSUER", c.Realtime.JWTIssuer},
			{"REALTIME_JWT_AUDIENCE", c.Realtime.JWTAudience},
			{"REALTIME_JWT_USER_CLAIM", c.Realtime.JWTUserClaim},
		} {
			if v.value != "" && v.value != "sub" {
				problems = append(problems, Problem{Var: v.name, Value: v.value, Want: "unset without a client-token key source (REALTIME_JWT_SECRET, REALTIME_JWT_PUBLIC_KEY_FILE or REALTIME_JWKS_URL): development tokens carry only sub"})
			}
		}
	}
	if c.Kafka.Embedded() {
		if problems != nil {
			return &Error{Problems: problems}
		}
		return nil
	}
	if len(c.HTTP.APIKeys) == 0 {
		problems = append(problems, Problem{Var: "REALTIME_API_KEYS", Want: "at least one API key: with a real broker (KAFKA_BROKERS set) the service API is never open"})
	}
	if !c.ClientTokensConfigured() {
		problems = append(problems, Problem{Var: "REALTIME_JWT_SECRET", Want: "a secret of at least 32 bytes, or REALTIME_JWT_PUBLIC_KEY_FILE or REALTIME_JWKS_URL: with a real broker (KAFKA_BROKERS set) clients need real tokens"})
	}
	if problems != nil {
		return &Error{Problems: problems}
	}
	return nil
}

// Problem is one malformed variable.
type Problem struct {
	Var   string // the variable's name
	Value string // the value as read ("<redacted>" for secrets)
	Want  string // the expected form
}

func (p Problem) String() string {
	return fmt.Sprintf("%s=%q: want %s", p.Var, p.Value, p.Want)
}

// Error lists every malformed variable found by Load; its message is one line.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "config: " + strings.Join(parts, "; ")
}
