package kafka

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

const (
	// sampleBurst is how many lines of one kind a sampledLog writes in full per sampleInterval.
	sampleBurst = 5
	// sampleInterval is the window of a sampledLog: the lines past sampleBurst in it are
	// counted, and reported by one summary line when it ends.
	sampleInterval = 10 * time.Second
)

// sampledLog writes one kind of per-record line (a poison record dead-lettered, a dead-letter
// copy that failed) so that a flood of them costs a bounded number of lines: the first
// sampleBurst lines of a window of sampleInterval (which begins at its first line) are written
// in full; the others are counted by key, and one summary line at the end of the window gives
// their count by key. Every record is counted in metrics regardless. Safe for concurrent use;
// Close writes the last summary.
type sampledLog struct {
	log      *slog.Logger
	level    slog.Level
	summary  string // the summary line's message
	interval time.Duration

	mu      sync.Mutex
	logged  int            // lines written in full in this window
	counts  map[string]int // lines not written in this window, by key
	timer   *time.Timer    // ends the window; nil between windows
	closed  bool
	pending sync.WaitGroup // the timer's function, armed or running
}

func newSampledLog(log *slog.Logger, level slog.Level, summary string) *sampledLog {
	return &sampledLog{log: log, level: level, summary: summary, interval: sampleInterval, counts: map[string]int{}}
}

// Log writes msg with args if the window has room, and otherwise counts it under key.
func (l *sampledLog) Log(key, msg string, args ...any) {
	l.mu.Lock()
	full := l.closed || l.logged < sampleBurst
	if !l.closed {
		if l.timer == nil {
			l.pending.Add(1)
			l.timer = time.AfterFunc(l.interval, func() {
				defer l.pending.Done()
				l.flush()
			})
		}
		if full {
			l.logged++
		} else {
			l.counts[key]++
		}
	}
	l.mu.Unlock()
	if full {
		l.log.Log(context.Background(), l.level, msg, args...)
	}
}

// flush ends the window: it writes the summary line if lines were counted.
func (l *sampledLog) flush() {
	l.mu.Lock()
	counts, n := l.counts, 0
	for _, c := range counts {
		n += c
	}
	l.counts, l.logged, l.timer = map[string]int{}, 0, nil
	l.mu.Unlock()
	if n > 0 {
		l.log.Log(context.Background(), l.level, l.summary, "count", n, "interval", l.interval, "by", counts)
	}
}

// Close ends the window now, writing its summary, and waits for the timer; later lines are
// written in full.
func (l *sampledLog) Close() {
	l.mu.Lock()
	l.closed = true
	t := l.timer
	l.mu.Unlock()
	if t != nil && t.Stop() {
		l.pending.Done()
		l.flush()
	}
	l.pending.Wait()
}
