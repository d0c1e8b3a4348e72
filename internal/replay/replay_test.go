package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

const topic = "concept-notifications"

// setup starts a broker with one two-partition topic and produces n records per partition, each
// addressed to alice on even offsets and to bob on odd ones, plus one poison record on partition
// 0 at offset n.
func setup(t *testing.T, n int) (*Kafka, *kgo.Client) {
	t.Helper()
	kc := config.Kafka{EmbeddedAddr: "127.0.0.1:0", EmbeddedPartitions: 2,
		Topics: []config.TopicEvent{{Topic: topic, Event: "concept-mastered"}}, DLQTopic: "dlq", RequestTimeout: 5 * time.Second}
	b, err := kafka.StartEmbedded(kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	for p := range int32(2) {
		for i := range n {
			user := "alice"
			if i%2 == 1 {
				user = "bob"
			}
			v := fmt.Sprintf(`{"conceptId":"c%d-%d","userIds":[%q],"conceptName":"n","masteryLevel":1}`, p, i, user)
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: 0, Value: []byte(`{"userIds":["alice"`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reader, err := kafka.NewReader(kc, []string{b.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	dec := notification.NewDecoder(notification.NewValidator(), map[string]string{topic: "concept-mastered"})
	k, err := New(reader, dec, Config{MaxRecords: 1000, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return k, cl
}

func ids(evs []*notification.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID())
	}
	return out
}

func TestReplayReturnsTheUsersEventsInTheRange(t *testing.T) {
	k, _ := setup(t, 6)
	from := []realtime.Position{{Topic: topic, Partition: 0, Offset: 2}, {Topic: topic, Partition: 1, Offset: 3}}
	to := []realtime.Position{{Topic: topic, Partition: 0, Offset: 7}, {Topic: topic, Partition: 1, Offset: 6}}
	evs, err := k.Replay(t.Context(), "alice", from, to)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(evs)
	slices.Sort(got)
	want := []string{topic + ":0:2", topic + ":0:4", topic + ":1:4"} // 0:6 is the poison record: skipped
	if !slices.Equal(got, want) {
		t.Errorf("alice: %v, want %v", got, want)
	}
}

func TestReplayReadsAPartitionUnknownToTheCursorFromItsStart(t *testing.T) {
	k, _ := setup(t, 4)
	from := []realtime.Position{{Topic: topic, Partition: 0, Offset: 4}}
	to := []realtime.Position{{Topic: topic, Partition: 0, Offset: 4}, {Topic: topic, Partition: 1, Offset: 4}}
	evs, err := k.Replay(t.Context(), "bob", from, to)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(evs); !slices.Equal(got, []string{topic + ":1:1", topic + ":1:3"}) {
		t.Errorf("bob: %v", got)
	}
}

func TestReplayRefusals(t *testing.T) {
	k, cl := setup(t, 6)
	// Retention: records below offset 3 of partition 0 are gone.
	if _, err := kadm.NewClient(cl).DeleteRecords(t.Context(), kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 3}}}); err != nil {
		t.Fatal(err)
	}
	to := []realtime.Position{{Topic: topic, Partition: 0, Offset: 6}, {Topic: topic, Partition: 1, Offset: 6}}
	for _, tc := range []struct {
		name   string
		from   []realtime.Position
		max    int
		reason string
	}{
		{"older than Kafka keeps", []realtime.Position{{Topic: topic, Partition: 0, Offset: 1}, {Topic: topic, Partition: 1, Offset: 6}}, 1000, "expired"},
		{"beyond the replay limit", []realtime.Position{{Topic: topic, Partition: 0, Offset: 3}, {Topic: topic, Partition: 1, Offset: 0}}, 5, "too-far-behind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k.maxRecords = int64(tc.max)
			_, err := k.Replay(t.Context(), "alice", tc.from, to)
			var re *realtime.ResyncError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				t.Errorf("err = %v, want resync %q", err, tc.reason)
			}
		})
	}
}

// countingSource serves offsets and reads from memory, counting calls and concurrent reads.
type countingSource struct {
	mu                        sync.Mutex
	offsetCalls, reading, max int
}

func (c *countingSource) Offsets(context.Context, []string) (map[string]map[int32]kafka.PartitionOffsets, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offsetCalls++
	return map[string]map[int32]kafka.PartitionOffsets{topic: {0: {Start: 0, End: 10}}}, nil
}

func (c *countingSource) Read(_ context.Context, _, _ map[string]map[int32]int64, fn func(*kgo.Record) bool) error {
	c.mu.Lock()
	c.reading++
	c.max = max(c.max, c.reading)
	c.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	fn(&kgo.Record{Topic: topic, Offset: 3, Value: []byte(`{"conceptId":"c","userIds":["alice"],"conceptName":"n","masteryLevel":1}`)})
	c.mu.Lock()
	c.reading--
	c.mu.Unlock()
	return nil
}

// TestABurstOfResumesSharesOneOffsetsLookupAndQueuesItsReads: after a restart many clients resume
// at once; they must not each ask Kafka for offsets, nor all read at the same moment.
func TestABurstOfResumesSharesOneOffsetsLookupAndQueuesItsReads(t *testing.T) {
	src := &countingSource{}
	dec := notification.NewDecoder(notification.NewValidator(), map[string]string{topic: "concept-mastered"})
	k, err := New(src, dec, Config{MaxRecords: 1000, Timeout: 10 * time.Second, QueuePerUser: 50, PerUser: 50})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			evs, err := k.Replay(t.Context(), "alice", []realtime.Position{{Topic: topic, Partition: 0, Offset: 2}}, []realtime.Position{{Topic: topic, Partition: 0, Offset: 10}})
			if err != nil || len(evs) != 1 {
				t.Errorf("replay: %v %v", evs, err)
			}
		})
	}
	wg.Wait()
	if src.offsetCalls != 1 {
		t.Errorf("%d offsets lookups for one burst, want 1", src.offsetCalls)
	}
	if src.max > defaultConcurrency {
		t.Errorf("%d concurrent reads, want at most %d", src.max, defaultConcurrency)
	}
}

// TestCheckPositions: a cursor beyond the high watermark is refused as ahead-of-log, but only
// after a fresh lookup: a high watermark cached while the partition grew refuses nothing.
func TestCheckPositions(t *testing.T) {
	k, cl := setup(t, 4) // partition 0 ends at 5 (4 records and a poison one), partition 1 at 4
	ctx := context.Background()
	if err := k.CheckPositions(ctx, []realtime.Position{{Topic: topic, Partition: 0, Offset: 5}, {Topic: topic, Partition: 1, Offset: 4}}); err != nil {
		t.Fatalf("positions at the log end: %v", err)
	}
	// The lookup above is cached; the log grows; a cursor from a node that saw the new record.
	v := `{"conceptId":"c","userIds":["alice"],"conceptName":"n","masteryLevel":1}`
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte(v)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := k.CheckPositions(ctx, []realtime.Position{{Topic: topic, Partition: 1, Offset: 5}}); err != nil {
		t.Fatalf("a position the cached high watermark lags: %v", err)
	}
	err := k.CheckPositions(ctx, []realtime.Position{{Topic: topic, Partition: 1, Offset: 1_000_000_000_000}})
	var re *realtime.ResyncError
	if !errors.As(err, &re) || re.Reason != "ahead-of-log" {
		t.Fatalf("a position far beyond the log: %v, want resync ahead-of-log", err)
	}
}

// TestReplayFindsUsersNamedInKeysAndHeaders: the pre-filter that skips records not naming the
// user looks where the topic names its users: a resume must not miss a record whose value never
// mentions its recipient (it fails if the pre-filter reads only the value).
func TestReplayFindsUsersNamedInKeysAndHeaders(t *testing.T) {
	kc := config.Kafka{EmbeddedAddr: "127.0.0.1:0", EmbeddedPartitions: 1, DLQTopic: "dlq", RequestTimeout: 5 * time.Second,
		Topics: []config.TopicEvent{{Topic: "keyed", Event: "k"}, {Topic: "headed", Event: "h"}}}
	b, err := kafka.StartEmbedded(kc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	recs := []*kgo.Record{
		{Topic: "keyed", Key: []byte("alice"), Value: []byte(`{"n":0}`)},
		{Topic: "keyed", Key: []byte("bob"), Value: []byte(`{"n":1,"note":"alice"}`)},
		{Topic: "keyed", Key: []byte("alice"), Value: []byte(`{"n":2}`)},
		{Topic: "headed", Headers: []kgo.RecordHeader{{Key: "to", Value: []byte("bob")}, {Key: "to", Value: []byte("alice")}}, Value: []byte("raw 3")},
		{Topic: "headed", Headers: []kgo.RecordHeader{{Key: "to", Value: []byte("bob")}}, Value: []byte("alice 4")},
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reader, err := kafka.NewReader(kc, []string{b.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	dec, err := notification.NewTopicDecoder(notification.NewValidator(), map[string]notification.Topic{
		"keyed":  {Event: "k", Shape: notification.Shape{Recipients: "key"}},
		"headed": {Event: "h", Shape: notification.Shape{Recipients: "header:to", Value: notification.ValueRawString}},
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(reader, dec, Config{MaxRecords: 1000, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	to := []realtime.Position{{Topic: "keyed", Partition: 0, Offset: 3}, {Topic: "headed", Partition: 0, Offset: 2}}
	evs, err := k.Replay(t.Context(), "alice", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(evs)
	slices.Sort(got) // partitions are read in no set order
	if want := []string{"headed:0:0", "keyed:0:0", "keyed:0:2"}; !slices.Equal(got, want) {
		t.Errorf("alice's replay: %v, want %v", got, want)
	}
}

// slowOffsets is a countingSource whose offsets lookups take a few milliseconds.
type slowOffsets struct{ countingSource }

func (s *slowOffsets) Offsets(ctx context.Context, topics []string) (map[string]map[int32]kafka.PartitionOffsets, error) {
	time.Sleep(5 * time.Millisecond)
	return s.countingSource.Offsets(ctx, topics)
}

// TestForgedCursorsShareFreshLookups: cursors ahead of the log each need a lookup made after
// they asked, but a burst of them must share lookups instead of queueing one each (every other
// replay waits behind them).
func TestForgedCursorsShareFreshLookups(t *testing.T) {
	src := &slowOffsets{}
	k, err := New(src, notification.NewDecoder(notification.NewValidator(), map[string]string{topic: "concept-mastered"}), Config{MaxRecords: 1000, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ahead atomic.Int32
	for range 20 {
		wg.Go(func() {
			err := k.CheckPositions(context.Background(), []realtime.Position{{Topic: topic, Partition: 0, Offset: 1_000_000}})
			var re *realtime.ResyncError
			if errors.As(err, &re) && re.Reason == "ahead-of-log" {
				ahead.Add(1)
			}
		})
	}
	wg.Wait()
	if ahead.Load() != 20 {
		t.Errorf("%d of 20 forged cursors refused as ahead-of-log", ahead.Load())
	}
	if n := src.offsetCalls; n > 3 {
		t.Errorf("%d offsets lookups for a burst of 20 forged cursors; want at most 3", n)
	}
}
