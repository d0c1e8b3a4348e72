package notification

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDecodeExpiryAndCollapseKey(t *testing.T) {
	d := NewDecoder(NewValidator(), map[string]string{"custom": "custom-event"})
	raw, err := NewTopicDecoder(NewValidator(), map[string]Topic{"raw": {Event: "raw-event", Shape: Shape{Recipients: RecipientsKey, Value: ValueRawString}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		headers  []kgo.RecordHeader
		expires  time.Time
		collapse string
		errCode  string
	}{
		{"none", nil, time.Time{}, "", ""},
		{"expires-at", h("expires-at", "2026-11-29T10:05:00Z"), ts.Add(5 * time.Minute), "", ""},
		{"expires-at with an offset and fraction", h("expires-at", "2026-11-29T11:05:00.5+01:00"), ts.Add(5*time.Minute + 500*time.Millisecond), "", ""},
		{"ttl-ms from the record time", h("ttl-ms", "90000"), ts.Add(90 * time.Second), "", ""},
		{"ttl-ms zero", h("ttl-ms", "0"), ts, "", ""},
		{"both: ttl-ms earlier", h("expires-at", "2026-11-29T11:00:00Z", "ttl-ms", "1000"), ts.Add(time.Second), "", ""},
		{"both: expires-at earlier", h("ttl-ms", "7200000", "expires-at", "2026-11-29T10:00:02Z"), ts.Add(2 * time.Second), "", ""},
		{"collapse-key", h("collapse-key", "mastery:c1"), time.Time{}, "mastery:c1", ""},
		{"collapse-key of 256 bytes", h("collapse-key", strings.Repeat("é", 128)), time.Time{}, strings.Repeat("é", 128), ""},
		{"expires-at not RFC 3339", h("expires-at", "tomorrow"), time.Time{}, "", "invalid-expiry"},
		{"expires-at empty", h("expires-at", ""), time.Time{}, "", "invalid-expiry"},
		{"expires-at twice", h("expires-at", "2026-11-29T10:05:00Z", "expires-at", "2026-11-29T10:05:00Z"), time.Time{}, "", "invalid-expiry"},
		{"ttl-ms negative", h("ttl-ms", "-1"), time.Time{}, "", "invalid-expiry"},
		{"ttl-ms with a sign", h("ttl-ms", "+5"), time.Time{}, "", "invalid-expiry"},
		{"ttl-ms fractional", h("ttl-ms", "1.5"), time.Time{}, "", "invalid-expiry"},
		{"ttl-ms leading zero", h("ttl-ms", "007"), time.Time{}, "", "invalid-expiry"},
		{"ttl-ms overflowing a duration", h("ttl-ms", "9223372036855"), time.Time{}, "", "invalid-expiry"},
		{"ttl-ms twice", h("ttl-ms", "1", "ttl-ms", "2"), time.Time{}, "", "invalid-expiry"},
		{"collapse-key empty", h("collapse-key", ""), time.Time{}, "", "invalid-collapse-key"},
		{"collapse-key of 257 bytes", h("collapse-key", strings.Repeat("k", 257)), time.Time{}, "", "invalid-collapse-key"},
		{"collapse-key not UTF-8", []kgo.RecordHeader{{Key: "collapse-key", Value: []byte{0xff}}}, time.Time{}, "", "invalid-collapse-key"},
		{"collapse-key twice", h("collapse-key", "a", "collapse-key", "a"), time.Time{}, "", "invalid-collapse-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				d   *Decoder
				rec *kgo.Record
			}{
				{d, &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`), Timestamp: ts, Headers: tc.headers}},
				{raw, &kgo.Record{Topic: "raw", Key: []byte("u1"), Value: []byte("hi"), Timestamp: ts, Headers: tc.headers}},
			} {
				ev, err := c.d.Decode(c.rec)
				if tc.errCode != "" {
					var de *DecodeError
					if !errors.As(err, &de) || de.Code != tc.errCode {
						t.Fatalf("%s: err = %v, want code %s", c.rec.Topic, err, tc.errCode)
					}
					if err := CheckDeliveryHeader(tc.headers[0].Key, tc.headers[0].Value); err == nil && len(tc.headers) == 1 {
						t.Errorf("CheckDeliveryHeader passes the value Decode refuses")
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", c.rec.Topic, err)
				}
				if !ev.ExpiresAt.Equal(tc.expires) || ev.CollapseKey != tc.collapse {
					t.Errorf("%s: expires %v collapse %q, want %v %q", c.rec.Topic, ev.ExpiresAt, ev.CollapseKey, tc.expires, tc.collapse)
				}
			}
		})
	}
}

func TestEventExpired(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	e := &Event{ExpiresAt: at}
	if e.Expired(at.Add(-time.Nanosecond)) || !e.Expired(at) || !e.Expired(at.Add(time.Hour)) {
		t.Error("an event expires at its ExpiresAt, not before")
	}
	if (&Event{}).Expired(at.Add(100 * 365 * 24 * time.Hour)) {
		t.Error("an event without ExpiresAt never expires")
	}
}

func TestForReplay(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ev := func(part int32, off int64, sec int, key string, expires time.Time) *Event {
		return &Event{Topic: "t", Partition: part, Offset: off, Time: now.Add(time.Duration(sec) * time.Second), CollapseKey: key, ExpiresAt: expires}
	}
	ids := func(evs []*Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID())
		}
		return out
	}
	var ten []*Event
	for i := range 10 {
		ten = append(ten, ev(0, int64(i), -100+i, "mastery:c1", time.Time{}))
	}
	for _, tc := range []struct {
		name               string
		in                 []*Event
		want               []string
		expired, collapsed int
	}{
		{"nothing to drop", []*Event{ev(0, 1, 0, "", time.Time{}), ev(1, 1, 0, "", now.Add(time.Second))}, []string{"t:0:1", "t:1:1"}, 0, 0},
		{"ten with one key: the newest", ten, []string{"t:0:9"}, 0, 9},
		{"expired dropped, at its instant too", []*Event{ev(0, 1, 0, "", now), ev(0, 2, 0, "", now.Add(-time.Hour)), ev(0, 3, 0, "", time.Time{})}, []string{"t:0:3"}, 2, 0},
		{"the newest by offset in a partition, whatever the times", []*Event{ev(0, 5, 10, "k", time.Time{}), ev(0, 6, 0, "k", time.Time{})}, []string{"t:0:6"}, 0, 1},
		{"across partitions the later time", []*Event{ev(0, 9, 0, "k", time.Time{}), ev(1, 2, 5, "k", time.Time{}), ev(0, 10, -5, "other", time.Time{})}, []string{"t:1:2", "t:0:10"}, 0, 1},
		{"an expired newest does not hide the older one", []*Event{ev(0, 1, 0, "k", time.Time{}), ev(0, 2, 0, "k", now)}, []string{"t:0:1"}, 1, 0},
		{"order kept", []*Event{ev(1, 1, 0, "a", time.Time{}), ev(0, 1, 0, "", time.Time{}), ev(1, 2, 0, "a", time.Time{}), ev(0, 2, 0, "b", time.Time{})}, []string{"t:0:1", "t:1:2", "t:0:2"}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept, expired, collapsed := ForReplay(tc.in, now)
			if got := ids(kept); !slices.Equal(got, tc.want) || expired != tc.expired || collapsed != tc.collapsed {
				t.Errorf("got %v expired %d collapsed %d, want %v %d %d", got, expired, collapsed, tc.want, tc.expired, tc.collapsed)
			}
		})
	}
}
