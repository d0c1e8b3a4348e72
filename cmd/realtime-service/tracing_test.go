package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/realtime-service/realtime-service/internal/config"
)

// startTracedService runs serve, with the embedded broker, tracing into exp.
func startTracedService(t *testing.T, exp sdktrace.SpanExporter) *service {
	t.Helper()
	vars := map[string]string{
		"HTTP_ADDR":             freeAddr(t),
		"KAFKA_EMBEDDED_ADDR":   freeAddr(t),
		"KAFKA_NODE_ID":         "test-tracing",
		"KAFKA_REQUEST_TIMEOUT": "5000",
		"REALTIME_JWT_SECRET":   testSecret,
		"REALTIME_API_KEYS":     testAPIKey,
		"HTTP_SHUTDOWN_TIMEOUT": "5000",
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := newTracing(tp, propagation.TraceContext{})
	if !tr.on() {
		t.Fatal("tracing is off with an SDK provider")
	}
	s := &service{t: t, URL: "http://" + vars["HTTP_ADDR"], Broker: vars["KAFKA_EMBEDDED_ADDR"], Logs: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	log := newLogger(config.Log{Level: "info", Format: "text"}, s.Logs)
	go func() { s.done <- serve(ctx, cfg, log, tr) }()
	t.Cleanup(s.Stop)
	s.waitReady()
	return s
}

// One POST, continuing the caller's trace, gives one trace: the HTTP server span, the produce
// (whose traceparent is in the record's headers), the consume and the fan-out to the connected
// client, each the child of the one before; the request's log line carries the trace ID.
func TestOneNotificationIsOneTraceFromHTTPToDelivery(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	s := startTracedService(t, exp)
	sse := openSSE(t, s, "alice", "")
	waitConnected(t, s, 1)

	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", s.URL+"/v1/notifications/concept-mastered",
		strings.NewReader(`{"conceptId":"js-arrays","userIds":["alice"],"conceptName":"JavaScript Arrays","masteryLevel":0.92}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", testAPIKey)
	req.Header.Set("traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pos produced
	err = json.NewDecoder(resp.Body).Decode(&pos)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("POST status %d (%v), want 201", resp.StatusCode, err)
	}
	if f := expectIDs(t, sse.frames, pos.ID); f.Event != "concept-mastered" {
		t.Fatalf("client got %+v, want the concept-mastered event", f)
	}

	byName := func() map[string]tracetest.SpanStub {
		out := map[string]tracetest.SpanStub{}
		for _, sp := range exp.GetSpans() {
			if sp.SpanContext.TraceID().String() == callerTrace {
				out[sp.Name] = sp
			}
		}
		return out
	}
	waitUntil(t, "the fan-out span", func() bool {
		_, ok := byName()["concept-notifications fan-out"]
		return ok
	})
	spans := byName()
	chain := []struct {
		name string
		kind trace.SpanKind
	}{
		{"POST /v1/notifications/concept-mastered", trace.SpanKindServer},
		{"concept-notifications publish", trace.SpanKindProducer},
		{"concept-notifications receive", trace.SpanKindConsumer},
		{"concept-notifications fan-out", trace.SpanKindInternal},
	}
	var parent trace.SpanContext
	for i, c := range chain {
		sp, ok := spans[c.name]
		if !ok {
			names := []string{}
			for n := range spans {
				names = append(names, n)
			}
			t.Fatalf("no span %q in trace %s; spans: %v", c.name, callerTrace, names)
		}
		if sp.SpanKind != c.kind {
			t.Errorf("%s: kind %v, want %v", c.name, sp.SpanKind, c.kind)
		}
		if i > 0 && sp.Parent.SpanID() != parent.SpanID() {
			t.Errorf("%s: parent %s, want %s (%s)", c.name, sp.Parent.SpanID(), parent.SpanID(), chain[i-1].name)
		}
		parent = sp.SpanContext
	}
	if got := attr(spans["concept-notifications fan-out"].Attributes, "realtime.deliveries"); got.AsInt64() != 1 {
		t.Errorf("fan-out realtime.deliveries = %v, want 1", got.Emit())
	}

	rec := readAt(t, s.Broker, pos.Topic, pos.Partition, pos.Offset)
	publish := spans["concept-notifications publish"].SpanContext
	want := "00-" + callerTrace + "-" + publish.SpanID().String() + "-01"
	var got string
	for _, h := range rec.Headers {
		if h.Key == "traceparent" {
			got = string(h.Value)
		}
	}
	if got != want {
		t.Errorf("record traceparent header = %q, want %q", got, want)
	}
	if !strings.Contains(s.Logs.String(), "trace_id="+callerTrace) {
		t.Errorf("no log line with trace_id=%s:\n%s", callerTrace, s.Logs)
	}
}

func attr(kvs []attribute.KeyValue, key string) attribute.Value {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, run exports spans over OTLP/HTTP: a collector stand-in
// receives the request's span (at the latest when the service stops and flushes).
func TestSpansReachTheOTLPEndpoint(t *testing.T) {
	var mu sync.Mutex
	var names []string
	traces := map[string]bool{}
	collectorSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collector.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					names = append(names, sp.Name)
					traces[hex.EncodeToString(sp.TraceId)] = true
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	defer collectorSrv.Close()

	s := startService(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collectorSrv.URL})
	sse := openSSE(t, s, "bob", "")
	waitConnected(t, s, 1)
	resp := s.do("POST", "/v1/notifications/concept-mastered",
		`{"conceptId":"c1","userIds":["bob"],"conceptName":"C","masteryLevel":0.5}`, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST status %d", resp.StatusCode)
	}
	// Delivered (past the opening cursor frame): every span of the trace has started.
	for next(t, sse.frames).Event == "cursor" {
	}
	s.Stop() // flushes the spans still batched

	mu.Lock()
	defer mu.Unlock()
	got := map[string]bool{}
	for _, n := range names {
		got[n] = true
	}
	for _, want := range []string{"POST /v1/notifications/concept-mastered", "concept-notifications publish", "concept-notifications receive", "concept-notifications fan-out"} {
		if !got[want] {
			t.Errorf("collector got spans %v, want %q among them", names, want)
		}
	}
	if len(traces) != 1 {
		t.Errorf("collector got %d traces, want the one of the POST", len(traces))
	}
}
