package httpapi

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// topicJSON is a topic as the API shows it.
type topicJSON struct {
	Name              string `json:"name"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int16  `json:"replicationFactor"`
	Internal          bool   `json:"internal"`
}

// handleListTopics serves GET /v1/topics: every topic, internal ones included, sorted by name.
//
//	200 {"topics":[{"name":"session-notifications","partitions":3,"replicationFactor":1,"internal":false}]}
//	503 kafka-unavailable
func handleListTopics(log *slog.Logger, k Kafka, s settings) http.Handler {
	type response struct {
		Topics []topicJSON `json:"topics"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
		defer cancel()
		infos, err := k.ListTopics(ctx)
		if err != nil {
			writeError(w, r, log, err, "")
			return
		}
		resp := response{Topics: make([]topicJSON, 0, len(infos))}
		for _, t := range infos {
			resp.Topics = append(resp.Topics, topicJSON{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor, Internal: t.Internal})
		}
		slices.SortFunc(resp.Topics, func(a, b topicJSON) int { return cmp.Compare(a.Name, b.Name) })
		encode(w, r, http.StatusOK, resp)
	})
}

// handleDescribeTopic serves GET /v1/topics/{topic}: each partition's log start offset and end
// offset (the high watermark: the offset the next record will get), so that a producer or an
// operator can see records arrive.
//
//	200 {"name":"concept-notifications","partitions":[{"partition":0,"startOffset":0,"endOffset":42}]}
//	400 invalid-topic-name    403 internal-topic    404 topic-not-found    503 kafka-unavailable
func handleDescribeTopic(log *slog.Logger, k Kafka, s settings) http.Handler {
	type partition struct {
		Partition   int32 `json:"partition"`
		StartOffset int64 `json:"startOffset"`
		EndOffset   int64 `json:"endOffset"`
	}
	type response struct {
		Name       string      `json:"name"`
		Partitions []partition `json:"partitions"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topic := r.PathValue("topic")
		if p, bad := topicNameProblem("topic", topic); bad {
			writeProblem(w, r, p)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
		defer cancel()
		offsets, err := k.Offsets(ctx, []string{topic})
		if err != nil {
			writeError(w, r, log, err, topic)
			return
		}
		parts, ok := offsets[topic]
		if !ok {
			writeError(w, r, log, kafka.ErrTopicNotFound, topic)
			return
		}
		resp := response{Name: topic, Partitions: make([]partition, 0, len(parts))}
		for p, o := range parts {
			resp.Partitions = append(resp.Partitions, partition{Partition: p, StartOffset: o.Start, EndOffset: o.End})
		}
		slices.SortFunc(resp.Partitions, func(a, b partition) int { return cmp.Compare(a.Partition, b.Partition) })
		encode(w, r, http.StatusOK, resp)
	})
}

// handleCreateTopic serves POST /v1/topics:
//
//	{"name":"orders","partitions":3,"replicationFactor":1,"configs":{"retention.ms":"3600000"}}
//
// name is a legal Kafka topic name not starting with "__", partitions 1 to 10,000 (every partition
// costs memory on the brokers and in every consumer; the embedded broker keeps them all in memory),
// replicationFactor 1 to 32767 (Kafka checks it against the brokers it has), configs (optional)
// are topic configs as strings.
//
//	201 {"name":"orders","partitions":3,"replicationFactor":1,"internal":false}
//	400 validation-error | invalid-json, or kafka-rejected with Kafka's reason in "kafkaError"
//	    (e.g. {"code":"INVALID_REPLICATION_FACTOR","message":"..."})
//	403 internal-topic    409 topic-exists    413    415    503 kafka-unavailable
func handleCreateTopic(log *slog.Logger, v *notification.Validator, k Kafka, s settings) http.Handler {
	type request struct {
		Name              string            `json:"name" validate:"required"`
		Partitions        *int32            `json:"partitions" validate:"required,gte=1,lte=10000"`
		ReplicationFactor *int32            `json:"replicationFactor" validate:"required,gte=1,lte=32767"`
		Configs           map[string]string `json:"configs"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _, err := decodeValid[request](w, r, s, v)
		var fields []notification.FieldError
		if err != nil {
			var verr *notification.ValidationError
			if !errors.As(err, &verr) {
				writeError(w, r, log, err, "")
				return
			}
			fields = verr.Fields
		}
		if req.Name != "" && !validTopicName(req.Name) {
			fields = append(fields, topicNameFieldError("name"))
		}
		if fields != nil {
			writeProblem(w, r, validationProblem(fields))
			return
		}
		if pr, bad := topicNameProblem("name", req.Name); bad {
			writeProblem(w, r, pr)
			return
		}
		var configs map[string]*string
		if len(req.Configs) > 0 {
			configs = make(map[string]*string, len(req.Configs))
			for name, value := range req.Configs {
				configs[name] = &value
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
		defer cancel()
		rf := int16(*req.ReplicationFactor)
		if err := k.CreateTopic(ctx, req.Name, *req.Partitions, rf, configs); err != nil {
			writeError(w, r, log, err, req.Name)
			return
		}
		encode(w, r, http.StatusCreated, topicJSON{Name: req.Name, Partitions: *req.Partitions, ReplicationFactor: rf})
	})
}

// validTopicName is Kafka's rule for topic names (config.ValidTopic).
func validTopicName(name string) bool { return config.ValidTopic(name) }

// internalTopic reports whether name is one of Kafka's internal topics (__consumer_offsets,
// __transaction_state) or looks like one: their names start with "__".
func internalTopic(name string) bool { return strings.HasPrefix(name, "__") }

// topicNameFieldError says that field holds an illegal topic name.
func topicNameFieldError(field string) notification.FieldError {
	return notification.FieldError{
		Field:   field,
		Code:    "topic_name",
		Message: `must be 1 to 249 of a-z A-Z 0-9 . _ - and not "." or ".."`,
	}
}
