package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/notification"
)

func TestStartEmbedded(t *testing.T) {
	cfg := testConfig(t)
	cfg.EmbeddedPartitions = 2
	cfg.Topics = []config.TopicEvent{{Topic: "orders", Event: "order"}}
	cfg.DLQTopic = "orders.dlq"
	var logs logBuffer
	b, err := StartEmbedded(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("Addr: got %q, want 127.0.0.1 and the resolved port", b.Addr())
	}
	c := newTestClient(t, cfg, b.Addr(), nil)
	topics, err := c.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []TopicInfo{
		{Name: "orders", Partitions: 2, ReplicationFactor: 1},
		{Name: "orders.dlq", Partitions: 2, ReplicationFactor: 1},
		{Name: notification.TopicTest, Partitions: 2, ReplicationFactor: 1},
	}
	if !slices.Equal(topics, want) {
		t.Errorf("topics: got %v, want %v", topics, want)
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, "single node") ||
		!strings.Contains(out, "in memory") || !strings.Contains(out, b.Addr()) {
		t.Errorf("want one warning naming the single node, the address and in-memory data; got %d:\n%s", n, out)
	}

	// The address is taken now.
	cfg.EmbeddedAddr = b.Addr()
	if b2, err := StartEmbedded(cfg, nil); err == nil {
		b2.Close()
		t.Error("a second broker on the same address: got nil, want an error")
	}
}

func TestStartEmbeddedUnspecifiedHost(t *testing.T) {
	cfg := testConfig(t)
	cfg.EmbeddedAddr = "0.0.0.0:0"
	b := startBroker(t, cfg)
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
		t.Errorf("Addr: got %q, want 127.0.0.1:port", b.Addr())
	}
	c := newTestClient(t, cfg, b.Addr(), nil)
	info, err := c.Ping(context.Background())
	if err != nil || !slices.Equal(info.Brokers, []string{b.Addr()}) {
		t.Errorf("Ping: got %+v, %v; want the broker advertised at %s", info, err, b.Addr())
	}
}

// TestEmbeddedPersistence restarts the broker on one data dir: records, topics, the cluster ID
// and a consumer group's committed offsets survive, and the consumer resumes exactly.
func TestEmbeddedPersistence(t *testing.T) {
	cfg := testConfig(t)
	cfg.EmbeddedDataDir = t.TempDir()
	var logs logBuffer
	b1, err := StartEmbedded(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, cfg.EmbeddedDataDir) || strings.Contains(out, "in memory") {
		t.Errorf("warning should name the data dir:\n%s", out)
	}
	c1 := newTestClient(t, cfg, b1.Addr(), nil)
	ctx := context.Background()
	info1, err := c1.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.CreateTopic(ctx, "extra", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	prod := rawClient(t, b1.Addr())
	rec := newRecorder(nil)
	_, stop := runConsumer(t, cfg, b1.Addr(), rec.config(), nil)
	eventually(t, "assignment", func() bool { return rec.nAssigned() == 6 })
	var offs []int64
	for i := range 3 {
		offs = append(offs, produceAt(t, prod, notification.TopicSessions, 1, fmt.Sprintf("before-%d", i)))
	}
	eventually(t, "hand-offs", func() bool { return len(rec.records()) == 3 })
	stop()
	adm1 := kadm.NewClient(prod)
	wantCommitted := committed(t, adm1, cfg.ConsumerGroup())
	if wantCommitted[notification.TopicSessions][1] != offs[2]+1 {
		t.Fatalf("committed before restart: %v", wantCommitted)
	}
	b1.Close()

	b2 := startBroker(t, cfg) // same data dir, a new free port
	c2 := newTestClient(t, cfg, b2.Addr(), nil)
	info2, err := c2.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info2.ClusterID != info1.ClusterID {
		t.Errorf("cluster ID: got %q after restart, want %q", info2.ClusterID, info1.ClusterID)
	}
	topics, err := c2.ListTopics(ctx)
	if err != nil || !slices.ContainsFunc(topics, func(ti TopicInfo) bool { return ti.Name == "extra" }) {
		t.Errorf("topics after restart: %v, %v; want extra among them", topics, err)
	}
	for i, o := range offs {
		if got := consumeAt(t, b2.Addr(), notification.TopicSessions, 1, o); string(got.Value) != fmt.Sprintf("before-%d", i) {
			t.Errorf("offset %d after restart: got %q", o, got.Value)
		}
	}
	prod2 := rawClient(t, b2.Addr())
	if got := committed(t, kadm.NewClient(prod2), cfg.ConsumerGroup()); !equalOffsets(got, wantCommitted) {
		t.Fatalf("committed after restart: got %v, want %v", got, wantCommitted)
	}

	after := produceAt(t, prod2, notification.TopicSessions, 1, "after")
	rec2 := newRecorder(nil)
	_, stop2 := runConsumer(t, cfg, b2.Addr(), rec2.config(), nil)
	eventually(t, "assignment after restart", func() bool { return rec2.nAssigned() == 6 })
	eventually(t, "hand-off after restart", func() bool { return len(rec2.records()) >= 1 })
	// A sentinel on the same partition: anything handed off twice would come before it.
	produceAt(t, prod2, notification.TopicSessions, 1, "sentinel")
	eventually(t, "sentinel", func() bool { return len(rec2.records()) >= 2 })
	starts := rec2.starts()
	stop2()
	got := rec2.records()
	if len(got) != 2 || got[0].Offset != after || string(got[0].Value) != "after" || string(got[1].Value) != "sentinel" {
		t.Errorf("after restart: handed off %v, want [after sentinel]", values(got))
	}
	if starts[notification.TopicSessions][1] != offs[2]+1 {
		t.Errorf("Assigned after restart: got %v, want %s/1 at %d", starts, notification.TopicSessions, offs[2]+1)
	}
}
