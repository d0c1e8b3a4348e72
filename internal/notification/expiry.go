package notification

import (
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The record headers that bound a notification's usefulness (docs/design.md, "Delivery
// semantics: expiry and collapse"). Each may appear at most once per record; a record that
// breaks a rule below goes to the dead-letter topic ("invalid-expiry", "invalid-collapse-key").
const (
	// HeaderExpiresAt is an RFC 3339 date-time (e.g. 2026-11-29T10:00:00Z, fractional seconds and
	// offsets allowed) from which the event is no longer delivered, live or replayed.
	HeaderExpiresAt = "expires-at"
	// HeaderTTLMs is a decimal count of milliseconds, 0 to MaxTTLMs, after the record's timestamp
	// from which the event is no longer delivered. With expires-at too, the earlier time wins.
	HeaderTTLMs = "ttl-ms"
	// HeaderCollapseKey is 1 to MaxCollapseKeyBytes bytes of UTF-8: of the events with one
	// collapse key that a resume replays to a user, only the newest is sent. Live delivery is
	// unchanged.
	HeaderCollapseKey = "collapse-key"

	// MaxCollapseKeyBytes is the longest collapse key, in bytes.
	MaxCollapseKeyBytes = 256
	// MaxTTLMs is the largest ttl-ms: the longest duration time.Duration holds (about 292 years).
	MaxTTLMs = math.MaxInt64 / int64(time.Millisecond)
)

// CheckDeliveryHeader returns nil when value is a valid value of the header key (expires-at,
// ttl-ms or collapse-key; any other key is not checked), else an error saying why. It is the rule
// Decode applies; the HTTP API applies it to the headers a producer sends.
func CheckDeliveryHeader(key string, value []byte) error {
	var err error
	switch key {
	case HeaderExpiresAt:
		_, err = parseExpiresAt(value)
	case HeaderTTLMs:
		_, err = parseTTLMs(value)
	case HeaderCollapseKey:
		err = CheckCollapseKey(string(value))
	}
	return err
}

func parseExpiresAt(v []byte) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, string(v))
	if err != nil {
		return time.Time{}, errors.New("must be an RFC 3339 date-time, e.g. 2026-11-29T10:00:00Z")
	}
	return t, nil
}

func parseTTLMs(v []byte) (time.Duration, error) {
	bad := len(v) == 0 || len(v) > 1 && v[0] == '0'
	for _, c := range v {
		bad = bad || c < '0' || c > '9'
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if bad || err != nil || n > MaxTTLMs {
		return 0, errors.New("must be a whole number of milliseconds from 0 to " + strconv.FormatInt(MaxTTLMs, 10) + ", in decimal digits")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// CheckCollapseKey returns nil when key is 1 to MaxCollapseKeyBytes bytes of UTF-8.
func CheckCollapseKey(key string) error {
	if len(key) == 0 || len(key) > MaxCollapseKeyBytes || !utf8.ValidString(key) {
		return errors.New("must be 1 to " + strconv.Itoa(MaxCollapseKeyBytes) + " bytes of UTF-8")
	}
	return nil
}

// deliveryOf reads rec's expiry and collapse key from its headers (see HeaderExpiresAt,
// HeaderTTLMs, HeaderCollapseKey): the zero time and "" when it has none.
func deliveryOf(rec *kgo.Record) (expires time.Time, collapse string, derr *DecodeError) {
	var seen [3]int
	for _, h := range rec.Headers {
		var err error
		code := "invalid-expiry"
		switch h.Key {
		case HeaderExpiresAt:
			seen[0]++
			var t time.Time
			if t, err = parseExpiresAt(h.Value); err == nil && (expires.IsZero() || t.Before(expires)) {
				expires = t
			}
		case HeaderTTLMs:
			seen[1]++
			var d time.Duration
			if d, err = parseTTLMs(h.Value); err == nil {
				if t := rec.Timestamp.Add(d); expires.IsZero() || t.Before(expires) {
					expires = t
				}
			}
		case HeaderCollapseKey:
			seen[2]++
			code = "invalid-collapse-key"
			collapse = string(h.Value)
			err = CheckCollapseKey(collapse)
		default:
			continue
		}
		if err != nil {
			return time.Time{}, "", &DecodeError{Code: code, Detail: "the " + h.Key + " header " + err.Error()}
		}
	}
	for i, key := range []string{HeaderExpiresAt, HeaderTTLMs, HeaderCollapseKey} {
		if seen[i] > 1 { // which one was meant is anybody's guess, as with event-type
			code := "invalid-expiry"
			if key == HeaderCollapseKey {
				code = "invalid-collapse-key"
			}
			return time.Time{}, "", &DecodeError{Code: code, Detail: "the " + key + " header appears " + strconv.Itoa(seen[i]) + " times; a record may carry it at most once"}
		}
	}
	return expires, collapse, nil
}

// Expired reports whether e is no longer to be delivered at now: it has an expiry and now is at
// or past it.
func (e *Event) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

// ForReplay returns the events of one user's replay that are still to be sent at now, in their
// order: without the expired ones and, of the events sharing a collapse key, only the newest.
// Newest is the higher offset within one partition (a key-partitioned topic keeps a collapse
// key in one partition, where offsets order it exactly); across partitions the later record
// timestamp, then the later topic and partition name the newest. It also returns how many
// events it dropped as expired and as collapsed (an expired event is not counted as collapsed,
// and does not hide an older event of its key).
func ForReplay(events []*Event, now time.Time) (kept []*Event, expired, collapsed int) {
	newest := map[string]*Event{}
	for _, e := range events {
		if e.Expired(now) {
			expired++
			continue
		}
		if e.CollapseKey == "" {
			continue
		}
		if old, ok := newest[e.CollapseKey]; !ok || newer(e, old) {
			newest[e.CollapseKey] = e
		}
	}
	if expired == 0 && len(newest) == 0 {
		return events, 0, 0
	}
	kept = make([]*Event, 0, len(events)-expired)
	for _, e := range events {
		switch {
		case e.Expired(now):
		case e.CollapseKey != "" && newest[e.CollapseKey] != e:
			collapsed++
		default:
			kept = append(kept, e)
		}
	}
	return kept, expired, collapsed
}

// newer reports whether a is newer than b (see ForReplay).
func newer(a, b *Event) bool {
	if a.Topic == b.Topic && a.Partition == b.Partition {
		return a.Offset > b.Offset
	}
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	if a.Topic != b.Topic {
		return a.Topic > b.Topic
	}
	return a.Partition > b.Partition
}
