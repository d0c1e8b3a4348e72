package status

import (
	"context"
	"log/slog"
	"sync"
	"unicode/utf8"
)

// Bounds of what an ErrorLog keeps of one record.
const (
	DefaultErrorLogSize = 50  // records kept when NewErrorLog is given zero
	maxAttrs            = 8   // attributes kept per record, the first ones
	maxValueBytes       = 256 // bytes kept of an attribute's value or a message
)

// LogRecord is one warning or error as the status page shows it.
type LogRecord struct {
	Time    int64  `json:"t"` // Unix milliseconds
	Level   string `json:"level"`
	Message string `json:"msg"`
	Attrs   []Attr `json:"attrs"` // at most 8, in logged order; group members as "group.key"
}

// Attr is one attribute of a LogRecord, its value as text (at most 256 bytes).
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ErrorLog keeps the last records of level WARN and above that pass through its Handler. Its
// methods are safe for concurrent use; recording costs one lock and a few short strings, and the
// ring is bounded, so a flood of errors costs no memory.
type ErrorLog struct {
	mu   sync.Mutex
	ring []LogRecord
	next int
	size int
}

// NewErrorLog returns an ErrorLog that keeps the last size records (zero: DefaultErrorLogSize).
func NewErrorLog(size int) *ErrorLog {
	if size <= 0 {
		size = DefaultErrorLogSize
	}
	return &ErrorLog{size: size, ring: make([]LogRecord, 0, size)}
}

// Records returns the kept records, oldest first.
func (l *ErrorLog) Records() []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LogRecord, 0, len(l.ring))
	for i := range l.ring {
		out = append(out, l.ring[(l.next+i)%len(l.ring)])
	}
	return out
}

func (l *ErrorLog) add(r LogRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < l.size {
		l.ring = append(l.ring, r)
		return
	}
	l.ring[l.next] = r
	l.next = (l.next + 1) % l.size
}

// Handler wraps next so that every record of level WARN and above is also kept in l. What next
// writes does not change: records go to next exactly when next is enabled for their level.
func (l *ErrorLog) Handler(next slog.Handler) slog.Handler {
	return &errorHandler{log: l, next: next}
}

type errorHandler struct {
	log   *ErrorLog
	next  slog.Handler
	group string // prefix of the keys of later attributes: "a.b."
	attrs []Attr // from WithAttrs
}

func (h *errorHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn || h.next.Enabled(ctx, level)
}

func (h *errorHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		rec := LogRecord{Time: r.Time.UnixMilli(), Level: r.Level.String(), Message: cut(r.Message),
			Attrs: append([]Attr{}, h.attrs...)}
		r.Attrs(func(a slog.Attr) bool {
			rec.Attrs = appendAttr(rec.Attrs, h.group, a)
			return len(rec.Attrs) < maxAttrs
		})
		h.log.add(rec)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *errorHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = append([]Attr{}, h.attrs...)
	for _, a := range attrs {
		c.attrs = appendAttr(c.attrs, h.group, a)
	}
	return &c
}

func (h *errorHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	if name != "" {
		c.group = h.group + name + "."
	}
	return &c
}

// appendAttr appends a (group members flattened as "group.key") unless attrs holds maxAttrs.
func appendAttr(attrs []Attr, prefix string, a slog.Attr) []Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range v.Group() {
			attrs = appendAttr(attrs, prefix, g)
		}
		return attrs
	}
	if len(attrs) >= maxAttrs || a.Equal(slog.Attr{}) {
		return attrs
	}
	return append(attrs, Attr{Key: prefix + a.Key, Value: cut(v.String())})
}

// cut shortens s to maxValueBytes, marking the cut with "…".
func cut(s string) string {
	if len(s) <= maxValueBytes {
		return s
	}
	i := maxValueBytes
	for i > 0 && !utf8.RuneStart(s[i]) { // not in the middle of a UTF-8 sequence
		i--
	}
	s = s[:i]
	return s + "…"
}
