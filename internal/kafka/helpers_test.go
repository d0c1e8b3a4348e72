package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// testConfig returns a config with short timeouts, the default topics and a group named after
// the test, listening on a free loopback port.
func testConfig(t testing.TB) config.Kafka {
	t.Helper()
	return config.Kafka{
		EmbeddedAddr:       "127.0.0.1:0",
		EmbeddedPartitions: 3,
		ClientID:           "realtime-service-test",
		ConnectionTimeout:  time.Second,
		RequestTimeout:     3 * time.Second,
		RetryBackoff:       20 * time.Millisecond,
		Retries:            3,
		GroupID:            "rs-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()),
		NodeID:             "node-1",
		Topics: []config.TopicEvent{
			{Topic: notification.TopicSessions, Event: notification.EventSessionStartingSoon},
			{Topic: notification.TopicConcepts, Event: notification.EventConceptMastered},
		},
		DLQTopic: notification.TopicDLQ,
	}
}

// startBroker starts an embedded broker for cfg and closes it when the test ends.
func startBroker(t testing.TB, cfg config.Kafka) *Broker {
	t.Helper()
	b, err := StartEmbedded(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// rawClient is a plain franz-go client for checking what the package under test did.
func rawClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceAt writes one record to topic/partition with a raw client and returns its offset.
func produceAt(t testing.TB, cl *kgo.Client, topic string, partition int32, value string) int64 {
	t.Helper()
	r := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(value)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
	return r.Offset
}

// consumeAt reads the record at topic/partition/offset with a fresh raw client.
func consumeAt(t testing.TB, addr, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl := rawClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {partition: kgo.NewOffset().At(offset)},
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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

// endOffsets lists the high watermarks of topic.
func endOffsets(t testing.TB, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// eventually polls cond every 10 ms until it holds, failing the test after 20 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs through t.Log at warn and above.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
