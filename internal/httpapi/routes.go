package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// router is what routes are added to: an *http.ServeMux (tests record the patterns instead).
type router interface {
	Handle(pattern string, handler http.Handler)
}

// addRoutes is the whole HTTP surface, one line per route (ServeMux patterns, Go 1.22+), each
// described in openapi.json. Besides these, deps.Web answers GET and HEAD requests that match
// no route (see fallback), and every other unmatched request gets a 404 or 405 problem.
func addRoutes(mux router, log *slog.Logger, s settings, deps Deps, m *metrics) {
	v := notification.NewValidator()
	p := producer{kafka: deps.Kafka, timeout: s.requestTimeout, metrics: m, log: log}
	key := requireAPIKey(s.apiKeys)
	once := newAnswers(s.idempotencyCacheSize, s.idempotencyWindow, m)
	idem := func(h http.Handler) http.Handler { return once.idempotent(log, s, h) }

	mux.Handle("POST /v1/notifications/session-starting-soon", key(idem(handleNotification[notification.SessionStartingSoon](log, v, p, s, notification.EventSessionStartingSoon))))
	mux.Handle("POST /v1/notifications/concept-mastered", key(idem(handleNotification[notification.ConceptMastered](log, v, p, s, notification.EventConceptMastered))))
	mux.Handle("POST /v1/topics/{topic}/records", key(idem(handleProduceRecords(log, v, p, s))))
	mux.Handle("GET /v1/topics", key(handleListTopics(log, deps.Kafka, s)))
	mux.Handle("GET /v1/topics/{topic}", key(handleDescribeTopic(log, deps.Kafka, s)))
	mux.Handle("POST /v1/topics", key(handleCreateTopic(log, v, deps.Kafka, s)))

	if deps.Presence != nil {
		mux.Handle("GET /v1/users/{id}/presence", key(handleUserPresence(deps.Presence)))
		mux.Handle("POST /v1/presence/query", key(handlePresenceQuery(log, deps.Presence, s, m)))
	}

	mux.Handle("GET /health", handleHealth(deps.Health))
	mux.Handle("GET /health/live", handleLive(deps.Health))
	mux.Handle("GET /health/ready", handleReady(deps.Health))
	mountIf(mux, "GET /metrics", handleMetrics(deps.Gatherer))
	mux.Handle("GET /openapi.json", handleOpenAPI())
	mountIf(mux, "GET /v1/status", guard(key, handleStatus(deps.Status)))
	mountIf(mux, "GET /status", deps.Web) // the status page (package web), which reads GET /v1/status

	user := requireUser(deps.Users, s.origins)
	mountIf(mux, "GET /v1/ws", guard(user, deps.WebSocket))
	mountIf(mux, "GET /v1/events", guard(user, deps.SSE))
	if deps.Receipts != nil {
		mux.Handle("POST /v1/events/read", user(handleRead(log, deps.Receipts, s, m)))
	}
	mountIf(mux, socketIORoute, deps.SocketIO)
	mountIf(mux, "GET /v1/dev/token", deps.DevToken)
}

// guard wraps h in mw unless h is nil.
func guard(mw func(http.Handler) http.Handler, h http.Handler) http.Handler {
	if h == nil {
		return nil
	}
	return mw(h)
}

// mountIf registers h for pattern unless h is nil.
func mountIf(mux router, pattern string, h http.Handler) {
	if h != nil {
		mux.Handle(pattern, h)
	}
}
