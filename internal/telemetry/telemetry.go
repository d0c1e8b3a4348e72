// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_* environment variables,
// and offers the pieces main wires in: a slog.Handler that adds trace and span IDs to log
// records, and franz-go hooks (kotel) that trace produced and consumed records across Kafka.
//
// Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is
// set: Setup then returns a no-op provider, and main installs no tracing middleware or hook at
// all, so the hot path pays nothing. When it is on, spans are exported with OTLP over HTTP
// (protobuf) in batches. Variables lists what Setup reads.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name of the spans when OTEL_SERVICE_NAME is unset.
const DefaultServiceName = "realtime-service"

// InstrumentationName names the tracer of the service's own spans (the fan-out span).
const InstrumentationName = "github.com/realtime-service/realtime-service"

// Variable documents one OTEL_* variable Setup reads.
type Variable struct {
	Name    string
	Default string
	Meaning string
}

// Variables lists the OTEL_* variables Setup reads through its getenv, in the order of the tracing
// table of docs/configuration.md (go generate ./internal/config writes it from this list). The
// OTLP exporter reads the other OTEL_EXPORTER_OTLP_* variables (TIMEOUT, COMPRESSION,
// CERTIFICATE, ...) and the batch span processor OTEL_BSP_* from the process environment itself.
func Variables() []Variable {
	return []Variable{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "base URL of an OTLP/HTTP collector, e.g. http://otel-collector:4318; unset = tracing off"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", "full URL for traces (used as is); overrides the base URL"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "only http/protobuf is supported"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "", "k=v,... headers sent to the collector (e.g. an API key)"},
		{"OTEL_SERVICE_NAME", DefaultServiceName, "service.name of the spans"},
		{"OTEL_RESOURCE_ATTRIBUTES", "", "k=v,... extra resource attributes"},
		{"OTEL_TRACES_SAMPLER", "parentbased_always_on", "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"},
		{"OTEL_TRACES_SAMPLER_ARG", "1.0", "the ratio of the traceidratio samplers, 0..1"},
		{"OTEL_PROPAGATORS", "tracecontext,baggage", "tracecontext, baggage or none"},
		{"OTEL_TRACES_EXPORTER", "otlp", "otlp, or none to turn tracing off"},
		{"OTEL_SDK_DISABLED", "false", "true turns tracing off"},
	}
}

// Setup reads the OTEL_* variables through getenv (os.Getenv in production) and returns the
// tracer provider, the propagator and a shutdown function that flushes the spans still buffered
// (call it once, with a deadline, at exit). Tracing is off, and the provider a no-op one, the
// propagator empty and shutdown a no-op, unless an OTLP endpoint is set; OTEL_SDK_DISABLED=true
// and OTEL_TRACES_EXPORTER=none turn it off too. Setup does not connect: an unreachable collector
// shows up as export errors in the log, never as a failed start. Errors name the variable, its
// value and the expected form.
func Setup(ctx context.Context, getenv func(string) string) (trace.TracerProvider, propagation.TextMapPropagator, func(context.Context) error, error) {
	off := func() (trace.TracerProvider, propagation.TextMapPropagator, func(context.Context) error, error) {
		return noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator(), func(context.Context) error { return nil }, nil
	}
	endpoint, err := tracesEndpoint(getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	if endpoint == "" || strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return off()
	}
	switch e := getenv("OTEL_TRACES_EXPORTER"); e {
	case "", "otlp":
	case "none":
		return off()
	default:
		return nil, nil, nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: want otlp or none", e)
	}
	if p := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p != "" && p != "http/protobuf" {
		return nil, nil, nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=%q: want http/protobuf (the only protocol this build exports)", p)
	}
	if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
		return nil, nil, nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL=%q: want http/protobuf (the only protocol this build exports)", p)
	}
	sampler, err := samplerFrom(getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	prop, err := propagatorFrom(getenv("OTEL_PROPAGATORS"))
	if err != nil {
		return nil, nil, nil, err
	}
	res, err := resourceFrom(ctx, getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	headers, err := keyValues("OTEL_EXPORTER_OTLP_HEADERS", getenv("OTEL_EXPORTER_OTLP_HEADERS"))
	if err != nil {
		return nil, nil, nil, err
	}
	if len(headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("telemetry: OTLP exporter for %s: %w", endpoint, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	)
	return tp, prop, tp.Shutdown, nil
}

// Enabled reports whether tp records spans: false for the no-op provider of a Setup with tracing
// off (and for nil), so that main installs no tracing middleware or hook then.
func Enabled(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, off := tp.(noop.TracerProvider)
	return !off
}

// tracesEndpoint is the URL spans are sent to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else
// OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended (the OTLP exporter specification), else "".
func tracesEndpoint(getenv func(string) string) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	base := raw == ""
	if base {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("telemetry: %s=%q: want an http:// or https:// URL, e.g. http://otel-collector:4318", name, raw)
	}
	if base {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	return u.String(), nil
}

// samplerFrom reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on).
func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if a := getenv("OTEL_TRACES_SAMPLER_ARG"); a != "" {
		r, err := strconv.ParseFloat(a, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", a)
		}
		ratio = r
	}
	switch s := getenv("OTEL_TRACES_SAMPLER"); s {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	default:
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", s)
	}
}

// propagatorFrom reads OTEL_PROPAGATORS (default "tracecontext,baggage").
func propagatorFrom(v string) (propagation.TextMapPropagator, error) {
	if v == "" {
		v = "tracecontext,baggage"
	}
	var props []propagation.TextMapPropagator
	for name := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(name) {
		case "tracecontext":
			props = append(props, propagation.TraceContext{})
		case "baggage":
			props = append(props, propagation.Baggage{})
		case "none":
		default:
			return nil, fmt.Errorf("telemetry: OTEL_PROPAGATORS=%q: want a list of tracecontext, baggage or none", v)
		}
	}
	return propagation.NewCompositeTextMapPropagator(props...), nil
}

// resourceFrom describes this process: service.name from OTEL_SERVICE_NAME (default
// realtime-service, and it wins over a service.name in OTEL_RESOURCE_ATTRIBUTES), the attributes
// of OTEL_RESOURCE_ATTRIBUTES, and the SDK's own.
func resourceFrom(ctx context.Context, getenv func(string) string) (*resource.Resource, error) {
	extra, err := keyValues("OTEL_RESOURCE_ATTRIBUTES", getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, err
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = extra["service.name"]
	}
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	for k, v := range extra {
		if k != "service.name" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// keyValues parses the W3C-baggage-like "k1=v1,k2=v2" form of OTEL_RESOURCE_ATTRIBUTES and
// OTEL_EXPORTER_OTLP_HEADERS; values are percent-decoded.
func keyValues(name, v string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for pair := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("telemetry: %s=%q: want key=value pairs separated by commas", name, v)
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("telemetry: %s=%q: want percent-encoded values: %v", name, v, err)
		}
		out[k] = dec
	}
	return out, nil
}

// FlushTimeout bounds the flush of buffered spans at exit (the shutdown function of Setup, as
// main calls it after the service stopped): a deployment's termination grace period must cover
// HTTP_SHUTDOWN_TIMEOUT plus this.
const FlushTimeout = 5 * time.Second
