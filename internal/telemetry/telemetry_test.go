package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/realtime-service/realtime-service/internal/telemetry"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSetupOff(t *testing.T) {
	tests := map[string]map[string]string{
		"no endpoint":       {"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},
		"sdk disabled":      {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
		"exporter none":     {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"},
		"everything absent": {},
	}
	for name, vars := range tests {
		t.Run(name, func(t *testing.T) {
			tp, prop, shutdown, err := telemetry.Setup(t.Context(), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if telemetry.Enabled(tp) {
				t.Errorf("Enabled = true, want a no-op provider")
			}
			if f := prop.Fields(); len(f) != 0 {
				t.Errorf("propagator fields = %v, want none", f)
			}
			_, span := tp.Tracer("t").Start(t.Context(), "s")
			if span.IsRecording() || span.SpanContext().IsValid() {
				t.Errorf("span recording = %v, valid = %v; want a no-op span", span.IsRecording(), span.SpanContext().IsValid())
			}
			if err := shutdown(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSetupOn(t *testing.T) {
	tests := map[string]map[string]string{
		"base endpoint":   {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"traces endpoint": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/v1/traces"},
		"everything": {
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20def,x=y", "OTEL_SERVICE_NAME": "rt",
			"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.name=ignored",
			"OTEL_TRACES_SAMPLER":      "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5",
			"OTEL_PROPAGATORS": "tracecontext", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false",
		},
	}
	for name, vars := range tests {
		t.Run(name, func(t *testing.T) {
			tp, prop, shutdown, err := telemetry.Setup(t.Context(), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if !telemetry.Enabled(tp) {
				t.Fatal("Enabled = false, want an SDK provider")
			}
			if !strings.Contains(strings.Join(prop.Fields(), ","), "traceparent") {
				t.Errorf("propagator fields = %v, want traceparent", prop.Fields())
			}
			// Nothing listens on the collector address: shutting down must not fail for
			// spans that were never recorded, nor hang.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_ = shutdown(ctx)
		})
	}
}

func TestSetupErrors(t *testing.T) {
	base := "http://127.0.0.1:4318"
	tests := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/v1/traces"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_PROPAGATORS": "b3"}, "OTEL_PROPAGATORS"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_HEADERS": "=x"}, "OTEL_EXPORTER_OTLP_HEADERS"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, _, _, err := telemetry.Setup(t.Context(), env(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want+"=") {
				t.Errorf("err = %v, want one naming %s and its value", err, tc.want)
			}
		})
	}
}

// Every variable Setup reads is listed by Variables (the README and the manifests use the list).
func TestVariablesListsWhatSetupReads(t *testing.T) {
	listed := map[string]bool{}
	for _, v := range telemetry.Variables() {
		if !strings.HasPrefix(v.Name, "OTEL_") || v.Meaning == "" {
			t.Errorf("variable %+v: want an OTEL_ name and a meaning", v)
		}
		listed[v.Name] = true
	}
	read := map[string]bool{}
	getenv := func(k string) string {
		read[k] = true
		switch k {
		case "OTEL_EXPORTER_OTLP_ENDPOINT":
			return "http://127.0.0.1:4318"
		}
		return ""
	}
	if _, _, _, err := telemetry.Setup(t.Context(), getenv); err != nil {
		t.Fatal(err)
	}
	for k := range read {
		if !listed[k] && k != "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" {
			t.Errorf("Setup reads %s, which Variables does not list", k)
		}
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("node", "n1")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(t.Context(), "s")
	defer span.End()

	log.InfoContext(ctx, "with span")
	log.InfoContext(t.Context(), "without span")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log = %q, want 2 lines", buf.String())
	}
	var with, without map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &with); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &without); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if with["trace_id"] != sc.TraceID().String() || with["span_id"] != sc.SpanID().String() || with["node"] != "n1" {
		t.Errorf("record with a span = %v, want trace_id %s, span_id %s and node", with, sc.TraceID(), sc.SpanID())
	}
	if _, ok := without["trace_id"]; ok {
		t.Errorf("record without a span = %v, want no trace_id", without)
	}
}

// A record produced through ProducerHook carries a traceparent naming its publish span, and the
// receive span of ConsumerHook continues that trace; the consuming client's own produces (the
// dead-letter copies) are not traced, so their headers stay as given.
func TestKafkaHooks(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t", "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.TraceContext{}

	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.WithHooks(telemetry.ProducerHook(tp, prop, "p")))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, parent := tp.Tracer("t").Start(t.Context(), "http")
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	parent.End()

	cons, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.WithHooks(telemetry.ConsumerHook(tp, prop, "c", "g")))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fetches := cons.PollFetches(t.Context())
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	got := fetches.Records()
	if len(got) != 1 {
		t.Fatalf("consumed %d records, want 1", len(got))
	}
	var traceparent string
	for _, h := range got[0].Headers {
		if h.Key == "traceparent" {
			traceparent = string(h.Value)
		}
	}
	if !strings.Contains(traceparent, parent.SpanContext().TraceID().String()) {
		t.Errorf("traceparent header = %q, want one in trace %s", traceparent, parent.SpanContext().TraceID())
	}
	receive := trace.SpanContextFromContext(got[0].Context)
	if receive.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("record context trace = %s, want %s", receive.TraceID(), parent.SpanContext().TraceID())
	}

	dlq := &kgo.Record{Topic: "dlq", Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(traceparent)}}}
	if err := cons.ProduceSync(got[0].Context, dlq).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if len(dlq.Headers) != 1 || string(dlq.Headers[0].Value) != traceparent {
		t.Errorf("dead-letter headers = %v, want the original traceparent only", dlq.Headers)
	}

	names := map[string]trace.SpanContext{}
	for _, s := range rec.Ended() {
		names[s.Name()] = s.Parent()
	}
	if p, ok := names["t publish"]; !ok || p.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("spans %v: want \"t publish\" as a child of the http span", names)
	}
	if _, ok := names["t receive"]; !ok {
		t.Errorf("spans %v: want \"t receive\"", names)
	}
	if _, ok := names["dlq publish"]; ok {
		t.Errorf("spans %v: the consuming client's produce is traced", names)
	}
}

// docs/configuration.md's tracing table names exactly the variables of Variables.
func TestConfigurationDocTracingTable(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Tracing\n")
	if !ok {
		t.Fatal("docs/configuration.md has no Tracing section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	inDoc := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(strings.Split(line, "|")[1], -1) {
			inDoc[m[1]] = true
		}
	}
	for _, v := range telemetry.Variables() {
		if !inDoc[v.Name] {
			t.Errorf("docs/configuration.md's tracing table lacks %s: run go generate ./internal/config", v.Name)
		}
		delete(inDoc, v.Name)
	}
	for name := range inDoc {
		t.Errorf("docs/configuration.md's tracing table documents %s, which telemetry.Setup does not read", name)
	}
}
