package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/realtime"
	"github.com/realtime-service/realtime-service/internal/telemetry"
)

// tracing is how serve traces one notification from the HTTP call through Kafka to the
// connections (see package telemetry):
//
//	POST /v1/notifications/concept-mastered          otelhttp server span, named by route pattern
//	└─ concept-notifications publish                 kotel, producer; traceparent into the record headers
//	   └─ concept-notifications receive              kotel, consumer; parent read from the headers
//	      └─ concept-notifications fan-out           hub.Publish; realtime.deliveries = connections reached
//
// Its zero value (tracing off) adds no middleware, hook or span anywhere.
type tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	tracer     trace.Tracer // nil when tracing is off
}

// newTracing returns the tracing of telemetry.Setup's provider and propagator; off (the zero
// value) for its no-op provider.
func newTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) tracing {
	if !telemetry.Enabled(tp) {
		return tracing{}
	}
	return tracing{provider: tp, propagator: prop, tracer: tp.Tracer(telemetry.InstrumentationName)}
}

func (t tracing) on() bool { return t.tracer != nil }

// untraced are the paths that get no span: probes and scrapes (noise every few seconds) and the
// client transports, whose requests live as long as the connection (hours) or, for Socket.IO
// polling, come every few seconds; their deliveries are traced as fan-out spans instead.
var untraced = []string{"/health", "/metrics", "/v1/ws", "/v1/events", "/socket.io/"}

// handler wraps the API handler in an otelhttp server span per request, named by the route
// pattern that matched ("POST /v1/topics/{topic}/records"; the method alone when none did) and
// continuing the caller's trace from its traceparent header.
func (t tracing) handler(h http.Handler) http.Handler {
	if !t.on() {
		return h
	}
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return r.Method
		}),
		otelhttp.WithFilter(func(r *http.Request) bool {
			for _, p := range untraced {
				if r.URL.Path == p || strings.HasPrefix(r.URL.Path, strings.TrimSuffix(p, "/")+"/") {
					return false
				}
			}
			return true
		}),
	)
}

// clientOpts are the extra franz-go options of the API's producing client.
func (t tracing) clientOpts(cfg config.Kafka) []kgo.Opt {
	if !t.on() {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(telemetry.ProducerHook(t.provider, t.propagator, cfg.ClientID))}
}

// consumerOpts are the extra franz-go options of the consuming client.
func (t tracing) consumerOpts(cfg config.Kafka) []kgo.Opt {
	if !t.on() {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(telemetry.ConsumerHook(t.provider, t.propagator, cfg.ClientID, cfg.ConsumerGroup()))}
}

// traceDelivery wraps deliver (decode, then hub.Publish) in a "<topic> fan-out" span, a child of
// the receive span kotel put in rec.Context. The span carries the event, its ID, the users named
// and realtime.deliveries, the connections it was queued for (realtime.duplicate instead when
// it was dropped as a producer's retry); a record that fails to decode
// (and goes to the dead-letter topic) ends it with an error status.
func (t tracing) traceDelivery(deliver func(*kgo.Record) (*realtime.Event, error)) func(context.Context, *kgo.Record) error {
	return func(ctx context.Context, rec *kgo.Record) error {
		parent := rec.Context
		if parent == nil {
			parent = ctx
		}
		_, span := t.tracer.Start(parent, rec.Topic+" fan-out", trace.WithAttributes(
			attribute.String("messaging.destination.name", rec.Topic),
			attribute.Int("messaging.destination.partition.id", int(rec.Partition)),
			attribute.Int64("messaging.kafka.offset", rec.Offset),
		))
		defer span.End()
		ev, err := deliver(rec)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not delivered: poison (the dead-letter duty copies it)")
			return err
		}
		if ev == nil { // dropped: a producer's retry (package dedup)
			span.SetAttributes(attribute.Bool("realtime.duplicate", true))
			return nil
		}
		span.SetAttributes(
			attribute.String("realtime.event", ev.Name),
			attribute.String("realtime.event_id", ev.ID()),
			attribute.Int("realtime.users", len(ev.UserIDs)),
			attribute.Int("realtime.deliveries", ev.Delivered),
		)
		return nil
	}
}
