package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

// readAt consumes the one record at topic/partition/offset with an independent franz-go client.
func readAt(t *testing.T, broker, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record at %s/%d@%d: %v", topic, partition, offset, err)
		}
		for _, r := range fs.Records() {
			if r.Offset == offset {
				return r
			}
		}
	}
}

type produced struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func TestNotificationIsProducedAndReadBackAtItsOffset(t *testing.T) {
	s := startService(t, nil)
	body := `{"conceptId":"js-arrays","userIds":["alice","bob"],"conceptName":"JavaScript Arrays","masteryLevel":0.92}`
	var p produced
	resp := s.do("POST", "/v1/notifications/concept-mastered", body, &p)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if p.Topic != "concept-notifications" || p.ID != p.Topic+":"+itoa(p.Partition)+":"+itoa64(p.Offset) {
		t.Fatalf("answer %+v", p)
	}
	rec := readAt(t, s.Broker, p.Topic, p.Partition, p.Offset)
	if string(rec.Value) != body || string(rec.Key) != "js-arrays" {
		t.Errorf("record key %q value %s, want key js-arrays and the request body", rec.Key, rec.Value)
	}
}

func TestBatchWithOneBadRecordProducesOnlyTheGoodOnesInOrder(t *testing.T) {
	s := startService(t, nil)
	var out struct {
		Results []struct {
			Partition *int32                 `json:"partition"`
			Offset    *int64                 `json:"offset"`
			Error     *struct{ Code string } `json:"error"`
		} `json:"results"`
	}
	resp := s.do("POST", "/v1/topics/test-realtime-service/records",
		`{"records":[{"key":"k1","value":{"n":1}},{"value":null,"key":7},{"key":"k3","value":"three","headers":[{"key":"h","value":"v"}]}]}`, &out)
	if resp.StatusCode != http.StatusMultiStatus || len(out.Results) != 3 {
		t.Fatalf("status %d results %+v", resp.StatusCode, out.Results)
	}
	if out.Results[1].Error == nil || out.Results[0].Error != nil || out.Results[2].Error != nil {
		t.Fatalf("results %+v: want only the second to fail", out.Results)
	}
	for i, want := range map[int]string{0: `{"n":1}`, 2: `"three"`} {
		r := out.Results[i]
		rec := readAt(t, s.Broker, "test-realtime-service", *r.Partition, *r.Offset)
		if string(rec.Value) != want {
			t.Errorf("record %d value %s, want %s", i, rec.Value, want)
		}
	}
}

func TestTopicsCreateDuplicateList(t *testing.T) {
	s := startService(t, nil)
	if r := s.do("POST", "/v1/topics", `{"name":"grades","partitions":2,"replicationFactor":1}`, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", r.StatusCode)
	}
	if r := s.do("POST", "/v1/topics", `{"name":"grades","partitions":2,"replicationFactor":1}`, nil); r.StatusCode != http.StatusConflict {
		t.Errorf("duplicate: %d, want 409", r.StatusCode)
	}
	var bad struct{ Detail string }
	if r := s.do("POST", "/v1/topics", `{"name":"wide","partitions":1,"replicationFactor":3}`, &bad); r.StatusCode != http.StatusBadRequest || !strings.Contains(strings.ToUpper(bad.Detail), "REPLICATION") {
		t.Errorf("replication factor 3 on one broker: %d %q, want 400 with Kafka's reason", r.StatusCode, bad.Detail)
	}
	var list struct {
		Topics []struct {
			Name       string
			Partitions int32
		}
	}
	s.do("GET", "/v1/topics", nil, &list)
	found := map[string]int32{}
	for _, tp := range list.Topics {
		found[tp.Name] = tp.Partitions
	}
	if found["grades"] != 2 || found["concept-notifications"] == 0 || found["session-notifications"] == 0 {
		t.Errorf("listing %v", found)
	}
}

func TestProduceToMissingTopicIs404AndCreatesNothing(t *testing.T) {
	s := startService(t, nil)
	if r := s.do("POST", "/v1/topics/no-such-topic/records", `{"value":1}`, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", r.StatusCode)
	}
	var list struct{ Topics []struct{ Name string } }
	s.do("GET", "/v1/topics", nil, &list)
	for _, tp := range list.Topics {
		if tp.Name == "no-such-topic" {
			t.Error("the topic was created")
		}
	}
}

func TestServiceAPINeedsTheKey(t *testing.T) {
	s := startService(t, nil)
	resp, err := http.Post(s.URL+"/v1/notifications/concept-mastered", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("no key: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestHealthFollowsTheBroker: the service on an external broker reports it down when it stops
// and up again when it comes back on the same address.
func TestHealthFollowsTheBroker(t *testing.T) {
	addr := freeAddr(t)
	kc := config.Kafka{EmbeddedAddr: addr, EmbeddedDataDir: t.TempDir(), EmbeddedPartitions: 1,
		Topics:   []config.TopicEvent{{Topic: "session-notifications", Event: "session-starting-soon"}, {Topic: "concept-notifications", Event: "concept-mastered"}},
		DLQTopic: "realtime-service.dlq"}
	b, err := kafka.StartEmbedded(kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startService(t, map[string]string{"KAFKA_BROKERS": addr, "KAFKA_REQUEST_TIMEOUT": "2000"})

	var h struct {
		Status  string
		Details map[string]struct{ Status string }
	}
	if r := s.do("GET", "/health", nil, &h); r.StatusCode != 200 || h.Status != "ok" || h.Details["kafka"].Status != "up" {
		t.Fatalf("with the broker: %d %+v", r.StatusCode, h)
	}
	b.Close()
	waitUntil(t, "kafka down", func() bool {
		r := s.do("GET", "/health", nil, &h)
		return r.StatusCode == http.StatusServiceUnavailable && h.Status == "error" && h.Details["kafka"].Status == "down"
	})
	if r := s.do("POST", "/v1/notifications/concept-mastered", `{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":1}`, nil); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("produce while the broker is down: %d, want 503", r.StatusCode)
	}
	b, err = kafka.StartEmbedded(kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitUntil(t, "kafka up again", func() bool {
		r := s.do("GET", "/health", nil, &h)
		return r.StatusCode == 200 && h.Details["kafka"].Status == "up"
	})
	s.Stop() // before the broker closes
}

// TestKcatInterop: kcat, an independent client (librdkafka), reads what the API produced byte
// for byte, and a record kcat produces shows in the API's partition offsets.
func TestKcatInterop(t *testing.T) {
	kcat := interopTool(t, "kcat", "apt-get install kcat")
	s := startService(t, nil)
	body := `{"conceptId":"js-arrays","userIds":["alice"],"conceptName":"JavaScript Arrays","masteryLevel":0.92}`
	var p produced
	if r := s.do("POST", "/v1/notifications/concept-mastered", body, &p); r.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", r.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-b", s.Broker, "-C", "-t", p.Topic, "-p", itoa(p.Partition),
		"-o", itoa64(p.Offset), "-c", "1", "-e", "-f", "%s").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	if string(out) != body {
		t.Errorf("kcat read %q, want %q", out, body)
	}

	before := partitionEnds(t, s, "test-realtime-service")
	cmd := exec.CommandContext(ctx, kcat, "-b", s.Broker, "-P", "-t", "test-realtime-service", "-p", "0")
	cmd.Stdin = strings.NewReader("from kcat\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	after := partitionEnds(t, s, "test-realtime-service")
	if after[0] != before[0]+1 {
		t.Errorf("partition 0 end offset %d -> %d, want one more record", before[0], after[0])
	}
}

// partitionEnds reads a topic's end offsets through GET /v1/topics/{topic}.
func partitionEnds(t *testing.T, s *service, topic string) map[int32]int64 {
	t.Helper()
	var out struct {
		Partitions []struct {
			Partition int32 `json:"partition"`
			EndOffset int64 `json:"endOffset"`
		} `json:"partitions"`
	}
	if r := s.do("GET", "/v1/topics/"+topic, nil, &out); r.StatusCode != 200 {
		t.Fatalf("GET /v1/topics/%s: %d", topic, r.StatusCode)
	}
	ends := map[int32]int64{}
	for _, p := range out.Partitions {
		ends[p.Partition] = p.EndOffset
	}
	return ends
}

func TestCheckCommand(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"KAFKA_NODE_ID": "check"}
	if err := run(context.Background(), []string{"realtime-service", "check"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("check against a fresh embedded broker: %v\n%s", err, out.String())
	}
	if strings.Count(out.String(), "PASS") < 5 || strings.Contains(out.String(), "FAIL") {
		t.Errorf("output:\n%s", out.String())
	}

	out.Reset()
	env = map[string]string{"KAFKA_NODE_ID": "check", "KAFKA_BROKERS": freeAddr(t), "KAFKA_REQUEST_TIMEOUT": "1500", "KAFKA_CONNECTION_TIMEOUT": "500", "KAFKA_RETRY_RETRIES": "1"}
	err := run(context.Background(), []string{"realtime-service", "check"}, func(k string) string { return env[k] }, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "FAIL") || !strings.Contains(out.String(), "KAFKA_BROKERS") {
		t.Errorf("check against a closed port: err %v, output:\n%s", err, out.String())
	}
}

func TestTokenCommand(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_JWT_SECRET": testSecret}
	if err := run(context.Background(), []string{"realtime-service", "token", "--user", "alice", "--ttl", "2h"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	claims, err := auth.NewVerifier([]byte(testSecret)).Verify(strings.TrimSpace(out.String()))
	if err != nil || claims.UserID != "alice" || time.Until(claims.Expires) < 119*time.Minute {
		t.Errorf("token %q: %+v %v", out.String(), claims, err)
	}
	env = map[string]string{"KAFKA_NODE_ID": "n"}
	if err := run(context.Background(), []string{"realtime-service", "token", "--user", "alice"}, func(k string) string { return env[k] }, &out, io.Discard); err == nil || !strings.Contains(err.Error(), "REALTIME_JWT_SECRET") {
		t.Errorf("without a secret: %v", err)
	}
}

func TestMalformedConfigurationStopsStartUpWithOneLine(t *testing.T) {
	env := map[string]string{"KAFKA_REQUEST_TIMEOUT": "abc"}
	err := run(context.Background(), []string{"realtime-service"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `KAFKA_REQUEST_TIMEOUT="abc"`) {
		t.Errorf("err = %v", err)
	}
}

// TestHelpAfterACommandStartsNothing: "broker --help" once started a broker that held :9092;
// help after any command prints the usage and exits 0, and a stray argument is refused.
func TestHelpAfterACommandStartsNothing(t *testing.T) {
	env := map[string]string{"KAFKA_EMBEDDED_ADDR": "127.0.0.1:1"} // a broker here would fail
	getenv := func(k string) string { return env[k] }
	for _, cmd := range []string{"serve", "check", "broker", "healthcheck", "token"} {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, []string{"realtime-service", cmd, "--help"}, getenv, &out, &errOut)
		cancel()
		if err != nil || !strings.Contains(out.String()+errOut.String(), "-") {
			t.Errorf("%s --help: err %v, output %q", cmd, err, out.String()+errOut.String())
		}
	}
	for _, cmd := range []string{"serve", "broker", "check"} {
		err := run(context.Background(), []string{"realtime-service", cmd, "--port", "1"}, getenv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `unexpected argument "--port"`) {
			t.Errorf("%s --port 1: err %v, want an unexpected argument", cmd, err)
		}
	}
}
