package realtime

import (
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
