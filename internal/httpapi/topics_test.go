package httpapi_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/realtime-service/realtime-service/internal/kafka"
)

func TestListTopics(t *testing.T) {
	s := newServer(t)
	s.kafka.topics = []kafka.TopicInfo{
		{Name: "session-notifications", Partitions: 3, ReplicationFactor: 3},
		{Name: "__consumer_offsets", Partitions: 50, ReplicationFactor: 3, Internal: true},
		{Name: "concept-notifications", Partitions: 6, ReplicationFactor: 2},
	}
	w := s.serve(request(http.MethodGet, "/v1/topics", ""))
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	want := `{"topics":[
		{"name":"__consumer_offsets","partitions":50,"replicationFactor":3,"internal":true},
		{"name":"concept-notifications","partitions":6,"replicationFactor":2,"internal":false},
		{"name":"session-notifications","partitions":3,"replicationFactor":3,"internal":false}]}`
	if !jsonEqual(t, w.Body.Bytes(), want) {
		t.Errorf("body = %s, want %s", w.Body, want)
	}

	s.kafka.topics = nil
	if w := s.serve(request(http.MethodGet, "/v1/topics", "")); !jsonEqual(t, w.Body.Bytes(), `{"topics":[]}`) {
		t.Errorf("no topics: body = %s, want an empty list", w.Body)
	}

	s.kafka.listErr = fmt.Errorf("list topics: %w", kafka.ErrUnavailable)
	problemOf(t, s.serve(request(http.MethodGet, "/v1/topics", "")), http.StatusServiceUnavailable, "kafka-unavailable")
}

func TestCreateTopic(t *testing.T) {
	s := newServer(t)
	w := s.post("/v1/topics", `{"name":"orders","partitions":6,"replicationFactor":3,"configs":{"retention.ms":"3600000","cleanup.policy":"compact"}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	if want := `{"name":"orders","partitions":6,"replicationFactor":3,"internal":false}`; !jsonEqual(t, w.Body.Bytes(), want) {
		t.Errorf("body = %s, want %s", w.Body, want)
	}
	if len(s.kafka.created) != 1 {
		t.Fatalf("CreateTopic called %d times", len(s.kafka.created))
	}
	c := s.kafka.created[0]
	wantConfigs := map[string]string{"retention.ms": "3600000", "cleanup.policy": "compact"}
	if c.Name != "orders" || c.Partitions != 6 || c.ReplicationFactor != 3 || !maps.Equal(c.Configs, wantConfigs) {
		t.Errorf("CreateTopic(%+v), want orders 6 3 %v", c, wantConfigs)
	}

	s.post("/v1/topics", `{"name":"plain","partitions":1,"replicationFactor":1}`)
	if c := s.kafka.created[1]; c.Configs != nil {
		t.Errorf("configs = %v, want nil when none are given", c.Configs)
	}
	// The dead-letter topic may be created (its own partitions and retention), not produced to.
	if w := s.post("/v1/topics", `{"name":"realtime-service.dlq","partitions":1,"replicationFactor":1}`); w.Code != http.StatusCreated {
		t.Errorf("creating the dead-letter topic: %d %s", w.Code, w.Body)
	}
	s.post("/v1/topics", `{"name":"__transaction_state","partitions":1,"replicationFactor":1}`)
	if n := len(s.kafka.created); n != 3 {
		t.Errorf("CreateTopic called %d times, want 3 (never for __transaction_state)", n)
	}
}

func TestCreateTopicFails(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		err       error
		status    int
		code      string
		fields    []string
		kafkaCode string
		called    bool
	}{
		{name: "exists", body: `{"name":"orders","partitions":1,"replicationFactor":1}`,
			err: fmt.Errorf("create topic orders: %w", kafka.ErrTopicExists), status: http.StatusConflict, code: "topic-exists", called: true},
		{name: "replication factor above the broker count", body: `{"name":"orders","partitions":1,"replicationFactor":3}`,
			err:    fmt.Errorf("create topic orders: %w", &kafka.RequestError{Code: "INVALID_REPLICATION_FACTOR", Message: "Replication factor: 3 larger than available brokers: 1."}),
			status: http.StatusBadRequest, code: "kafka-rejected", kafkaCode: "INVALID_REPLICATION_FACTOR", called: true},
		{name: "partitions refused", body: `{"name":"orders","partitions":5000,"replicationFactor":1}`,
			err:    &kafka.RequestError{Code: "INVALID_PARTITIONS", Message: "too many"},
			status: http.StatusBadRequest, code: "kafka-rejected", kafkaCode: "INVALID_PARTITIONS", called: true},
		{name: "unavailable", body: `{"name":"orders","partitions":1,"replicationFactor":1}`,
			err: fmt.Errorf("create topic orders: %w", kafka.ErrUnavailable), status: http.StatusServiceUnavailable, code: "kafka-unavailable", called: true},
		{name: "empty body", body: `{}`, status: http.StatusBadRequest, code: "validation-error",
			fields: []string{"name:required", "partitions:required", "replicationFactor:required"}},
		{name: "every field wrong", body: `{"name":"bad name","partitions":0,"replicationFactor":40000}`,
			status: http.StatusBadRequest, code: "validation-error",
			fields: []string{"partitions:gte", "replicationFactor:lte", "name:topic_name"}},
		{name: "too many partitions for any consumer", body: `{"name":"t","partitions":2000000,"replicationFactor":1}`,
			status: http.StatusBadRequest, code: "validation-error", fields: []string{"partitions:lte"}},
		{name: "negative replication factor", body: `{"name":"t","partitions":1,"replicationFactor":-1}`,
			status: http.StatusBadRequest, code: "validation-error", fields: []string{"replicationFactor:gte"}},
		{name: "partitions a string", body: `{"name":"t","partitions":"3","replicationFactor":1}`,
			status: http.StatusBadRequest, code: "validation-error", fields: []string{"partitions:type"}},
		{name: "configs not strings", body: `{"name":"t","partitions":1,"replicationFactor":1,"configs":{"retention.ms":3600000}}`,
			status: http.StatusBadRequest, code: "validation-error", fields: []string{`configs["retention.ms"]:type`}},
		{name: "partitions not an integer", body: `{"name":"t","partitions":1.5,"replicationFactor":1}`,
			status: http.StatusBadRequest, code: "validation-error", fields: []string{"partitions:type"}},
		{name: "unknown field", body: `{"name":"t","partitions":1,"replicationFactor":1,"replicas":2}`,
			status: http.StatusBadRequest, code: "validation-error", fields: []string{"replicas:unknown_field"}},
		{name: "malformed", body: `{"name":`, status: http.StatusBadRequest, code: "invalid-json", fields: []string{":syntax"}},
		{name: "internal topic", body: `{"name":"__consumer_offsets","partitions":1,"replicationFactor":1}`,
			status: http.StatusForbidden, code: "internal-topic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.kafka.createErr = tc.err
			p := problemOf(t, s.post("/v1/topics", tc.body), tc.status, tc.code)
			if got := fieldCodes(p.Errors); !slices.Equal(got, tc.fields) && !(len(got) == 0 && tc.fields == nil) {
				t.Errorf("errors = %v, want %v", got, tc.fields)
			}
			if tc.kafkaCode != "" {
				if p.KafkaError == nil || p.KafkaError.Code != tc.kafkaCode || p.KafkaError.Message == "" {
					t.Errorf("kafkaError = %+v, want code %s and a message", p.KafkaError, tc.kafkaCode)
				}
			} else if p.KafkaError != nil {
				t.Errorf("kafkaError = %+v, want none", p.KafkaError)
			}
			if called := len(s.kafka.created) > 0; called != tc.called {
				t.Errorf("CreateTopic called: %v, want %v", called, tc.called)
			}
		})
	}
}
