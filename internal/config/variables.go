package config

//go:generate go run ./gen -o ../../docs/configuration.md

// Variable documents one environment variable Load reads.
type Variable struct {
	Name    string
	Default string // "" when unset means something else; see Meaning
	Meaning string // Markdown, one line: unit first, then what the value does
}

// Variables lists every variable Load reads, in the order of docs/configuration.md, which
// `go generate ./internal/config` writes from this list (a test fails when the file drifts).
// Tests also hold the deployment manifests and Load itself to it.
func Variables() []Variable {
	return []Variable{
		{"KAFKA_BROKERS", "", "comma-separated `host:port` seed brokers; unset = the embedded broker"},
		{"KAFKA_EMBEDDED_ADDR", "127.0.0.1:9092", "where the embedded broker listens (single node, no replication: development and small installs)"},
		{"KAFKA_EMBEDDED_DATA_DIR", "", "the embedded broker keeps its log and offsets here and reloads them at start; unset = in memory"},
		{"KAFKA_EMBEDDED_PARTITIONS", "3", "partitions of the topics the embedded broker creates"},
		{"KAFKA_CLIENT_ID", "realtime-service", "Kafka `client.id`"},
		{"KAFKA_CONNECTION_TIMEOUT", "3000", "ms, broker dial timeout"},
		{"KAFKA_REQUEST_TIMEOUT", "25000", "ms, one Kafka request; also bounds an HTTP produce (then 503)"},
		{"KAFKA_RETRY_INITIAL_RETRY_TIME", "100", "ms, first retry backoff (then exponential, jittered)"},
		{"KAFKA_RETRY_RETRIES", "8", "retries of a failed request"},
		{"KAFKAJS_NO_PARTITIONER_WARNING", "", "ignored; accepted so old env files keep working"},
		{"KAFKA_GROUP_ID", "realtime-service", "consumer group prefix"},
		{"KAFKA_NODE_ID", "", "this node's name (unset = the hostname); its consumer group is `<KAFKA_GROUP_ID>.<KAFKA_NODE_ID>`"},
		{"KAFKA_SASL_MECHANISM", "", "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`"},
		{"KAFKA_SASL_USERNAME", "", "SASL user name"},
		{"KAFKA_SASL_PASSWORD", "", "SASL password"},
		{"KAFKA_TLS", "false", "TLS to the brokers, verified against the system roots"},
		{"KAFKA_TLS_CA_FILE", "", "PEM bundle to verify brokers with (turns TLS on)"},
		{"REALTIME_TOPICS", "session-notifications=session-starting-soon,concept-notifications=concept-mastered", "consumed topics and the event name each carries; per topic, where records name their recipients and how the value is read (`;recipients=`, `;strip=`, `;value=`: see docs/configuration.md, \"Recipients per topic\")"},
		{"REALTIME_DLQ_TOPIC", "realtime-service.dlq", "dead-letter topic"},
		{"HTTP_ADDR", "127.0.0.1:3000", "listen address; loopback by default in every mode, `:3000` for all interfaces (then no `GET /v1/dev/token`)"},
		{"HTTP_MAX_BODY_BYTES", "1048576", "bytes; larger request bodies get 413"},
		{"HTTP_SHUTDOWN_TIMEOUT", "10000", "ms, bound on graceful shutdown"},
		{"REALTIME_API_KEYS", "", "comma-separated API keys (16+ characters) for the service API; required with a real broker"},
		{"REALTIME_JWT_SECRET", "", "HS256/384/512 secret (32/48/64+ bytes) for client tokens; a real broker needs this or another key source below"},
		{"REALTIME_JWT_PUBLIC_KEY_FILE", "", "PEM public key (RSA 2048+, EC P-256/P-384/P-521, Ed25519) that verifies client tokens; the algorithm follows the key"},
		{"REALTIME_JWKS_URL", "", "an identity provider's JWK Set URL (https; http only to loopback); its keys verify client tokens by `kid` (docs/identity-providers.md)"},
		{"REALTIME_JWKS_REFRESH_INTERVAL", "300000", "ms between background JWK Set fetches; a key the provider removed stops verifying within it"},
		{"REALTIME_JWKS_MIN_REFRESH_INTERVAL", "30000", "ms, least time between fetches caused by tokens with an unknown `kid` (others get 401 at once)"},
		{"REALTIME_JWKS_FETCH_TIMEOUT", "5000", "ms, one JWK Set fetch; a failed fetch keeps the cached keys (`/health`: degraded)"},
		{"REALTIME_JWT_ISSUER", "", "required `iss` of client tokens; unset = not checked"},
		{"REALTIME_JWT_AUDIENCE", "", "required `aud` of client tokens; unset = not checked"},
		{"REALTIME_JWT_USER_CLAIM", "sub", "the claim holding the user ID (a string)"},
		{"REALTIME_ALLOWED_ORIGINS", "", "browser origins (`scheme://host[:port]`, `null`) allowed on the client endpoints besides the same origin, or `*`; unset = the same origin only"},
		{"REALTIME_SEND_QUEUE_BYTES", "1048576", "bytes, per-connection send queue; overflow closes the connection (4008)"},
		{"REALTIME_MAX_CONNECTIONS", "10000", "client connections a node holds, every transport, authenticated or not; past it a new one gets `503` with `Retry-After`; `0` = no limit"},
		{"REALTIME_MAX_PENDING", "2000", "sessions a node holds before their client authenticated (Socket.IO before its CONNECT); past it `503` with `Retry-After`; `0` = no limit"},
		{"REALTIME_MAX_PENDING_PER_ADDRESS", "64", "such sessions from one client address (an IPv6 /64 counts as one); past it `429`; authenticated connections are never limited per address; `0` = no limit"},
		{"HTTP_TRUSTED_PROXIES", "", "CIDRs of the proxies whose `X-Forwarded-For` names the client address (the right-most entry that is not a trusted proxy); unset = the TCP peer is the client"},
		{"REALTIME_AUTH_TIMEOUT", "5000", "ms a Socket.IO session may wait for its client's `CONNECT` (the token); then it is closed (WebSocket close `1008`)"},
		{"REALTIME_PREAUTH_MAX_MESSAGE_BYTES", "16384", "bytes, largest Socket.IO message before the `CONNECT` (one WebSocket message or one long-polling POST body); past it close `1009` or `413`"},
		{"REALTIME_MAX_MESSAGE_BYTES", "65536", "bytes, the same after the `CONNECT`, announced as `maxPayload`; our clients send only `CONNECT`, acks, pongs and disconnects"},
		{"REALTIME_SOCKETIO_CURSOR_ARG", "true", "Socket.IO events carry their ID as a trailing `{\"id\"}` argument and cursors come as `cursor` events whose last argument is the cursor (socket.io-client's recovery offset); `false`: events carry exactly the payload, each followed by a `cursor` event with its `{\"id\"}`, and a cursor event's one argument is the cursor; a client's CONNECT `auth.cursorArg` overrides"},
		{"REALTIME_MAX_CONNECTIONS_PER_USER", "100", "live connections one user may hold on a node, all transports together; past it a new one gets `429` (Socket.IO: `connect_error`); `0` = no limit"},
		{"REALTIME_PING_INTERVAL", "25000", "ms, WebSocket/Socket.IO ping and SSE heartbeat interval"},
		{"REALTIME_PONG_TIMEOUT", "20000", "ms; a silent connection is closed after interval + timeout"},
		{"REALTIME_WRITE_TIMEOUT", "10000", "ms, one write to a client"},
		{"REALTIME_CURSOR_EVERY", "32", "events a connection gets between two `cursor` frames (its full resume position; events carry only their `id`); a client that resumes without the IDs it got since its last cursor gets at most this minus one events twice"},
		{"REALTIME_HISTORY_SIZE", "100", "recent events kept per user for fast resume (`0` = off)"},
		{"REALTIME_HISTORY_TTL", "300000", "ms an event stays in that history"},
		{"REALTIME_HISTORY_MAX_BYTES", "67108864", "bytes, bound on that history's estimated memory (`realtime_history_bytes`); the oldest events go first. The default holds the last 100 events of about 350 users (BENCHMARKS.md, \"Resume\")"},
		{"REALTIME_REPLAY_MAX_RECORDS", "100000", "records a resume may read from Kafka before it answers `resync`"},
		{"REALTIME_REPLAY_CONCURRENCY", "4", "resumes reading Kafka at a time on a node; the others wait, a freed read going to the next user in turn"},
		{"REALTIME_REPLAY_PER_USER", "1", "one user's resumes reading Kafka at a time"},
		{"REALTIME_REPLAY_QUEUE_PER_USER", "8", "one user's resumes waiting to read Kafka; more get `resync` `unavailable` at once"},
		{"REALTIME_IDEMPOTENCY_WINDOW", "300000", "ms; a record with the `idempotency-key` header of an earlier record of its topic and partition, at most this much later (record timestamps), is dropped by every node (`realtime_duplicates_dropped_total`)"},
		{"REALTIME_IDEMPOTENCY_MAX_KEYS", "100000", "idempotency keys a node remembers within that window; past it the oldest are forgotten early (`realtime_idempotency_keys_evicted_total`)"},
		{"REALTIME_PRESENCE_TOPIC", "realtime-service.presence", "compacted topic of presence records (who is connected on which node) and node heartbeats; every node reads all of it into its cluster-wide view, and creates it if missing (docs/presence-and-receipts.md)"},
		{"REALTIME_PRESENCE_HEARTBEAT", "10000", "ms between a node's heartbeat records on the presence topic"},
		{"REALTIME_PRESENCE_TIMEOUT", "30000", "ms; a node whose last heartbeat is older counts as gone, and its users offline (more than `REALTIME_PRESENCE_HEARTBEAT`)"},
		{"REALTIME_PRESENCE_QUERY_MAX_USERS", "1000", "user IDs one `POST /v1/presence/query` may ask about; more get `400` (`http_presence_queries_refused_total`)"},
		{"REALTIME_RECEIPTS_TOPIC", "", "topic of delivery and read receipts (key = user ID); unset = no receipts"},
		{"REALTIME_RECEIPT_QUEUE", "65536", "receipts a node holds for Kafka; past it new ones are dropped, never delivery slowed (`realtime_receipts_dropped_total`)"},
		{"REALTIME_READ_MAX_IDS", "100", "event IDs one `POST /v1/events/read` may carry; more get `400` (`http_read_receipts_refused_total`)"},
		{"HTTP_IDEMPOTENCY_CACHE_SIZE", "10000", "first answers to produce requests with an `Idempotency-Key` a node keeps for a retry within the window; past it the oldest go (`http_idempotency_cache_evictions_total`)"},
		{"LOG_LEVEL", "info", "`debug`, `info`, `warn` or `error`"},
		{"LOG_FORMAT", "text", "`text` or `json`"},
		{"DEBUG_ADDR", "", "listen address of net/http/pprof (keep it on loopback); unset = off"},
	}
}
