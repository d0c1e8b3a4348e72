package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/dedup"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// keyed is a pointer to an event type that names its record key.
type keyed[T any] interface {
	*T
	Key() string
}

// handleNotification serves POST /v1/notifications/<event> for the event type T
// (notification.SessionStartingSoon or notification.ConceptMastered).
//
// The body is decoded strictly (unknown fields are errors) and validated by the rules of T. A
// valid body becomes one record on the topic that carries event (see topicFor): key = T's Key()
// (sessionId or conceptId, so records of one session or concept keep their order), value = the
// body as compact JSON, header event-type = event, and header idempotency-key = the request's
// Idempotency-Key, if any (see answers.idempotent). The body's optional delivery members
// (see deliveryOptions: expiresAt, ttlMs, collapseKey) become the record headers expires-at,
// ttl-ms and collapse-key instead of staying in the value. The answer comes once Kafka
// acknowledged it:
//
//	201 {"id":"<topic>:<partition>:<offset>","topic":"...","partition":0,"offset":12}
//	400 validation-error (every failing field) or invalid-json; 404 topic-not-found (the topic is
//	missing: it is not created); 409 topic-shape-mismatch (the topic is consumed with recipients
//	outside "userIds", so the record would reach the wrong users or none); 413; 415; 503
//	kafka-unavailable
func handleNotification[T any, P keyed[T]](log *slog.Logger, v *notification.Validator, p producer, s settings, event string) http.Handler {
	topic := topicFor(s.topics, event)
	shaped := slices.ContainsFunc(s.topics, func(t config.TopicEvent) bool { return t.Topic == topic && !t.Shape.ReadsUserIDs() })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if shaped {
			writeProblem(w, r, newProblem(codeTopicShape, fmt.Sprintf("The topic %q is consumed with its recipients outside userIds (REALTIME_TOPICS); "+
				"this endpoint writes userIds records: produce to it with POST /v1/topics/%s/records, or map %s to a topic that reads userIds.", topic, topic, event)))
			return
		}
		body, value, opts, err := decodeNotification[T](w, r, s, v)
		if err != nil {
			if value != nil {
				p.rejected(1)
			}
			writeError(w, r, log, err, topic)
			return
		}
		rec := &kgo.Record{
			Topic:   topic,
			Key:     []byte(P(&body).Key()),
			Value:   value,
			Headers: append([]kgo.RecordHeader{{Key: notification.HeaderEventType, Value: []byte(event)}}, opts.headers()...),
		}
		if k := idempotencyKey(r); k != "" {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: dedup.Header, Value: []byte(k)})
		}
		if err := p.produce(r.Context(), event, []*kgo.Record{rec})[0]; err != nil {
			writeError(w, r, log, err, topic)
			return
		}
		encode(w, r, http.StatusCreated, positionOf(rec))
	})
}

// deliveryOptions are the optional members of a notification request that bound its delivery
// (docs/design.md, "Delivery semantics: expiry and collapse"). They go into record headers, not
// the record value.
type deliveryOptions struct {
	// ExpiresAt is an RFC 3339 date-time from which the notification is no longer delivered.
	ExpiresAt *string `json:"expiresAt" validate:"omitnil,rfc3339"`
	// TTLMs is how many milliseconds after the record's timestamp it is no longer delivered,
	// 0 to notification.MaxTTLMs; with ExpiresAt too, the earlier wins.
	TTLMs *int64 `json:"ttlMs" validate:"omitnil,gte=0,lte=9223372036854"`
	// CollapseKey makes a resume replay only the newest notification of that key: 1 to 256
	// bytes of UTF-8.
	CollapseKey *string `json:"collapseKey" validate:"omitnil,collapsekey"`
}

// deliveryMembers are the JSON names of deliveryOptions.
var deliveryMembers = []string{"expiresAt", "ttlMs", "collapseKey"}

// headers returns the record headers of o (notification.HeaderExpiresAt and the others).
func (o deliveryOptions) headers() []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	if o.ExpiresAt != nil {
		hs = append(hs, kgo.RecordHeader{Key: notification.HeaderExpiresAt, Value: []byte(*o.ExpiresAt)})
	}
	if o.TTLMs != nil {
		hs = append(hs, kgo.RecordHeader{Key: notification.HeaderTTLMs, Value: strconv.AppendInt(nil, *o.TTLMs, 10)})
	}
	if o.CollapseKey != nil {
		hs = append(hs, kgo.RecordHeader{Key: notification.HeaderCollapseKey, Value: []byte(*o.CollapseKey)})
	}
	return hs
}

// decodeNotification is decodeValid for a notification request: it reads the body, takes out
// its delivery members (deliveryOptions, validated) and decodes the rest strictly into a T. It
// returns the T, the record value (the rest, compact; nil when the body could not be read) and
// the options. The error is one of readBody's or a *notification.ValidationError listing every
// failing field of both parts.
func decodeNotification[T any](w http.ResponseWriter, r *http.Request, s settings, v *notification.Validator) (T, []byte, deliveryOptions, error) {
	var t T
	var opts deliveryOptions
	data, err := readBody(w, r, s.maxBodyBytes, s.requestTimeout)
	if err != nil {
		return t, nil, opts, err
	}
	oerr := v.DecodeJSON(data, &opts, false)
	var verr *notification.ValidationError
	if errors.As(oerr, &verr) && slices.ContainsFunc(verr.Fields, func(f notification.FieldError) bool { return f.Field == "" }) {
		return t, data, opts, oerr // not JSON, or not an object: nothing more to say
	}
	var value bytes.Buffer
	_ = json.Compact(&value, data) // cannot fail: data was just decoded
	rest := notification.WithoutMembers(value.Bytes(), deliveryMembers...)
	terr := v.DecodeJSON(rest, &t, true)
	if oerr == nil && terr == nil {
		return t, rest, opts, nil
	}
	var fields []notification.FieldError
	for _, err := range []error{terr, oerr} {
		if err != nil {
			fields = append(fields, fieldsOf(err)...)
		}
	}
	return t, rest, opts, &notification.ValidationError{Fields: fields}
}

// topicFor is the topic that carries event: the first of topics whose Event it is and whose
// records name their recipients in "userIds" (REALTIME_TOPICS), else its default
// (docs/design.md, "Topics and records").
func topicFor(topics []config.TopicEvent, event string) string {
	for _, t := range topics {
		if t.Event == event && t.Shape.ReadsUserIDs() {
			return t.Topic
		}
	}
	switch event {
	case notification.EventSessionStartingSoon:
		return notification.TopicSessions
	case notification.EventConceptMastered:
		return notification.TopicConcepts
	}
	return event
}
