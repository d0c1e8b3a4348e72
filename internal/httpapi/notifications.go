package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

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
// Idempotency-Key, if any (see answers.idempotent). The answer comes once Kafka acknowledged it:
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
		body, data, err := decodeValid[T](w, r, s, v)
		if err != nil {
			if data != nil {
				p.rejected(1)
			}
			writeError(w, r, log, err, topic)
			return
		}
		var value bytes.Buffer
		_ = json.Compact(&value, data) // cannot fail: data was just decoded
		rec := &kgo.Record{
			Topic:   topic,
			Key:     []byte(P(&body).Key()),
			Value:   value.Bytes(),
			Headers: []kgo.RecordHeader{{Key: notification.HeaderEventType, Value: []byte(event)}},
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
