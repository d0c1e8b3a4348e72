package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
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
// body as compact JSON, header event-type = event. The answer comes once Kafka acknowledged it:
//
//	201 {"id":"<topic>:<partition>:<offset>","topic":"...","partition":0,"offset":12}
//	400 validation-error (every failing field) or invalid-json; 404 topic-not-found (the topic is
//	missing: it is not created); 413; 415; 503 kafka-unavailable
func handleNotification[T any, P keyed[T]](log *slog.Logger, v *notification.Validator, p producer, s settings, event string) http.Handler {
	topic := topicFor(s.topics, event)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		if err := p.produce(r.Context(), event, []*kgo.Record{rec})[0]; err != nil {
			writeError(w, r, log, err, topic)
			return
		}
		encode(w, r, http.StatusCreated, positionOf(rec))
	})
}

// topicFor is the topic that carries event: the first of topics whose Event it is (REALTIME_TOPICS),
// else its default (docs/design.md, "Topics and records").
func topicFor(topics []config.TopicEvent, event string) string {
	for _, t := range topics {
		if t.Event == event {
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
