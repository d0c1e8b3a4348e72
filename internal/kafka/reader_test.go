package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

func newTestReader(t *testing.T, addr string) *Reader {
	t.Helper()
	cfg := testConfig(t)
	r, err := NewReader(cfg, []string{addr}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestReader(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	prod := rawClient(t, b.Addr())
	s, c := notification.TopicSessions, notification.TopicConcepts
	for i := range 10 {
		produceAt(t, prod, s, 0, fmt.Sprintf("s0-%d", i))
	}
	for i := range 4 {
		produceAt(t, prod, s, 1, fmt.Sprintf("s1-%d", i))
		produceAt(t, prod, c, 2, fmt.Sprintf("c2-%d", i))
	}
	r := newTestReader(t, b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got, err := r.Offsets(ctx, []string{s, c})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]PartitionOffsets{
		s: {0: {0, 10}, 1: {0, 4}, 2: {0, 0}},
		c: {0: {0, 0}, 1: {0, 0}, 2: {0, 4}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Offsets: got %v, want %v", got, want)
	}
	if _, err := r.Offsets(ctx, []string{"missing-topic"}); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("Offsets of a missing topic: got %v, want ErrTopicNotFound", err)
	}

	read := func(from, until map[string]map[int32]int64, limit int) ([]string, error) {
		var out []string
		err := r.Read(ctx, from, until, func(rec *kgo.Record) bool {
			out = append(out, string(rec.Value))
			return len(out) < limit
		})
		return out, err
	}
	tests := []struct {
		name        string
		from, until map[string]map[int32]int64
		limit       int
		want        []string
	}{
		{"range", map[string]map[int32]int64{s: {0: 3}}, map[string]map[int32]int64{s: {0: 6}}, 100,
			[]string{"s0-3", "s0-4", "s0-5"}},
		{"no until: to the end", map[string]map[int32]int64{s: {1: 2}}, nil, 100,
			[]string{"s1-2", "s1-3"}},
		{"until past the end", map[string]map[int32]int64{c: {2: 1}}, map[string]map[int32]int64{c: {2: 99}}, 100,
			[]string{"c2-1", "c2-2", "c2-3"}},
		{"empty range", map[string]map[int32]int64{s: {0: 5}}, map[string]map[int32]int64{s: {0: 5}}, 100, nil},
		{"at the end", map[string]map[int32]int64{s: {2: 0}}, nil, 100, nil},
		{"several partitions", map[string]map[int32]int64{s: {0: 8, 1: 3}, c: {2: 3}}, nil, 100,
			[]string{"c2-3", "s0-8", "s0-9", "s1-3"}},
		{"fn stops", map[string]map[int32]int64{s: {0: 0}}, nil, 2, []string{"s0-0", "s0-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(tc.from, tc.until, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "several partitions" {
				slices.Sort(got)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Per-partition order over a longer range.
	got2, err := read(map[string]map[int32]int64{s: {0: 0}}, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got2 {
		if v != fmt.Sprintf("s0-%d", i) {
			t.Fatalf("order: got %v", got2)
		}
	}

	// Move the log start: reading below it is ErrOffsetOutOfRange, at it works.
	adm := kadm.NewClient(prod)
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: s, Partition: 0, At: 4})
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	if _, err := read(map[string]map[int32]int64{s: {0: 2}}, nil, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("from below the log start: got %v, want ErrOffsetOutOfRange", err)
	}
	if _, err := read(map[string]map[int32]int64{s: {0: 11}}, nil, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("from beyond the high watermark: got %v, want ErrOffsetOutOfRange", err)
	}
	if got, err := read(map[string]map[int32]int64{s: {0: 4}}, map[string]map[int32]int64{s: {0: 6}}, 100); err != nil ||
		!slices.Equal(got, []string{"s0-4", "s0-5"}) {
		t.Errorf("from the new log start: got %v, %v", got, err)
	}
	if got, err := r.Offsets(ctx, []string{s}); err != nil || got[s][0] != (PartitionOffsets{4, 10}) {
		t.Errorf("Offsets after DeleteRecords: got %v, %v; want {4 10}", got[s][0], err)
	}
	if _, err := read(map[string]map[int32]int64{"missing-topic": {0: 0}}, nil, 100); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("missing topic: got %v, want ErrTopicNotFound", err)
	}
}
