package httpapi

import (
	"net/http"

	"github.com/realtime-service/realtime-service/internal/health"
)

// handleHealth serves GET /health: every check in the NestJS Terminus shape, 200 when all are up
// and 503 otherwise (see package health).
func handleHealth(c *health.Checker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, r, c.Check(r.Context()))
	})
}

// handleLive serves GET /health/live: 200 {"status":"ok",...} while the process serves, also
// while it drains.
func handleLive(c *health.Checker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, r, c.Live())
	})
}

// handleReady serves GET /health/ready: 200 when the required checks pass, 503 when one fails or
// once shutdown has begun, so that load balancers drain the node.
func handleReady(c *health.Checker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, r, c.Ready(r.Context()))
	})
}

// writeHealth answers with res: 200 when it is ok, else 503; never cached.
func writeHealth(w http.ResponseWriter, r *http.Request, res health.Result) {
	status := http.StatusOK
	if !res.OK() {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	encode(w, r, status, res)
}
