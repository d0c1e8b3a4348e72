package status

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestErrorLogKeepsWarningsAndErrors(t *testing.T) {
	var out bytes.Buffer
	l := NewErrorLog(3)
	log := slog.New(l.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log.Info("started")
	log.With("component", "consumer").WithGroup("kafka").Warn("fetch failed", "err", errors.New("broker down"), "partition", 3)
	log.Error("commit failed", slog.Group("offset", "topic", "t", "partition", 1))
	recs := l.Records()
	if len(recs) != 2 {
		t.Fatalf("records %+v, want the warning and the error", recs)
	}
	w := recs[0]
	if w.Level != "WARN" || w.Message != "fetch failed" || w.Time == 0 {
		t.Errorf("first record %+v", w)
	}
	if got := fmt.Sprint(w.Attrs); got != "[{component consumer} {kafka.err broker down} {kafka.partition 3}]" {
		t.Errorf("attrs %s", got)
	}
	if got := fmt.Sprint(recs[1].Attrs); recs[1].Level != "ERROR" || got != "[{offset.topic t} {offset.partition 1}]" {
		t.Errorf("second record %+v", recs[1])
	}
	// What the wrapped handler writes is unchanged: all three lines.
	if n := strings.Count(out.String(), "\n"); n != 3 || !strings.Contains(out.String(), "kafka.err=\"broker down\"") {
		t.Errorf("stderr got %d lines:\n%s", n, out.String())
	}
}

func TestErrorLogRingAndBounds(t *testing.T) {
	var out bytes.Buffer
	l := NewErrorLog(3)
	// LOG_LEVEL=error: warnings are kept for the page but still not written.
	log := slog.New(l.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError})))
	for i := range 5 {
		log.Warn(fmt.Sprint("w", i))
	}
	var msgs []string
	for _, r := range l.Records() {
		msgs = append(msgs, r.Message)
	}
	if fmt.Sprint(msgs) != "[w2 w3 w4]" {
		t.Errorf("kept %v, want the last three, oldest first", msgs)
	}
	if out.Len() != 0 {
		t.Errorf("warnings written below LOG_LEVEL=error:\n%s", out.String())
	}

	args := []any{"long", "x" + strings.Repeat("é", 300)} // byte 256 is inside an é
	for i := range 20 {
		args = append(args, fmt.Sprint("k", i), i)
	}
	log.Error(strings.Repeat("x", 1000), args...)
	r := l.Records()[2]
	if len(r.Attrs) != maxAttrs || len(r.Message) > maxValueBytes+len("…") || len(r.Attrs[0].Value) > maxValueBytes+len("…") {
		t.Errorf("record not bounded: %d attrs, message %d bytes, value %d bytes", len(r.Attrs), len(r.Message), len(r.Attrs[0].Value))
	}
	if !strings.HasSuffix(r.Attrs[0].Value, "é…") {
		t.Errorf("value cut inside a UTF-8 sequence: %q", r.Attrs[0].Value[len(r.Attrs[0].Value)-8:])
	}
}
