package telemetry

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ProducerHook returns the franz-go hook (kotel) of a producing client: every produced record
// gets a "<topic> publish" span, a child of the span in the record's context (the HTTP request's,
// as the API produces with the request's context), and that span's W3C traceparent (and
// baggage, per the propagator) in its headers, so that consumers continue the trace.
func ProducerHook(tp trace.TracerProvider, prop propagation.TextMapPropagator, clientID string) kgo.Hook {
	return kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(prop), kotel.ClientID(clientID))
}

// ConsumerHook returns the franz-go hook of the consuming client: every fetched record gets a
// "<topic> receive" span, a child of the producer's span read from its traceparent header (one
// trace from the HTTP call to the delivery), and carries it in kgo.Record.Context for the
// handler's own spans. It traces fetches only: the dead-letter copies the consuming client
// produces keep the original headers byte for byte, traceparent included, so a
// dead-letter consumer joins the original trace.
func ConsumerHook(tp trace.TracerProvider, prop propagation.TextMapPropagator, clientID, group string) kgo.Hook {
	return fetchHook{kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(prop),
		kotel.ClientID(clientID), kotel.ConsumerGroup(group))}
}

// fetchHook exposes only the fetch hooks of a kotel.Tracer.
type fetchHook struct{ t *kotel.Tracer }

var (
	_ kgo.HookFetchRecordBuffered   = fetchHook{}
	_ kgo.HookFetchRecordUnbuffered = fetchHook{}
)

func (h fetchHook) OnFetchRecordBuffered(r *kgo.Record) { h.t.OnFetchRecordBuffered(r) }

func (h fetchHook) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	h.t.OnFetchRecordUnbuffered(r, polled)
}
