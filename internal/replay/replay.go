// Package replay reads back from Kafka the events a resuming client missed, when the hub's
// in-memory history does not reach back far enough. It implements realtime.Replayer.
package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/dedup"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Source is what a replay needs of Kafka; *kafka.Reader implements it.
type Source interface {
	Offsets(ctx context.Context, topics []string) (map[string]map[int32]kafka.PartitionOffsets, error)
	Read(ctx context.Context, from, until map[string]map[int32]int64, fn func(*kgo.Record) bool) error
}

// Config holds a replayer's bounds. A zero field takes its default.
type Config struct {
	// MaxRecords bounds the records one replay may read (REALTIME_REPLAY_MAX_RECORDS; zero:
	// 100,000).
	MaxRecords int
	// Timeout bounds one replay, its wait for a read slot included (zero: 25 s).
	Timeout time.Duration
	// Concurrency bounds the Kafka reads of all replays at a time, node-wide: after a node
	// restart thousands of clients may resume at once; they queue instead of each opening a
	// Kafka connection at the same moment (REALTIME_REPLAY_CONCURRENCY; zero: 4).
	Concurrency int
	// PerUser bounds one user's Kafka reads at a time (REALTIME_REPLAY_PER_USER; zero: 1).
	PerUser int
	// QueuePerUser bounds one user's replays waiting for a read; past it a replay is refused
	// at once with resync "unavailable" (REALTIME_REPLAY_QUEUE_PER_USER; zero: 8).
	QueuePerUser int
	// Duplicates, if set, is the consumer's window of idempotency keys: a record it dropped as
	// a duplicate (or, its first copy forgotten, a duplicate of an earlier record of the same
	// read) is not replayed either (package dedup). Nil: records are not de-duplicated.
	Duplicates *dedup.Window
	// Metrics registers realtime_replay_waiting and realtime_replay_refused_total{reason}
	// (reason "user-queue-full" or "timeout"); nil for none.
	Metrics prometheus.Registerer
}

// Defaults of Config's zero fields.
const (
	defaultMaxRecords   = 100000
	defaultTimeout      = 25 * time.Second
	defaultConcurrency  = 4
	defaultPerUser      = 1
	defaultQueuePerUser = 8
)

// Kafka serves replays by reading the partitions from the client's cursor up to the hub's
// position and keeping the user's events. Safe for concurrent use.
type Kafka struct {
	src        Source
	decoder    *notification.Decoder
	maxRecords int64
	timeout    time.Duration
	reads      *scheduler // the slots of concurrent Kafka reads, shared fairly by users
	dups       *dedup.Window

	mu       sync.Mutex // guards the offsets cache
	offsets  map[string]map[int32]kafka.PartitionOffsets
	topics   []string
	cachedAt time.Time // when the cached lookup started
}

const (
	// offsetsTTL is how long a lookup of the log start offsets serves later replays. Retention
	// moves a log start rarely; a replay that starts below it anyway gets ErrOffsetOutOfRange
	// from the read and answers "expired" all the same.
	offsetsTTL = 2 * time.Second
)

// New returns a replayer reading from src, decoding with decoder (the consumer's: records it
// would have sent to the dead-letter topic are skipped), within cfg's bounds. Errors: a metric
// registration conflict on cfg.Metrics.
func New(src Source, decoder *notification.Decoder, cfg Config) (*Kafka, error) {
	def := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	waiting := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "realtime_replay_waiting",
		Help: "Resumes waiting for a slot to read Kafka.",
	})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "realtime_replay_refused_total",
		Help: "Resumes answered resync \"unavailable\" without reading Kafka, by reason: user-queue-full (REALTIME_REPLAY_QUEUE_PER_USER), timeout (no read slot in time).",
	}, []string{"reason"})
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{waiting, refused} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("replay metrics: %w", err)
			}
		}
	}
	return &Kafka{src: src, decoder: decoder, maxRecords: int64(def(cfg.MaxRecords, defaultMaxRecords)), timeout: cfg.Timeout, dups: cfg.Duplicates,
		reads: newScheduler(def(cfg.Concurrency, defaultConcurrency), def(cfg.PerUser, defaultPerUser),
			def(cfg.QueuePerUser, defaultQueuePerUser), waiting, refused)}, nil
}

// Replay returns user's events with offsets in [from, to) of each partition of to, in offset
// order within a partition. A partition missing from from (created after the cursor) is read
// from its log start. Errors are *realtime.ResyncError: "expired" when from is below what Kafka
// still keeps, "too-far-behind" when the range holds more than maxRecords records,
// "unavailable" when Kafka cannot be read, when user already has QueuePerUser replays waiting
// for a read (at once), or when no read slot came within the timeout (see scheduler).
func (k *Kafka) Replay(ctx context.Context, user string, from, to []realtime.Position) ([]*notification.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	topics := topicsOf(to)
	bounds, err := k.bounds(ctx, topics, time.Now().Add(-offsetsTTL))
	if err != nil {
		return nil, &realtime.ResyncError{Reason: "unavailable", Detail: "cannot read Kafka's offsets: " + err.Error()}
	}
	start := map[string]map[int32]int64{}
	until := map[string]map[int32]int64{}
	var total int64
	for _, p := range to {
		b, ok := bounds[p.Topic][p.Partition]
		if !ok {
			continue // the partition is gone: nothing to read
		}
		lo := b.Start
		if i := slices.IndexFunc(from, func(f realtime.Position) bool { return f.Topic == p.Topic && f.Partition == p.Partition }); i >= 0 {
			lo = from[i].Offset
		}
		if lo >= p.Offset {
			continue
		}
		if lo < b.Start {
			return nil, &realtime.ResyncError{Reason: "expired", Detail: fmt.Sprintf(
				"%s partition %d: the cursor is at offset %d but Kafka keeps offsets from %d on", p.Topic, p.Partition, lo, b.Start)}
		}
		if start[p.Topic] == nil {
			start[p.Topic], until[p.Topic] = map[int32]int64{}, map[int32]int64{}
		}
		start[p.Topic][p.Partition], until[p.Topic][p.Partition] = lo, p.Offset
		total += p.Offset - lo
	}
	if total > k.maxRecords {
		return nil, &realtime.ResyncError{Reason: "too-far-behind", Detail: fmt.Sprintf(
			"%d records were published since the cursor; a resume reads at most %d", total, k.maxRecords)}
	}
	if total == 0 {
		return nil, nil
	}
	release, err := k.reads.acquire(ctx, user)
	switch {
	case errors.Is(err, errUserQueueFull):
		return nil, &realtime.ResyncError{Reason: "unavailable", Detail: "too many resumes of this user are waiting to read Kafka; try again"}
	case err != nil:
		return nil, &realtime.ResyncError{Reason: "unavailable", Detail: "too many resumes are reading Kafka; try again"}
	}
	defer release()
	var events []*notification.Event
	raw := []byte(user)
	var dups *dedup.Replay
	if k.dups != nil {
		dups = k.dups.Replay()
	}
	err = k.src.Read(ctx, start, until, func(rec *kgo.Record) bool {
		if !k.decoder.MayName(rec, raw) {
			return true // most records of the range name other users: skip their decoding
		}
		ev, err := k.decoder.Decode(rec)
		if err == nil && slices.Contains(ev.UserIDs, user) && !dups.Drop(rec) {
			events = append(events, ev)
		}
		return true
	})
	switch {
	case errors.Is(err, kafka.ErrOffsetOutOfRange):
		return nil, &realtime.ResyncError{Reason: "expired", Detail: err.Error()}
	case err != nil:
		return nil, &realtime.ResyncError{Reason: "unavailable", Detail: "cannot read Kafka: " + err.Error()}
	}
	return events, nil
}

// CheckPositions implements realtime.PositionChecker: a cursor position beyond its partition's
// high watermark was never handed out by any node (a forged cursor, or one from a topic that was
// deleted and recreated, which keeps the cluster ID). It answers "ahead-of-log" only after a
// fresh lookup, so that a cached high watermark that lags a busy partition refuses nothing.
func (k *Kafka) CheckPositions(ctx context.Context, ps []realtime.Position) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	topics := topicsOf(ps)
	asked := time.Now()
	for _, notBefore := range []time.Time{asked.Add(-offsetsTTL), asked} {
		bounds, err := k.bounds(ctx, topics, notBefore)
		if err != nil {
			return nil // cannot tell: the resume goes on, as if the cursor were fine
		}
		i := slices.IndexFunc(ps, func(p realtime.Position) bool {
			b, ok := bounds[p.Topic][p.Partition]
			return ok && p.Offset > b.End
		})
		if i < 0 {
			return nil
		}
		if notBefore == asked {
			p := ps[i]
			return &realtime.ResyncError{Reason: "ahead-of-log", Detail: fmt.Sprintf(
				"%s partition %d: the cursor is at offset %d but the log ends at %d (was the topic recreated?)",
				p.Topic, p.Partition, p.Offset, bounds[p.Topic][p.Partition].End)}
		}
	}
	return nil
}

// topicsOf returns the distinct topics of ps, in order of appearance.
func topicsOf(ps []realtime.Position) []string {
	var topics []string
	for _, p := range ps {
		if !slices.Contains(topics, p.Topic) {
			topics = append(topics, p.Topic)
		}
	}
	return topics
}

// bounds returns the partitions' log start offsets and high watermarks from a lookup that
// started at notBefore or later (offsetsTTL ago for replays; the caller's own start for a check
// that must see the log as it is now). Lookups are serialised, and a caller that waited for one
// begun after it asked uses its answer: a burst of resumes, forged cursors included, costs one
// or two lookups, not one each.
func (k *Kafka) bounds(ctx context.Context, topics []string, notBefore time.Time) (map[string]map[int32]kafka.PartitionOffsets, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.offsets != nil && !k.cachedAt.Before(notBefore) && !slices.ContainsFunc(topics, func(t string) bool { return !slices.Contains(k.topics, t) }) {
		return k.offsets, nil
	}
	started := time.Now()
	offsets, err := k.src.Offsets(ctx, topics)
	if err != nil {
		return nil, err
	}
	k.offsets, k.topics, k.cachedAt = offsets, slices.Clone(topics), started
	return offsets, nil
}
