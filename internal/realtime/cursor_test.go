package realtime

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	cc, err := NewCursorCodec("cluster-a", []string{"concept-notifications", "session-notifications"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range [][]Position{
		{},
		{{"concept-notifications", 0, 0}},
		{{"concept-notifications", 0, 42}, {"concept-notifications", 1, 1 << 40}, {"session-notifications", 2, 7}},
	} {
		got, err := cc.Decode(cc.Encode(ps))
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", ps, err)
		}
		if !slices.Equal(got, ps) {
			t.Errorf("round trip of %v gave %v", ps, got)
		}
	}
}

func TestCursorRefusals(t *testing.T) {
	cc, _ := NewCursorCodec("cluster-a", []string{"concept-notifications"})
	other, _ := NewCursorCodec("cluster-b", []string{"concept-notifications"})
	otherTopics, _ := NewCursorCodec("cluster-a", []string{"elsewhere"})
	valid := cc.Encode([]Position{{"concept-notifications", 0, 5}})
	for _, tc := range []struct {
		name, cursor, reason string
	}{
		{"empty", "", "malformed"},
		{"garbage", "garbage", "malformed"},
		{"event id", "x:7:1", "malformed"},
		{"10 KiB of a", strings.Repeat("a", 10<<10), "malformed"},
		{"too long", strings.Repeat("A", maxCursorLen+1), "malformed"},
		{"truncated", valid[:len(valid)-2], "malformed"},
		{"trailing bytes", valid + "AAAA", "malformed"},
		{"other cluster", other.Encode([]Position{{"concept-notifications", 0, 5}}), "other-cluster"},
		{"unknown topic", otherTopics.Encode([]Position{{"elsewhere", 0, 5}}), "unknown-topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cc.Decode(tc.cursor)
			var ce *CursorError
			if !errors.As(err, &ce) || ce.Reason != tc.reason {
				t.Errorf("Decode = %v, want reason %q", err, tc.reason)
			}
		})
	}
}

func TestCursorCodecRefusesCollidingTopics(t *testing.T) {
	if _, err := NewCursorCodec("c", []string{"a", "a"}); err != nil {
		t.Errorf("the same topic twice is no collision: %v", err)
	}
}

func FuzzCursorDecode(f *testing.F) {
	cc, _ := NewCursorCodec("cluster-a", []string{"concept-notifications", "session-notifications"})
	f.Add(cc.Encode([]Position{{"concept-notifications", 0, 42}}))
	f.Add("garbage")
	f.Add("AQAAAAAB")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := cc.Decode(s)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to a cursor that decodes to the same positions.
		again, err := cc.Decode(cc.Encode(ps))
		if err != nil || !slices.Equal(again, ps) {
			t.Fatalf("re-encoding %v: %v %v", ps, again, err)
		}
	})
}

func TestFNV32MatchesHashFNV(t *testing.T) {
	for _, s := range []string{"", "a", "concept-notifications", "user-12345", "ünïcödé"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		if got := fnv32(s); got != h.Sum32() {
			t.Errorf("fnv32(%q) = %08x, want %08x", s, got, h.Sum32())
		}
	}
}

// encodeV1 is the version 1 encoder every event used before cursor frames, kept to prove that
// cursors clients still hold are honoured.
func encodeV1(cluster string, ps []Position) string {
	b := []byte{cursorV1}
	b = binary.BigEndian.AppendUint32(b, fnv32(cluster))
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.BigEndian.AppendUint32(b, fnv32(p.Topic))
		b = binary.AppendUvarint(b, uint64(p.Partition))
		b = binary.AppendUvarint(b, uint64(p.Offset))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestCursorDecodesVersion1(t *testing.T) {
	cc, _ := NewCursorCodec("cluster-a", []string{"concept-notifications", "session-notifications"})
	ps := []Position{{"concept-notifications", 0, 42}, {"concept-notifications", 1, 1 << 40}, {"session-notifications", 2, 7}}
	got, err := cc.Decode(encodeV1("cluster-a", ps))
	if err != nil || !slices.Equal(got, ps) {
		t.Fatalf("Decode(v1) = %v, %v; want %v", got, err, ps)
	}
	if _, err := cc.Decode(encodeV1("cluster-b", ps)); err == nil {
		t.Error("a version 1 cursor of another cluster was accepted")
	}
	// Out of order in the cursor: sorted on decode, so that it re-encodes as version 2.
	got, err = cc.Decode(encodeV1("cluster-a", []Position{ps[2], ps[1], ps[0]}))
	if err != nil || !slices.Equal(got, ps) {
		t.Errorf("Decode(v1, unsorted) = %v, %v; want %v", got, err, ps)
	}
	if _, err := cc.Decode(encodeV1("cluster-a", []Position{ps[0], ps[0]})); err == nil {
		t.Error("a partition listed twice was accepted")
	}
}

// TestCursorVersion2IsSmaller: at 2 topics x 100 partitions with offsets of similar size, the
// version 2 cursor is well under half the version 1 one (3 bytes a partition instead of 8).
func TestCursorVersion2IsSmaller(t *testing.T) {
	cc, _ := NewCursorCodec("cluster-a", []string{"concept-notifications", "session-notifications"})
	var ps []Position
	for _, topic := range []string{"concept-notifications", "session-notifications"} {
		for p := range int32(100) {
			ps = append(ps, Position{topic, p, 1_000_000 + int64(p*37%1000)})
		}
	}
	v1, v2 := encodeV1("cluster-a", ps), cc.Encode(ps)
	if len(v2)*2 > len(v1) {
		t.Errorf("version 2 is %d bytes, version 1 %d: want under half", len(v2), len(v1))
	}
	if got, err := cc.Decode(v2); err != nil || !slices.Equal(got, ps) {
		t.Errorf("round trip: %v", err)
	}
}

func TestParseResume(t *testing.T) {
	for _, tc := range []struct {
		token, cursor string
		ids           []Position
		bad           bool
	}{
		{token: "AbC", cursor: "AbC"},
		{token: "AbC~", cursor: "AbC"},
		{token: "AbC~concept-notifications:3:17", cursor: "AbC", ids: []Position{{"concept-notifications", 3, 17}}},
		{token: "AbC~a.b-c_d:0:1,x:12:0", cursor: "AbC", ids: []Position{{"a.b-c_d", 0, 1}, {"x", 12, 0}}},
		{token: "AbC~x:1", bad: true},
		{token: "AbC~x:1:", bad: true},
		{token: "AbC~:1:2", bad: true},
		{token: "AbC~x:-1:2", bad: true},
		{token: "AbC~x:1:2,", bad: true},
		{token: "AbC~" + strings.Repeat("x:1:2,", maxResumeIDs) + "x:1:2", bad: true},
	} {
		cursor, ids, err := ParseResume(tc.token)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseResume(%.40q) accepted", tc.token)
			}
			continue
		}
		if err != nil || cursor != tc.cursor || !slices.Equal(ids, tc.ids) {
			t.Errorf("ParseResume(%q) = %q, %v, %v; want %q, %v", tc.token, cursor, ids, err, tc.cursor, tc.ids)
		}
	}
}

// TestAdvance: an ID moves its partition's position past it (the client has every event of its
// user there up to it); an ID of a partition the cursor lacks is kept to be dropped exactly.
func TestAdvance(t *testing.T) {
	from := []Position{{"a", 0, 10}, {"a", 1, 5}}
	got, rest := advance(from, []Position{{"a", 0, 12}, {"a", 0, 11}, {"a", 1, 3}, {"b", 0, 9}})
	want := []Position{{"a", 0, 13}, {"a", 1, 5}}
	if !slices.Equal(got, want) || len(rest) != 1 || !rest[Position{"b", 0, 9}] {
		t.Errorf("advance = %v, %v; want %v and b:0:9", got, rest, want)
	}
	if from[0].Offset != 10 {
		t.Error("advance changed its argument")
	}
}

// TestEventFrameSizeIsConstantInPartitions: with 2 topics x 100 partitions assigned, an event
// frame is at most twice its payload plus 200 bytes in every format (before cursor frames, every
// frame carried the O(partitions) cursor: 1,781 bytes for a 62-byte payload).
func TestEventFrameSizeIsConstantInPartitions(t *testing.T) {
	topics := []string{"concept-notifications", "session-notifications"}
	h := NewHub(HubConfig{})
	cc, _ := NewCursorCodec("cluster", topics)
	h.SetCursorCodec(cc)
	start := map[string]map[int32]int64{}
	for _, topic := range topics {
		start[topic] = map[int32]int64{}
		for p := range int32(100) {
			start[topic][p] = 1_000_000 + int64(p)*997
		}
	}
	h.Assigned(start)
	data := []byte(`{"conceptId":"c1","conceptName":"JavaScript Arrays","masteryLevel":0.9}`)
	n := event("concept-notifications", 99, 1_100_000, "alice")
	n.Data = data
	ev := h.Publish(n)
	for _, f := range []Format{FormatWebSocket, FormatSSE, FormatSocketIO, FormatSocketIOPlain} {
		if got, limit := len(ev.Frame(f)), 2*len(data)+200; got > limit {
			t.Errorf("format %d: frame of %d bytes for %d of payload, want at most %d: %q", f, got, len(data), limit, ev.Frame(f))
		}
	}
	// The cursor itself is what grows: far from the frame limit, sent once every CursorEvery.
	h.pubMu.Lock()
	cursor := h.cursorLocked()
	h.pubMu.Unlock()
	if len(cursor) < 200 {
		t.Errorf("a cursor of 200 partitions is %d bytes: the test does not cover many partitions", len(cursor))
	}
	t.Logf("event frames: ws %d, sse %d, socketio %d B; cursor %d B", len(ev.Frame(FormatWebSocket)), len(ev.Frame(FormatSSE)), len(ev.Frame(FormatSocketIO)), len(cursor))
}
