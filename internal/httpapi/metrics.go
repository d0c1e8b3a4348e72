package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics. Label values are bounded: route is the ServeMux
// pattern that matched (never the raw path), or "unmatched"; method is a standard method or
// "OTHER".
//
//	http_requests_total{route,method,status}     counter: answered requests
//	http_request_duration_seconds{route}         histogram: time to answer, seconds (for /v1/ws,
//	                                             /v1/events and /socket.io/: the connection's lifetime)
//	kafka_produce_duration_seconds{endpoint}     histogram: time Produce took, seconds; endpoint is
//	                                             session-starting-soon, concept-mastered or records
//	http_produced_records_total{result}          counter: records the API was asked to produce;
//	                                             result is produced, invalid (not sent) or failed
//	http_idempotent_requests_total{result}       counter: produce requests with an Idempotency-Key;
//	                                             result is first, replayed, mismatch or in-progress
//	http_idempotency_cache_evictions_total       counter: first answers forgotten before their
//	                                             window ended (HTTP_IDEMPOTENCY_CACHE_SIZE)
//	http_presence_queries_refused_total          counter: presence queries over
//	                                             REALTIME_PRESENCE_QUERY_MAX_USERS (400)
//	http_read_receipts_refused_total             counter: POST /v1/events/read over
//	                                             REALTIME_READ_MAX_IDS (400)
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	produceDuration *prometheus.HistogramVec
	records         *prometheus.CounterVec

	idempotent           *prometheus.CounterVec
	idempotencyEvictions prometheus.Counter

	presenceRefused prometheus.Counter
	readRefused     prometheus.Counter
}

// Values of the result label of http_produced_records_total.
const (
	resultProduced = "produced"
	resultInvalid  = "invalid"
	resultFailed   = "failed"
)

// routeUnmatched labels requests that matched no route.
const routeUnmatched = "unmatched"

// newMetrics registers the metrics on reg (a private registry when reg is nil). Metrics that reg
// already holds, from an earlier newMetrics, are reused; any other registration error panics.
func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "status"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern, in seconds.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"})),
		produceDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kafka_produce_duration_seconds",
			Help:    "Time the HTTP API waited for Kafka to acknowledge a produce, by endpoint, in seconds.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"})),
		records: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_produced_records_total",
			Help: "Records the HTTP API was asked to produce, by result: produced, invalid (not sent) or failed.",
		}, []string{"result"})),
		idempotent: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_idempotent_requests_total",
			Help: "Produce requests with an Idempotency-Key header, by result: first, replayed (the first answer again), mismatch (422) or in-progress (409).",
		}, []string{"result"})),
		idempotencyEvictions: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "http_idempotency_cache_evictions_total",
			Help: "First answers to Idempotency-Key requests forgotten before their window ended, HTTP_IDEMPOTENCY_CACHE_SIZE being reached.",
		})),
		presenceRefused: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "http_presence_queries_refused_total",
			Help: "POST /v1/presence/query requests refused (400) for asking about more than REALTIME_PRESENCE_QUERY_MAX_USERS users.",
		})),
		readRefused: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "http_read_receipts_refused_total",
			Help: "POST /v1/events/read requests refused (400) for carrying more than REALTIME_READ_MAX_IDS event IDs.",
		})),
	}
	for _, r := range []string{resultProduced, resultInvalid, resultFailed} {
		m.records.WithLabelValues(r) // export zeros, so rates work from the start
	}
	return m
}

// register registers c on reg, or returns the equal collector reg already has.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("httpapi: register metrics: %v", err))
}

// observeRequest counts one answered request.
func (m *metrics) observeRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel bounds the method label: clients may send any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// handleMetrics serves g in the Prometheus exposition format; nil g gives a nil handler (not mounted).
func handleMetrics(g prometheus.Gatherer) http.Handler {
	if g == nil {
		return nil
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
