package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

// TestWithEmbeddedKafka runs the API against the real kafka.Client and the embedded broker, to
// check that the errors of the real client map to the documented answers.
func TestWithEmbeddedKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	cfg := testConfig()
	cfg.Kafka.EmbeddedAddr = "127.0.0.1:0"
	cfg.Kafka.ClientID = "httpapi-test"
	cfg.Kafka.RequestTimeout = 3 * time.Second
	cfg.Kafka.ConnectionTimeout = time.Second
	cfg.Kafka.RetryBackoff = 50 * time.Millisecond
	cfg.Kafka.Retries = 2
	cfg.Kafka.EmbeddedPartitions = 1
	broker, err := kafka.StartEmbedded(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	client, err := kafka.NewClient(cfg.Kafka, []string{broker.Addr()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	h := httpapi.NewServer(nil, cfg, httpapi.Deps{Kafka: client, Health: health.New(0)})
	s := &testServer{handler: h}

	// A notification is produced, and Kafka holds exactly the compact body at the answered offset.
	w := s.post(conceptPath, "{ \"conceptId\": \"c-1\", \"userIds\": [\"u1\"], \"conceptName\": \"Fractions\", \"masteryLevel\": 1 }")
	if w.Code != http.StatusCreated {
		t.Fatalf("notification: %d %s", w.Code, w.Body)
	}
	var pos struct {
		ID        string `json:"id"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &pos); err != nil {
		t.Fatal(err)
	}
	if pos.ID != "concept-notifications:0:0" {
		t.Errorf("id = %q, want concept-notifications:0:0", pos.ID)
	}
	rec := fetch(t, broker.Addr(), pos.Topic, pos.Partition, pos.Offset)
	if want := `{"conceptId":"c-1","userIds":["u1"],"conceptName":"Fractions","masteryLevel":1}`; string(rec.Value) != want || string(rec.Key) != "c-1" {
		t.Errorf("record key %q value %s, want c-1 %s", rec.Key, rec.Value, want)
	}

	// Records keep their value bytes.
	w = s.post("/v1/topics/test-realtime-service/records", `{"records":[{"value": [1, 2] },{"key":"k","value":"x"}]}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("records: %d %s", w.Code, w.Body)
	}
	if rec := fetch(t, broker.Addr(), "test-realtime-service", 0, 0); string(rec.Value) != `[1, 2]` {
		t.Errorf("record value %q, want [1, 2]", rec.Value)
	}

	// Producing to a missing topic is a 404 and does not create it.
	p := problemOf(t, s.post("/v1/topics/no-such-topic/records", `{"value":1}`), http.StatusNotFound, "topic-not-found")
	if !strings.Contains(p.Detail, "no-such-topic") {
		t.Errorf("detail %q", p.Detail)
	}

	// Topics: create, list, conflict, Kafka's reason for a bad replication factor.
	if w := s.post("/v1/topics", `{"name":"orders","partitions":2,"replicationFactor":1}`); w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	problemOf(t, s.post("/v1/topics", `{"name":"orders","partitions":2,"replicationFactor":1}`), http.StatusConflict, "topic-exists")
	p = problemOf(t, s.post("/v1/topics", `{"name":"replicated","partitions":1,"replicationFactor":3}`), http.StatusBadRequest, "kafka-rejected")
	if p.KafkaError == nil || p.KafkaError.Code != "INVALID_REPLICATION_FACTOR" {
		t.Errorf("kafkaError = %+v, want INVALID_REPLICATION_FACTOR", p.KafkaError)
	}
	w = s.serve(request(http.MethodGet, "/v1/topics", ""))
	for _, want := range []string{`{"name":"orders","partitions":2,"replicationFactor":1,"internal":false}`, `"name":"concept-notifications"`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET /v1/topics lacks %s: %s", want, w.Body)
		}
	}
	if strings.Contains(w.Body.String(), "no-such-topic") || strings.Contains(w.Body.String(), `"replicated"`) {
		t.Errorf("GET /v1/topics lists a topic that was never created: %s", w.Body)
	}

	// With the broker gone, a notification gets 503 (within the request timeout), never a 2xx.
	broker.Close()
	problemOf(t, s.post(sessionPath, validSession), http.StatusServiceUnavailable, "kafka-unavailable")
}

// fetch reads the record at topic/partition/offset.
func fetch(t *testing.T, addr, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {partition: kgo.NewOffset().At(offset)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatalf("fetch %s/%d@%d: %v", topic, partition, offset, err)
	}
	recs := fs.Records()
	if len(recs) == 0 {
		t.Fatalf("fetch %s/%d@%d: no record", topic, partition, offset)
	}
	return recs[0]
}
