package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/realtime-service/realtime-service/internal/config"
)

// Problem is the problem+json body the API writes, for the OpenAPI test to compare its schema
// with.
type Problem = problem

// Routes returns the pattern of every route addRoutes adds for deps, in order.
func Routes(cfg config.Config, deps Deps) []string {
	var rec patternRecorder
	addRoutes(&rec, slog.New(slog.DiscardHandler), settingsFrom(cfg), deps, newMetrics(nil))
	return rec.patterns
}

type patternRecorder struct{ patterns []string }

func (p *patternRecorder) Handle(pattern string, _ http.Handler) {
	p.patterns = append(p.patterns, pattern)
}
