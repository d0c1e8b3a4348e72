package replay

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// sseSink is a realtime.Transport that keeps the JSON of each SSE frame it is sent.
type sseSink struct {
	mu     sync.Mutex
	frames []string
}

func (s *sseSink) Format() realtime.Format               { return realtime.FormatSSE }
func (s *sseSink) CloseFrame(realtime.Disconnect) []byte { return nil }
func (s *sseSink) Close()                                {}
func (s *sseSink) WriteFrames(frames [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range frames {
		for line := range strings.SplitSeq(string(f), "\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				s.frames = append(s.frames, data)
			}
		}
	}
	return nil
}

func (s *sseSink) ids(t *testing.T) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.frames {
		var fr struct{ ID, Event string }
		if err := json.Unmarshal([]byte(f), &fr); err != nil {
			t.Fatalf("frame %s: %v", f, err)
		}
		if fr.Event != "cursor" { // the cursor frame after the replay
			out = append(out, fr.ID)
		}
	}
	return out
}

// TestKafkaReplayHonoursExpiryAndCollapse: a client away from offset 0 of a two-partition topic
// while ten records with one collapse key, one with a ttl-ms that runs out while it is away, one
// already expired, one normal and one for another user are produced resumes (history off, so
// from Kafka) with exactly the newest collapsed record and the normal one.
func TestKafkaReplayHonoursExpiryAndCollapse(t *testing.T) {
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
	rec := func(part int32, user string, headers ...string) *kgo.Record {
		r := &kgo.Record{Topic: topic, Partition: part,
			Value: []byte(`{"conceptId":"c1","userIds":["` + user + `"],"conceptName":"n","masteryLevel":0.5}`)}
		for i := 0; i < len(headers); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
		}
		return r
	}
	var recs []*kgo.Record
	for range 10 {
		recs = append(recs, rec(0, "alice", notification.HeaderCollapseKey, "mastery:c1")) // 0:0..0:9
	}
	recs = append(recs,
		rec(0, "alice", notification.HeaderTTLMs, "60000"), // 0:10, expires while away
		rec(1, "alice"), // 1:0, normal
		rec(1, "bob", notification.HeaderCollapseKey, "mastery:c1"),           // 1:1, another user's
		rec(1, "alice", notification.HeaderExpiresAt, "2020-01-01T00:00:00Z"), // 1:2, long expired
		rec(0, "alice", notification.HeaderTTLMs, "7200000", notification.HeaderExpiresAt, // 0:11, the earlier: gone
			time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)),
	)
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reader, err := kafka.NewReader(kc, []string{b.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	k, err := New(reader, notification.NewDecoder(notification.NewValidator(), map[string]string{topic: "concept-mastered"}),
		Config{MaxRecords: 1000, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	later := time.Now().Add(2 * time.Minute) // the client comes back two minutes on
	h := realtime.NewHub(realtime.HubConfig{Replayer: k, Now: func() time.Time { return later }})
	cc, err := realtime.NewCursorCodec("cluster", []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	h.SetCursorCodec(cc)
	h.Assigned(map[string]map[int32]int64{topic: {0: 12, 1: 3}})
	sink := &sseSink{}
	from := cc.Encode([]realtime.Position{{Topic: topic, Partition: 0, Offset: 0}, {Topic: topic, Partition: 1, Offset: 0}})
	c, honoured, err := h.AttachResume(context.Background(), realtime.ConnOptions{User: "alice", Transport: sink, Paused: true}, from)
	if err != nil || !honoured {
		t.Fatalf("resume: honoured %v, %v", honoured, err)
	}
	c.Resume(nil)
	t.Cleanup(func() { c.Close(realtime.DisconnectClientGone); <-c.Done() })
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.ids(t)) < 2 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	got := sink.ids(t)
	slices.Sort(got) // partitions interleave by record time
	if want := []string{topic + ":0:9", topic + ":1:0"}; !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
}
