package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

func TestMetrics(t *testing.T) {
	s := newServer(t)
	s.kafka.produceErr = failValues(kafka.ErrUnavailable, "3")
	s.post(conceptPath, validConcept)                                                        // 201
	s.post(conceptPath, `{}`)                                                                // 400, one invalid
	s.post("/v1/topics/orders/records", `{"records":[{"value":1},{"value":3},{"key":"k"}]}`) // 207
	s.post("/v1/topics/payments/records", `{"value":1}`)                                     // 201
	s.serve(httptest.NewRequest(http.MethodGet, "/no/such/page", nil))                       // 404
	s.serve(httptest.NewRequest("BREW", "/v1/topics", nil))                                  // 405

	w := s.serve(httptest.NewRequest(http.MethodGet, "/metrics", nil)) // no API key needed
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`http_requests_total{method="POST",route="POST /v1/notifications/concept-mastered",status="201"} 1`,
		`http_requests_total{method="POST",route="POST /v1/notifications/concept-mastered",status="400"} 1`,
		`http_requests_total{method="POST",route="POST /v1/topics/{topic}/records",status="207"} 1`,
		`http_requests_total{method="POST",route="POST /v1/topics/{topic}/records",status="201"} 1`,
		`http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`http_requests_total{method="OTHER",route="unmatched",status="405"} 1`,
		`http_request_duration_seconds_count{route="POST /v1/topics/{topic}/records"} 2`,
		`kafka_produce_duration_seconds_count{endpoint="concept-mastered"} 1`,
		`kafka_produce_duration_seconds_count{endpoint="records"} 2`,
		`http_produced_records_total{result="produced"} 3`,
		`http_produced_records_total{result="invalid"} 2`,
		`http_produced_records_total{result="failed"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, raw := range []string{"/v1/topics/orders", "/v1/topics/payments", "/no/such/page"} {
		if strings.Contains(body, raw) {
			t.Errorf("/metrics has the raw path %s as a label", raw)
		}
	}
}

// TestMetricsUnmatchedWithDemoPage: with the demo page mounted, an unknown path (which the page's
// handler is asked for and answers 404) counts as unmatched, not as the page's route "GET /".
func TestMetricsUnmatchedWithDemoPage(t *testing.T) {
	s := newServer(t, withClients)
	s.serve(httptest.NewRequest(http.MethodGet, "/", nil))             // the page: 200
	s.serve(httptest.NewRequest(http.MethodGet, "/no/such/page", nil)) // 404
	body := s.serve(httptest.NewRequest(http.MethodGet, "/metrics", nil)).Body.String()
	for _, want := range []string{
		`http_requests_total{method="GET",route="GET /",status="200"} 1`,
		`http_requests_total{method="GET",route="unmatched",status="404"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, `route="GET /",status="404"`) {
		t.Error(`/metrics counts an unknown path as the demo page's route "GET /"`)
	}
}

func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	deps := httpapi.Deps{Kafka: &fakeKafka{}, Health: health.New(0), Gatherer: reg, Registerer: reg}
	a := httpapi.NewServer(nil, testConfig(), deps)
	b := httpapi.NewServer(nil, testConfig(), deps) // must not panic: the metrics are reused
	for _, h := range []http.Handler{a, b} {
		h.ServeHTTP(httptest.NewRecorder(), request(http.MethodPost, conceptPath, validConcept))
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := `http_produced_records_total{result="produced"} 2`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestMetricsNotMountedWithoutGatherer(t *testing.T) {
	s := newServer(t, func(_ *config.Config, d *httpapi.Deps) { d.Gatherer, d.Registerer = nil, nil })
	problemOf(t, s.serve(httptest.NewRequest(http.MethodGet, "/metrics", nil)), http.StatusNotFound, "not-found")
	// The server still works with its metrics in a private registry.
	if w := s.post(conceptPath, validConcept); w.Code != http.StatusCreated {
		t.Errorf("status = %d", w.Code)
	}
}
