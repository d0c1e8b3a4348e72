package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// newTestClient returns a Client for addr, closed when the test ends.
func newTestClient(t *testing.T, cfg config.Kafka, addr string, reg prometheus.Registerer) *Client {
	t.Helper()
	c, err := NewClient(cfg, []string{addr}, reg, testLogger(t))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestProduceReadBack(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	reg := prometheus.NewRegistry()
	c := newTestClient(t, cfg, b.Addr(), reg)

	recs := []*kgo.Record{
		{Topic: notification.TopicSessions, Key: []byte("s-1"), Value: []byte(`{"a":1}`),
			Headers: []kgo.RecordHeader{{Key: "event-type", Value: []byte("x")}}},
		{Topic: notification.TopicConcepts, Value: []byte(`{"b":2}`)}, // no key
		{Topic: notification.TopicSessions, Key: []byte("s-2"), Value: nil},
	}
	for i, err := range c.Produce(context.Background(), recs...) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	for _, r := range recs {
		got := consumeAt(t, b.Addr(), r.Topic, r.Partition, r.Offset)
		if string(got.Key) != string(r.Key) || string(got.Value) != string(r.Value) {
			t.Errorf("%s/%d@%d: got key %q value %q, want %q %q", r.Topic, r.Partition, r.Offset, got.Key, got.Value, r.Key, r.Value)
		}
		if len(got.Headers) != len(r.Headers) {
			t.Errorf("%s/%d@%d: got headers %v, want %v", r.Topic, r.Partition, r.Offset, got.Headers, r.Headers)
		}
	}

	// kprom's metrics are on reg, labelled as the producer's.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "kafka_client_produce_bytes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" && l.GetValue() == "producer" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf(`kafka_client_produce_bytes_total{role="producer"} not registered; got %d families`, len(mfs))
	}
}

func TestProduceOrderAndResults(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	c := newTestClient(t, cfg, b.Addr(), nil)

	// One missing topic among good records: each record gets its own result, in input order.
	recs := []*kgo.Record{
		{Topic: notification.TopicSessions, Key: []byte("k"), Value: []byte("1")},
		{Topic: "no-such-topic", Value: []byte("2")},
		{Topic: notification.TopicSessions, Key: []byte("k"), Value: []byte("3")},
		{Topic: "", Value: []byte("4")},
		{Topic: "bad/name", Value: []byte("5")},
		{Topic: notification.TopicConcepts, Value: make([]byte, 2<<20)}, // above Kafka's 1 MB default
	}
	errs := c.Produce(context.Background(), recs...)
	if len(errs) != 6 || errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], ErrTopicNotFound) {
		t.Fatalf("got %v, want [nil ErrTopicNotFound nil ...]", errs)
	}
	for i, code := range map[int]string{3: "INVALID_TOPIC_EXCEPTION", 4: "INVALID_TOPIC_EXCEPTION", 5: "MESSAGE_TOO_LARGE"} {
		var re *RequestError
		if !errors.As(errs[i], &re) || re.Code != code {
			t.Errorf("record %d: got %v, want a RequestError %s", i, errs[i], code)
		}
	}
	if recs[2].Offset != recs[0].Offset+1 || recs[0].Partition != recs[2].Partition {
		t.Errorf("same key: got %d@%d and %d@%d, want consecutive offsets on one partition",
			recs[0].Partition, recs[0].Offset, recs[2].Partition, recs[2].Offset)
	}
	if errs := c.Produce(context.Background()); len(errs) != 0 {
		t.Errorf("no records: got %v", errs)
	}
}

func TestProduceMissingTopic(t *testing.T) {
	cfg := testConfig(t)
	// A long request timeout: ErrTopicNotFound (not ErrUnavailable) proves that the answer came
	// from the unknown-topic limit, not from the timeout.
	cfg.RequestTimeout = 20 * time.Second
	b := startBroker(t, cfg)
	c := newTestClient(t, cfg, b.Addr(), nil)

	for range 2 { // the second time too: the topic was purged, not cached as failed
		err := c.Produce(context.Background(), &kgo.Record{Topic: "missing-topic", Value: []byte("x")})[0]
		if !errors.Is(err, ErrTopicNotFound) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrTopicNotFound", err)
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Errorf("got %v, want it to wrap kerr.UnknownTopicOrPartition", err)
		}
	}
	topics, err := c.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(topics, func(ti TopicInfo) bool { return ti.Name == "missing-topic" }) {
		t.Errorf("producing created the topic: %v", topics)
	}
}

func TestProduceCallerCancel(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	c := newTestClient(t, cfg, b.Addr(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Produce(ctx, &kgo.Record{Topic: notification.TopicSessions, Value: []byte("x")})[0]
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want context.Canceled and not ErrUnavailable", err)
	}
}

func TestCreateTopic(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	c := newTestClient(t, cfg, b.Addr(), nil)
	ctx := context.Background()

	if err := c.CreateTopic(ctx, "orders", 2, 1, map[string]*string{"retention.ms": kadm.StringPtr("60000")}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := c.CreateTopic(ctx, "defaults", -1, -1, nil); err != nil {
		t.Fatalf("create with broker defaults: %v", err)
	}
	if err := c.CreateTopic(ctx, "a.b", 1, 1, nil); err != nil {
		t.Fatalf("create a.b: %v", err)
	}

	tests := []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		wantIs     error  // sentinel, or nil
		wantCode   string // RequestError code, or ""
	}{
		{"exists", "orders", 2, 1, ErrTopicExists, ""},
		{"replication factor above broker count", "t-rf", 1, 3, nil, "INVALID_REPLICATION_FACTOR"},
		{"replication factor zero", "t-rf0", 1, 0, nil, "INVALID_REPLICATION_FACTOR"},
		{"zero partitions", "t-p0", 0, 1, nil, "INVALID_PARTITIONS"},
		{"negative partitions", "t-pn", -5, 1, nil, "INVALID_PARTITIONS"},
		{"illegal name", "bad/name", 1, 1, nil, "INVALID_TOPIC_EXCEPTION"},
		{"empty name", "", 1, 1, nil, "INVALID_TOPIC_EXCEPTION"},
		{"collides with a.b", "a_b", 1, 1, nil, "INVALID_TOPIC_EXCEPTION"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.CreateTopic(ctx, tc.topic, tc.partitions, tc.rf, nil)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("got %v, want %v", err, tc.wantIs)
			}
			if tc.wantCode != "" {
				var re *RequestError
				if !errors.As(err, &re) || re.Code != tc.wantCode || re.Message == "" {
					t.Fatalf("got %#v (%v), want a RequestError %s with a message", re, err, tc.wantCode)
				}
				var ke *kerr.Error
				if !errors.As(err, &ke) || ke.Message != tc.wantCode {
					t.Errorf("got %v, want it to unwrap to kerr %s", err, tc.wantCode)
				}
				if errors.Is(err, ErrUnavailable) {
					t.Errorf("a request error must not be ErrUnavailable: %v", err)
				}
			}
		})
	}
}

func TestListTopics(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	c := newTestClient(t, cfg, b.Addr(), nil)
	ctx := context.Background()
	// kfake flags a topic internal through this config, as Kafka does __consumer_offsets.
	if err := c.CreateTopic(ctx, "__offsets-like", 1, 1, map[string]*string{"kfake.is_internal": kadm.StringPtr("true")}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "zeta", 5, 1, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []TopicInfo{
		{Name: "__offsets-like", Partitions: 1, ReplicationFactor: 1, Internal: true},
		{Name: notification.TopicConcepts, Partitions: 3, ReplicationFactor: 1},
		{Name: notification.TopicDLQ, Partitions: 3, ReplicationFactor: 1},
		{Name: notification.TopicSessions, Partitions: 3, ReplicationFactor: 1},
		{Name: notification.TopicTest, Partitions: 3, ReplicationFactor: 1},
		{Name: "zeta", Partitions: 5, ReplicationFactor: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestPing(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	c := newTestClient(t, cfg, b.Addr(), nil)
	info, err := c.Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.ClusterID, "realtime-service-") || !slices.Equal(info.Brokers, []string{b.Addr()}) || info.Controller != 0 {
		t.Errorf("got %+v, want cluster realtime-service-*, brokers [%s], controller 0", info, b.Addr())
	}
	id, err := c.ClusterID(context.Background())
	if err != nil || id != info.ClusterID {
		t.Errorf("ClusterID: got %q, %v; want %q", id, err, info.ClusterID)
	}
}

func TestBrokerDownAndBack(t *testing.T) {
	for _, persist := range []bool{false, true} {
		name := "in memory"
		if persist {
			name = "data dir"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.RequestTimeout = 1500 * time.Millisecond
			if persist {
				cfg.EmbeddedDataDir = t.TempDir()
			}
			b, err := StartEmbedded(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			addr := b.Addr()
			c := newTestClient(t, cfg, addr, nil)
			ctx := context.Background()
			rec := func() *kgo.Record { return &kgo.Record{Topic: notification.TopicSessions, Value: []byte("x")} }
			if err := c.Produce(ctx, rec())[0]; err != nil {
				t.Fatalf("produce while up: %v", err)
			}

			b.Close()
			if err := c.Produce(ctx, rec())[0]; !errors.Is(err, ErrUnavailable) {
				t.Fatalf("produce while down: got %v, want ErrUnavailable", err)
			}
			if _, err := c.Ping(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("ping while down: got %v, want ErrUnavailable", err)
			}
			if _, err := c.ListTopics(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("list topics while down: got %v, want ErrUnavailable", err)
			}
			if err := c.CreateTopic(ctx, "while-down", 1, 1, nil); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("create topic while down: got %v, want ErrUnavailable", err)
			}

			// Back on the same address: once a ping gets through, producing works at once, also
			// when the broker lost its topics and re-created them with new IDs (in memory).
			cfg.EmbeddedAddr = addr
			startBroker(t, cfg)
			eventually(t, "ping after restart", func() bool { _, err := c.Ping(ctx); return err == nil })
			if err := c.Produce(ctx, rec())[0]; err != nil {
				t.Fatalf("produce after restart: %v", err)
			}
		})
	}
}
