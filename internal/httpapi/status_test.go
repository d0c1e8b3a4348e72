package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/status"
)

// withStatus gives the test server a sampler of its own registry, with two samples a second
// apart (t0 and t0+1s) during which 5 records were handed off.
func withStatus(t0 time.Time) func(*config.Config, *httpapi.Deps) {
	return func(_ *config.Config, d *httpapi.Deps) {
		reg := prometheus.NewRegistry()
		records := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kafka_consumer_records_total"}, []string{"topic"})
		reg.MustRegister(records)
		errs := status.NewErrorLog(0)
		s := status.New(status.Config{Gatherer: reg, Node: "node-a", Errors: errs})
		s.Sample(t0)
		records.WithLabelValues("concept-notifications").Add(5)
		s.Sample(t0.Add(time.Second))
		slog.New(errs.Handler(slog.DiscardHandler)).Warn("fetch failed", "err", "broker down")
		d.Status = s
	}
}

func TestStatusEndpoint(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	s := newServer(t, withStatus(t0))

	// Without a key: 401 with the challenge, like the rest of the service API.
	w := s.serve(httptest.NewRequest(http.MethodGet, "/v1/status", nil))
	problemOf(t, w, http.StatusUnauthorized, "unauthorized")
	if w.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}

	w = s.serve(request(http.MethodGet, "/v1/status", ""))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/status: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var r status.Report
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Node != "node-a" || len(r.Samples) != 2 || r.Samples[1].NotificationsIn != 5 ||
		r.Totals.Notifications["concept-notifications"] != 5 || len(r.Errors) != 1 || r.Errors[0].Message != "fetch failed" {
		t.Errorf("report %s", w.Body)
	}

	// since: only the samples after it.
	w = s.serve(request(http.MethodGet, "/v1/status?since="+strconv.FormatInt(t0.UnixMilli(), 10), ""))
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || len(r.Samples) != 1 || r.Samples[0].Time != t0.Add(time.Second).UnixMilli() {
		t.Errorf("since t0: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{"yesterday", "-1", "1.5"} {
		w := s.serve(request(http.MethodGet, "/v1/status?since="+bad, ""))
		if p := problemOf(t, w, http.StatusBadRequest, "validation-error"); len(p.Errors) != 1 || p.Errors[0].Field != "since" {
			t.Errorf("since=%s: %+v", bad, p)
		}
	}
}

// The status page polls every second: its requests log at debug level, not one info line a second.
func TestStatusPollLogsAtDebug(t *testing.T) {
	s := newServer(t, withStatus(time.UnixMilli(1_700_000_000_000)))
	if w := s.serve(request(http.MethodGet, "/v1/status", "")); w.Code != http.StatusOK {
		t.Fatalf("GET /v1/status: %d", w.Code)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `route="GET /v1/status"`) || !strings.Contains(logs, "level=DEBUG") || strings.Contains(logs, "level=INFO") {
		t.Errorf("GET /v1/status logged %q, want one DEBUG line", logs)
	}
}

// Without a Status the route does not exist.
func TestStatusEndpointUnmounted(t *testing.T) {
	s := newServer(t)
	if w := s.serve(request(http.MethodGet, "/v1/status", "")); w.Code != http.StatusNotFound {
		t.Errorf("GET /v1/status without Deps.Status: %d, want 404", w.Code)
	}
}
