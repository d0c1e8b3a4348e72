package config

// Variable documents one environment variable Load reads.
type Variable struct {
	Name    string
	Default string // "" when unset means something else; see Meaning
	Meaning string
}

// Variables lists every variable Load reads, in README order. Tests hold README.md, the
// deployment manifests and Load itself to this list, so that none of them drifts.
func Variables() []Variable {
	return []Variable{
		{"KAFKA_BROKERS", "", "comma-separated host:port seed brokers; unset = embedded broker"},
		{"KAFKA_EMBEDDED_ADDR", "127.0.0.1:9092", "where the embedded broker listens"},
		{"KAFKA_EMBEDDED_DATA_DIR", "", "the embedded broker's log directory; unset = in memory"},
		{"KAFKA_EMBEDDED_PARTITIONS", "3", "partitions of the topics the embedded broker creates"},
		{"KAFKA_CLIENT_ID", "realtime-service", "Kafka client.id"},
		{"KAFKA_CONNECTION_TIMEOUT", "3000", "ms, broker dial timeout"},
		{"KAFKA_REQUEST_TIMEOUT", "25000", "ms, one Kafka request; also bounds an HTTP produce"},
		{"KAFKA_RETRY_INITIAL_RETRY_TIME", "100", "ms, first retry backoff"},
		{"KAFKA_RETRY_RETRIES", "8", "retries of a failed request"},
		{"KAFKAJS_NO_PARTITIONER_WARNING", "", "ignored; accepted so old env files keep working"},
		{"KAFKA_GROUP_ID", "realtime-service", "consumer group prefix"},
		{"KAFKA_NODE_ID", "", "this node's name (default the hostname); group <KAFKA_GROUP_ID>.<KAFKA_NODE_ID>"},
		{"KAFKA_SASL_MECHANISM", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"KAFKA_SASL_USERNAME", "", "SASL user name"},
		{"KAFKA_SASL_PASSWORD", "", "SASL password"},
		{"KAFKA_TLS", "false", "TLS to the brokers"},
		{"KAFKA_TLS_CA_FILE", "", "PEM bundle to verify brokers with"},
		{"REALTIME_TOPICS", "session-notifications=session-starting-soon,concept-notifications=concept-mastered", "consumed topics and their event names; per topic, where records name their recipients (;recipients=, ;strip=, ;value=)"},
		{"REALTIME_DLQ_TOPIC", "realtime-service.dlq", "dead-letter topic"},
		{"HTTP_ADDR", "127.0.0.1:3000", "listen address; :3000 for all interfaces"},
		{"HTTP_MAX_BODY_BYTES", "1048576", "larger request bodies get 413"},
		{"HTTP_SHUTDOWN_TIMEOUT", "10000", "ms, bound on graceful shutdown"},
		{"REALTIME_API_KEYS", "", "comma-separated API keys for the service API"},
		{"REALTIME_JWT_SECRET", "", "HS256/384/512 secret for client tokens"},
		{"REALTIME_JWT_PUBLIC_KEY_FILE", "", "PEM public key (RSA, EC, Ed25519) that verifies client tokens"},
		{"REALTIME_JWKS_URL", "", "identity provider's JWK Set URL; its keys verify client tokens by kid"},
		{"REALTIME_JWKS_REFRESH_INTERVAL", "300000", "ms between background JWK Set fetches"},
		{"REALTIME_JWKS_MIN_REFRESH_INTERVAL", "30000", "ms, least time between fetches caused by unknown kids"},
		{"REALTIME_JWKS_FETCH_TIMEOUT", "5000", "ms, one JWK Set fetch"},
		{"REALTIME_JWT_ISSUER", "", "required iss of client tokens; unset = not checked"},
		{"REALTIME_JWT_AUDIENCE", "", "required aud of client tokens; unset = not checked"},
		{"REALTIME_JWT_USER_CLAIM", "sub", "claim holding the user ID"},
		{"REALTIME_ALLOWED_ORIGINS", "", "browser origins allowed on the client endpoints, or *"},
		{"REALTIME_SEND_QUEUE_BYTES", "1048576", "per-connection send queue bound"},
		{"REALTIME_MAX_CONNECTIONS", "10000", "client connections a node holds, all transports, authenticated or not; past it 503 with Retry-After; 0 = no limit"},
		{"REALTIME_MAX_PENDING", "2000", "not-yet-authenticated sessions a node holds (Socket.IO before CONNECT); past it 503 with Retry-After; 0 = no limit"},
		{"REALTIME_MAX_PENDING_PER_ADDRESS", "64", "not-yet-authenticated sessions from one client address (IPv6: one /64); past it 429; 0 = no limit"},
		{"HTTP_TRUSTED_PROXIES", "", "CIDRs of proxies whose X-Forwarded-For names the client address; unset = the TCP peer is the client"},
		{"REALTIME_AUTH_TIMEOUT", "5000", "ms a Socket.IO session may wait for its client's CONNECT (authentication); then it is closed"},
		{"REALTIME_PREAUTH_MAX_MESSAGE_BYTES", "16384", "largest Socket.IO message (WebSocket message or polling POST body) before the CONNECT; past it close 1009 or 413"},
		{"REALTIME_MAX_MESSAGE_BYTES", "65536", "largest Socket.IO message after the CONNECT (the announced maxPayload); past it close 1009 or 413"},
		{"REALTIME_SOCKETIO_CURSOR_ARG", "true", "Socket.IO events carry the cursor as a trailing argument (socket.io-client's recovery needs it); false: exactly the payload, the cursor in a following cursor event; a client's CONNECT auth cursorArg overrides"},
		{"REALTIME_MAX_CONNECTIONS_PER_USER", "100", "live connections one user may hold on a node (all transports); past it 429; 0 = no limit"},
		{"REALTIME_PING_INTERVAL", "25000", "ms, ping and heartbeat interval"},
		{"REALTIME_PONG_TIMEOUT", "20000", "ms, silence allowed after a ping"},
		{"REALTIME_WRITE_TIMEOUT", "10000", "ms, one write to a client"},
		{"REALTIME_HISTORY_SIZE", "100", "recent events kept per user for fast resume"},
		{"REALTIME_HISTORY_TTL", "300000", "ms an event stays in that history"},
		{"REALTIME_HISTORY_MAX_BYTES", "67108864", "bound on that history's memory"},
		{"REALTIME_REPLAY_MAX_RECORDS", "100000", "records a resume may read from Kafka"},
		{"REALTIME_REPLAY_CONCURRENCY", "4", "resumes reading Kafka at a time, node-wide"},
		{"REALTIME_REPLAY_PER_USER", "1", "one user's resumes reading Kafka at a time"},
		{"REALTIME_REPLAY_QUEUE_PER_USER", "8", "one user's resumes waiting to read; more are refused"},
		{"LOG_LEVEL", "info", "debug, info, warn or error"},
		{"LOG_FORMAT", "text", "text or json"},
		{"DEBUG_ADDR", "", "listen address of net/http/pprof"},
	}
}
