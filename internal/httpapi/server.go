// Package httpapi is realtime-service's HTTP surface: the service-to-service API that validates
// and produces records and manages topics, the health and metrics endpoints, and the mount points
// of the client transports and demo page that other packages provide. The contracts are those of
// docs/http-api.md and docs/design.md, "HTTP API"; routes.go lists every route.
//
// # Authentication
//
// /v1/notifications/*, /v1/topics* and /v1/status need one of config.HTTP.APIKeys, sent as
// "Authorization: Bearer <key>" (RFC 6750 §2.1) or "X-API-Key: <key>". A missing or unknown key
// gets 401 with "WWW-Authenticate: Bearer realm=\"realtime-service\"" (RFC 6750 §3). With no keys
// configured the API is open (config.Load allows that only with the embedded development broker).
// The client transport (/v1/ws, /v1/events, /socket.io/), development token and demo page
// routes need no key: clients authenticate with their own tokens. Neither does the status page
// (GET /status), which holds no data and sends the key the user gives it to /v1/status. Nor do the
// health and metrics routes, for load balancers and Prometheus; keep them off the public network
// if their details matter.
//
// # Requests
//
// Request bodies are JSON: a Content-Type other than application/json gets 415, a body larger
// than config.HTTP.MaxBodyBytes gets 413, and in either case nothing is produced. Unknown fields
// are errors. A produce is answered only after Kafka acknowledged the record (acks=all) or gave up,
// within config.Kafka.RequestTimeout; an unacknowledged record never gets a 2xx answer.
//
// # Responses
//
// Successful responses are application/json. Every error is application/problem+json (RFC 9457)
// with a stable "type" and "code" and a list of field errors; problem.go lists the types.
//
//	POST /v1/notifications/session-starting-soon   body: notification.SessionStartingSoon
//	POST /v1/notifications/concept-mastered        body: notification.ConceptMastered
//	  201 {"id":"<topic>:<partition>:<offset>","topic":"...","partition":0,"offset":12}
//	  400 validation-error | invalid-json    401    404 topic-not-found    413    415    503 kafka-unavailable
//
//	POST /v1/topics/{topic}/records   {"key"?,"value","headers"?} or {"records":[...]} (see handleProduceRecords)
//	  one record: 201 {"id","topic","partition","offset"}; 400, 403 internal-topic (a "__" topic or
//	  the dead-letter topic cfg.Kafka.DLQTopic), 404 topic-not-found, 413, 415, 503
//	  a batch:    201 | 207 {"results":[{"partition":0,"offset":12},{"error":{"code","message","errors"?}}]},
//	              or when every record failed the problem of the most severe cause, with "results"
//
//	GET  /v1/topics
//	  200 {"topics":[{"name":"...","partitions":3,"replicationFactor":1,"internal":false}]}
//	POST /v1/topics   {"name":"...","partitions":3,"replicationFactor":1,"configs":{"retention.ms":"3600000"}}
//	  201 {"name":"...","partitions":3,"replicationFactor":1,"internal":false}
//	  400 validation-error | invalid-json | kafka-rejected    403 internal-topic    409 topic-exists
//
//	GET /health        200 | 503 {"status":"ok|error","info":{},"error":{},"details":{...}} (NestJS Terminus)
//	GET /health/live   200 {"status":"ok","info":{},"error":{},"details":{}} while the process serves
//	GET /health/ready  200 when the required checks pass; 503 when not, or once shutdown began
//	GET /metrics       Prometheus text exposition of Deps.Gatherer
//	GET /openapi.json  200: the OpenAPI 3.1 document of this API (openapi.json)
//	GET /v1/status[?since=<Unix ms>]  200 status.Report: this node's last ten minutes (see handleStatus)
//	GET /status        the status page (Deps.Web), which asks for the API key and polls /v1/status
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

// Kafka is what the API needs of Kafka; *kafka.Client implements it.
type Kafka interface {
	// Produce sends recs and returns once every one was acknowledged or failed, with one error per
	// record in input order (nil when it was written; then its Partition and Offset are set).
	// Errors match kafka.ErrTopicNotFound, kafka.ErrUnavailable or *kafka.RequestError.
	Produce(ctx context.Context, recs ...*kgo.Record) []error
	// CreateTopic creates a topic; errors match kafka.ErrTopicExists, *kafka.RequestError (for
	// example INVALID_REPLICATION_FACTOR) or kafka.ErrUnavailable.
	CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, configs map[string]*string) error
	// ListTopics lists every topic, internal ones included.
	ListTopics(ctx context.Context) ([]kafka.TopicInfo, error)
	// Offsets returns the log start and end offsets of every partition of the topics; errors
	// match kafka.ErrTopicNotFound (a topic does not exist) or kafka.ErrUnavailable.
	Offsets(ctx context.Context, topics []string) (map[string]map[int32]kafka.PartitionOffsets, error)
}

// Deps are the server's collaborators. Kafka and Health are required; the rest may be nil.
type Deps struct {
	// Kafka produces records and manages topics.
	Kafka Kafka
	// Health answers GET /health, /health/live and /health/ready.
	Health *health.Checker
	// Gatherer is exposed on GET /metrics; nil leaves /metrics unmounted (404).
	Gatherer prometheus.Gatherer
	// Registerer receives the server's own metrics (see metrics.go); nil keeps them in a private
	// registry that nothing exposes. Registering on a Registerer that already holds them (a second
	// NewServer in one process) reuses them.
	Registerer prometheus.Registerer

	// Status serves GET /v1/status (behind the API key), the data of the status page; nil leaves
	// the route unmounted (404).
	Status Status

	// The handlers below come from other packages and are mounted only when non-nil. They are not
	// behind the API key: they authenticate their users themselves.

	// Users authenticates the users of WebSocket and SSE (required when either is set): the
	// HTTP layer refuses a missing or invalid token (401) and a foreign origin (403) before the
	// handler runs, and passes the claims on the request context.
	Users Users

	// WebSocket serves GET /v1/ws.
	WebSocket http.Handler
	// SSE serves GET /v1/events.
	SSE http.Handler
	// Presence answers GET /v1/users/{id}/presence and POST /v1/presence/query (behind the API
	// key); nil leaves both unmounted (404).
	Presence Presence
	// Receipts takes the read receipts of POST /v1/events/read (behind the client token); nil
	// leaves it unmounted (404).
	Receipts Receipts
	// SocketIO serves /socket.io/ (every method: Engine.IO polls with GET and POST).
	SocketIO http.Handler
	// Web serves the demo page: every GET or HEAD request that matches no route, "/" included,
	// and the status page, GET /status.
	// Its 404 answers are replaced by the API's 404 problem.
	Web http.Handler
	// DevToken serves GET /v1/dev/token; main sets it only in development mode
	// (config.Config.DevTokens). Nil: the route does not exist (404).
	DevToken http.Handler
}

// NewServer returns the service's HTTP handler: the routes of routes.go behind the middleware of
// middleware.go (panic recovery answering 500, one log line per request, request metrics), with
// problem+json answers for unknown routes (404) and wrong methods (405, with Allow).
//
// cfg.HTTP.MaxBodyBytes (zero: 1 MiB) caps request bodies, cfg.HTTP.APIKeys guard the service
// API, cfg.Kafka.RequestTimeout (zero: 25s) bounds a produce or topic request, cfg.Kafka.Topics
// picks the topic of each notification endpoint, and the records API refuses to write to
// cfg.Kafka.DLQTopic (zero: "realtime-service.dlq"). A nil log discards the logs. The server's own
// metrics (http_requests_total, http_request_duration_seconds, kafka_produce_duration_seconds,
// http_produced_records_total) are described in metrics.go. NewServer panics if deps.Kafka or deps.Health is
// nil, or if deps.Registerer holds a different metric under one of the server's metric names: those
// are wiring mistakes, found at start-up.
func NewServer(log *slog.Logger, cfg config.Config, deps Deps) http.Handler {
	if deps.Kafka == nil || deps.Health == nil {
		panic("httpapi: NewServer needs deps.Kafka and deps.Health")
	}
	if (deps.WebSocket != nil || deps.SSE != nil) && deps.Users == nil {
		panic("httpapi: NewServer needs deps.Users to guard deps.WebSocket and deps.SSE")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(deps.Registerer)
	mux := http.NewServeMux()
	s := settingsFrom(cfg)
	addRoutes(mux, log, s, deps, m)
	var h http.Handler = fallback(mux, deps.Web)
	h = boundBody(s.requestTimeout, h)
	h = recoverPanics(log, h)
	h = logRequests(log, m, h)
	return h
}

// settings are the parts of config.Config the handlers use, with zero values filled in.
type settings struct {
	maxBodyBytes   int64
	requestTimeout time.Duration
	apiKeys        []string
	topics         []config.TopicEvent
	origins        []string
	dlqTopic       string // the dead-letter topic: the records API does not write to it

	idempotencyWindow    time.Duration // how long a first answer is kept for a retry
	idempotencyCacheSize int           // how many first answers are kept

	internalTopics   []string // presence and receipts topics: the records API does not write to them
	presenceMaxUsers int      // user IDs per presence query
	readMaxIDs       int      // event IDs per POST /v1/events/read
}

// Defaults for zero fields of config.Config; they equal config.Load's defaults.
const (
	defaultMaxBodyBytes   = 1 << 20
	defaultRequestTimeout = 25 * time.Second
	defaultDLQTopic       = "realtime-service.dlq"
)

func settingsFrom(cfg config.Config) settings {
	s := settings{
		maxBodyBytes:   cfg.HTTP.MaxBodyBytes,
		requestTimeout: cfg.Kafka.RequestTimeout,
		apiKeys:        cfg.HTTP.APIKeys,
		topics:         cfg.Kafka.Topics,
		origins:        cfg.Realtime.AllowedOrigins,
		dlqTopic:       cfg.Kafka.DLQTopic,

		idempotencyWindow:    cfg.Realtime.IdempotencyWindow,
		idempotencyCacheSize: cfg.HTTP.IdempotencyCacheSize,

		presenceMaxUsers: cfg.Realtime.PresenceQueryMaxUsers,
		readMaxIDs:       cfg.Realtime.ReadMaxIDs,
	}
	for _, t := range []string{cfg.Kafka.PresenceTopic, cfg.Kafka.ReceiptsTopic} {
		if t != "" {
			s.internalTopics = append(s.internalTopics, t)
		}
	}
	if s.presenceMaxUsers <= 0 {
		s.presenceMaxUsers = 1000
	}
	if s.readMaxIDs <= 0 {
		s.readMaxIDs = 100
	}
	if s.idempotencyCacheSize <= 0 {
		s.idempotencyCacheSize = 10000
	}
	if s.idempotencyWindow <= 0 {
		s.idempotencyWindow = 5 * time.Minute
	}
	if s.maxBodyBytes <= 0 {
		s.maxBodyBytes = defaultMaxBodyBytes
	}
	if s.requestTimeout <= 0 {
		s.requestTimeout = defaultRequestTimeout
	}
	if s.dlqTopic == "" {
		s.dlqTopic = defaultDLQTopic
	}
	return s
}
