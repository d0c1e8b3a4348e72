// Package dedup drops the records of a producer's retries: a record whose idempotency-key
// header repeats the key of an earlier record of the same topic and partition, with a record
// timestamp within the window of the first, is a duplicate (docs/design.md, "Delivery
// semantics"). The header carries the HTTP Idempotency-Key request header (IETF draft
// "The Idempotency-Key HTTP Header Field", draft-ietf-httpapi-idempotency-key-header).
//
// The decision depends only on the records of one partition, in offset order, and their
// timestamps (not on the time they are read), so every node, which consumes every record,
// drops the same ones without a shared store.
package dedup

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Header is the record header that carries the idempotency key.
const Header = "idempotency-key"

// MaxKeyLen is the longest idempotency key, in bytes.
const MaxKeyLen = 255

// ErrInvalidKey is returned by ParseKey for a key that is empty, longer than MaxKeyLen or not
// printable ASCII.
var ErrInvalidKey = errors.New("invalid idempotency key")

// ParseKey returns the key an Idempotency-Key header value names: the value itself, or the
// content of a Structured Fields string (RFC 8941 section 3.3.3, the draft's form: the value
// in double quotes, \" and \\ escaped). The key must be 1 to MaxKeyLen bytes of printable
// ASCII (0x20 to 0x7E); otherwise the error wraps ErrInvalidKey.
func ParseKey(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b []byte
		for i := 1; i < len(v)-1; i++ {
			c := v[i]
			if c == '\\' {
				i++
				if i == len(v)-1 || (v[i] != '"' && v[i] != '\\') {
					return "", fmt.Errorf("%w: a bad escape in its quoted form", ErrInvalidKey)
				}
				c = v[i]
			} else if c == '"' {
				return "", fmt.Errorf("%w: an unescaped quote in its quoted form", ErrInvalidKey)
			}
			b = append(b, c)
		}
		v = string(b)
	}
	switch {
	case v == "":
		return "", fmt.Errorf("%w: it is empty", ErrInvalidKey)
	case len(v) > MaxKeyLen:
		return "", fmt.Errorf("%w: it is %d bytes, more than %d", ErrInvalidKey, len(v), MaxKeyLen)
	}
	for i := range len(v) {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", fmt.Errorf("%w: byte %d is not printable ASCII", ErrInvalidKey, i)
		}
	}
	return v, nil
}

// KeyOf returns rec's idempotency key: the value of its first idempotency-key header, or ""
// when it has none.
func KeyOf(rec *kgo.Record) string {
	for _, h := range rec.Headers {
		if h.Key == Header {
			return string(h.Value)
		}
	}
	return ""
}

// Config configures a Window.
type Config struct {
	// Window is how far apart, in record timestamps, a record may be from the first record
	// with its key and still be dropped (zero: 5 min).
	Window time.Duration
	// MaxKeys bounds the keys remembered, all partitions together (zero: 100,000). Past it the
	// oldest key of the partition is forgotten before its window ends (counted by
	// realtime_idempotency_keys_evicted_total): a retry of it would then be delivered.
	MaxKeys int
	// Metrics registers realtime_duplicates_dropped_total{topic},
	// realtime_idempotency_keys_evicted_total and realtime_idempotency_keys; nil for none.
	Metrics prometheus.Registerer
}

// Window remembers, per topic and partition, the idempotency keys of the last Config.Window of
// record timestamps. Its methods are safe for concurrent use.
type Window struct {
	window  time.Duration
	maxKeys int

	mu    sync.Mutex
	parts map[part]*partition
	n     int // keys remembered

	dropped *prometheus.CounterVec
	evicted prometheus.Counter
	keys    prometheus.Gauge
}

type part struct {
	topic     string
	partition int32
}

// partition is one partition's keys: first holds each key's first record, order the same
// entries oldest first.
type partition struct {
	first map[string]entry
	order []keyed
}

type entry struct {
	offset int64
	at     time.Time
}

type keyed struct {
	key string
	entry
}

// New returns an empty Window. Errors: a metric registration conflict.
func New(cfg Config) (*Window, error) {
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	w := &Window{
		window:  cfg.Window,
		maxKeys: cfg.MaxKeys,
		parts:   map[part]*partition{},
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_duplicates_dropped_total",
			Help: "Records dropped because an earlier record of their topic and partition had the same idempotency-key header within REALTIME_IDEMPOTENCY_WINDOW, by topic.",
		}, []string{"topic"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_idempotency_keys_evicted_total",
			Help: "Idempotency keys forgotten before their window ended because REALTIME_IDEMPOTENCY_MAX_KEYS were remembered.",
		}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_idempotency_keys",
			Help: "Idempotency keys remembered to drop duplicates.",
		}),
	}
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{w.dropped, w.evicted, w.keys} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("dedup metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Drop reports whether rec, the next record of its partition in offset order, is a duplicate:
// an earlier record of its topic and partition had the same idempotency key and a timestamp
// at most the window before rec's. A record without the header is never one. A record that is
// not a duplicate is remembered (when it has a key); a duplicate is counted and not.
func (w *Window) Drop(rec *kgo.Record) bool {
	key := KeyOf(rec)
	if key == "" {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	pk := part{rec.Topic, rec.Partition}
	p := w.parts[pk]
	if p == nil {
		p = &partition{first: map[string]entry{}}
		w.parts[pk] = p
	}
	w.expire(p, rec.Timestamp)
	if e, ok := p.first[key]; ok && e.offset < rec.Offset && !rec.Timestamp.After(e.at.Add(w.window)) {
		w.dropped.WithLabelValues(rec.Topic).Inc()
		return true
	}
	if _, ok := p.first[key]; ok {
		return false // the same record again (a rebalance re-delivered it): not a duplicate
	}
	for w.n >= w.maxKeys {
		victim := p
		if len(p.order) == 0 {
			for _, other := range w.parts {
				if len(other.order) > 0 {
					victim = other
					break
				}
			}
		}
		w.forget(victim)
		w.evicted.Inc()
	}
	e := entry{offset: rec.Offset, at: rec.Timestamp}
	p.first[key] = e
	p.order = append(p.order, keyed{key, e})
	w.n++
	w.keys.Set(float64(w.n))
	return false
}

// Replayed reports whether rec, read again for a resume, was or would have been dropped by
// Drop: the first record of its key that the Window remembers is an earlier offset of its
// partition, within the window. A key whose first record the Window no longer remembers is
// not a duplicate here: see Replay for duplicates within one read.
func (w *Window) Replayed(rec *kgo.Record) bool {
	key := KeyOf(rec)
	if key == "" {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.parts[part{rec.Topic, rec.Partition}]
	if p == nil {
		return false
	}
	e, ok := p.first[key]
	return ok && e.offset < rec.Offset && !rec.Timestamp.After(e.at.Add(w.window))
}

// expire forgets p's keys whose first record is more than the window older than now (a
// record timestamp). The caller holds w.mu.
func (w *Window) expire(p *partition, now time.Time) {
	for len(p.order) > 0 && now.Sub(p.order[0].at) > w.window {
		w.forget(p)
	}
}

// forget forgets p's oldest key. The caller holds w.mu.
func (w *Window) forget(p *partition) {
	k := p.order[0]
	p.order[0] = keyed{}
	p.order = p.order[1:]
	if e, ok := p.first[k.key]; ok && e.offset == k.offset {
		delete(p.first, k.key)
	}
	w.n--
	w.keys.Set(float64(w.n))
}

// Replay de-duplicates the records of one read (a resume) by the Window's rule, for records
// whose first copy the Window does not remember: first copies within the read. Not safe for
// concurrent use; make one per read with Window.Replay.
type Replay struct {
	w     *Window
	first map[string]entry // by topic, partition and key
}

// Replay returns a de-duplicator for one read of records in offset order per partition.
func (w *Window) Replay() *Replay { return &Replay{w: w} }

// Drop reports whether rec is a duplicate: by the Window (Replayed), or of an earlier record
// of this read. A nil *Replay drops nothing.
func (r *Replay) Drop(rec *kgo.Record) bool {
	if r == nil {
		return false
	}
	key := KeyOf(rec)
	if key == "" {
		return false
	}
	if r.w.Replayed(rec) {
		return true
	}
	k := rec.Topic + "\x00" + strconv.Itoa(int(rec.Partition)) + "\x00" + key
	if e, ok := r.first[k]; ok && e.offset < rec.Offset && !rec.Timestamp.After(e.at.Add(r.w.window)) {
		return true
	}
	if r.first == nil {
		r.first = map[string]entry{}
	}
	r.first[k] = entry{offset: rec.Offset, at: rec.Timestamp}
	return false
}
