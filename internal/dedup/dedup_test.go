package dedup

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rec(topic string, partition int32, offset int64, key string, at time.Duration) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: partition, Offset: offset, Timestamp: t0.Add(at)}
	if key != "" {
		r.Headers = []kgo.RecordHeader{{Key: "event-type", Value: []byte("x")}, {Key: Header, Value: []byte(key)}}
	}
	return r
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{`"a\"b\\c"`, `a"b\c`},
		{"with space", "with space"},
		{strings.Repeat("k", MaxKeyLen), strings.Repeat("k", MaxKeyLen)},
	} {
		if got, err := ParseKey(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", `""`, strings.Repeat("k", MaxKeyLen+1), "caf\u00e9", "a\tb", `"a\x"`, `"a"b"`} {
		if _, err := ParseKey(in); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%q): err %v, want ErrInvalidKey", in, err)
		}
	}
}

func TestWindowDrop(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := New(Config{Window: time.Minute, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rec  *kgo.Record
		drop bool
	}{
		{"first", rec("a", 0, 10, "k1", 0), false},
		{"no key", rec("a", 0, 11, "", time.Second), false},
		{"retry", rec("a", 0, 12, "k1", 2*time.Second), true},
		{"same record re-delivered", rec("a", 0, 10, "k1", 0), false},
		{"other partition", rec("a", 1, 12, "k1", 2*time.Second), false},
		{"other topic", rec("b", 0, 12, "k1", 2*time.Second), false},
		{"other key", rec("a", 0, 13, "k2", 3*time.Second), false},
		{"retry at the window's end", rec("a", 0, 14, "k1", time.Minute), true},
		{"after the window", rec("a", 0, 15, "k1", time.Minute+time.Millisecond), false},
		{"retry of that one", rec("a", 0, 16, "k1", time.Minute+time.Second), true},
	} {
		if got := w.Drop(tc.rec); got != tc.drop {
			t.Errorf("%s: Drop = %v, want %v", tc.name, got, tc.drop)
		}
	}
	if got := testutil.ToFloat64(w.dropped.WithLabelValues("a")); got != 3 {
		t.Errorf("realtime_duplicates_dropped_total{topic=a} = %v, want 3", got)
	}
	// A resume that reads the range again drops what Drop dropped, while the first copy is
	// remembered.
	if !w.Replayed(rec("a", 0, 16, "k1", time.Minute+time.Second)) || w.Replayed(rec("a", 0, 15, "k1", time.Minute+time.Millisecond)) {
		t.Error("Replayed must drop the retry and keep the first copy")
	}
}

func TestReplayWithinRead(t *testing.T) {
	w, _ := New(Config{Window: time.Minute})
	r := w.Replay() // the Window never saw these records (e.g. they precede this node's start)
	if r.Drop(rec("a", 0, 1, "k", 0)) || !r.Drop(rec("a", 0, 2, "k", time.Second)) || r.Drop(rec("a", 1, 2, "k", time.Second)) {
		t.Error("a resume must drop the second record of a key within its read, and only in the same partition")
	}
	var none *Replay
	if none.Drop(rec("a", 0, 2, "k", 0)) {
		t.Error("a nil Replay drops nothing")
	}
}

func TestWindowMaxKeys(t *testing.T) {
	w, _ := New(Config{Window: time.Hour, MaxKeys: 2})
	w.Drop(rec("a", 0, 1, "k1", 0))
	w.Drop(rec("a", 1, 1, "k2", 0))
	w.Drop(rec("a", 0, 2, "k3", 0)) // k1 is forgotten early
	if got := testutil.ToFloat64(w.evicted); got != 1 {
		t.Errorf("evicted = %v, want 1", got)
	}
	if w.Drop(rec("a", 0, 3, "k1", time.Second)) {
		t.Error("a forgotten key is not a duplicate any more")
	}
	if !w.Drop(rec("a", 1, 2, "k2", time.Second)) && !w.Drop(rec("a", 0, 4, "k3", time.Second)) {
		t.Error("the keys kept still drop their retries")
	}
	if w.n > 2 {
		t.Errorf("%d keys remembered, more than MaxKeys 2", w.n)
	}
}
