package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
)

// PartitionOffsets are one partition's bounds.
type PartitionOffsets struct {
	// Start is the log start offset: the oldest record still kept.
	Start int64
	// End is the high watermark: the offset the next record will get.
	End int64
}

// Reader reads ranges of partitions outside any consumer group, for resuming clients that come
// back with a cursor (docs/design.md, "Delivery semantics"). It is safe for concurrent use; each
// Read has its own connection. Make it with NewReader and Close it.
type Reader struct {
	cfg     config.Kafka
	opts    []kgo.Opt
	admin   *kgo.Client
	adm     *kadm.Client
	mu      sync.Mutex // guards closed and closing.Add against Close
	closed  bool
	closing sync.WaitGroup // clients of finished reads, closing in the background
}

// NewReader returns a Reader for the cluster at brokers (seed host:port list). It does not
// connect until used. Errors are ClientOpts's.
func NewReader(cfg config.Kafka, brokers []string, log *slog.Logger) (*Reader, error) {
	cfg = withDefaults(cfg)
	opts, err := ClientOpts(cfg, brokers)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.WithLogger(kgoLogger{orDiscard(log)}))
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: reader: %w", err)
	}
	adm := kadm.NewClient(admin)
	adm.SetTimeoutMillis(int32(min(cfg.RequestTimeout.Milliseconds(), 1<<31-1)))
	return &Reader{cfg: cfg, opts: opts, admin: admin, adm: adm}, nil
}

// Offsets returns the log start offset and high watermark of every partition of topics,
// bounded by ctx and RequestTimeout. Errors: ErrTopicNotFound for a missing topic,
// ErrUnavailable.
func (r *Reader) Offsets(ctx context.Context, topics []string) (map[string]map[int32]PartitionOffsets, error) {
	return listOffsets(ctx, r.adm, r.cfg.RequestTimeout, topics)
}

// listOffsets lists the log start offsets and high watermarks of topics' partitions through adm.
func listOffsets(ctx context.Context, adm *kadm.Client, timeout time.Duration, topics []string) (map[string]map[int32]PartitionOffsets, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	starts, err := adm.ListStartOffsets(rctx, topics...)
	if err != nil {
		return nil, classify(ctx, "list start offsets", err)
	}
	ends, err := adm.ListEndOffsets(rctx, topics...)
	if err != nil {
		return nil, classify(ctx, "list end offsets", err)
	}
	out := make(map[string]map[int32]PartitionOffsets, len(topics))
	var lerr error
	starts.Each(func(s kadm.ListedOffset) {
		e, ok := ends.Lookup(s.Topic, s.Partition)
		switch {
		case s.Err != nil:
			lerr = errors.Join(lerr, classify(ctx, fmt.Sprintf("list offsets of %s/%d", s.Topic, s.Partition), s.Err))
		case !ok || e.Err != nil:
			lerr = errors.Join(lerr, classify(ctx, fmt.Sprintf("list offsets of %s/%d", s.Topic, s.Partition),
				cmp.Or(e.Err, error(kerr.UnknownTopicOrPartition))))
		default:
			set(out, s.Topic, s.Partition, PartitionOffsets{Start: s.Offset, End: e.Offset})
		}
	})
	if lerr != nil {
		return nil, lerr
	}
	return out, nil
}

// Read reads every partition in from, from its from offset up to, excluding, its until offset,
// and calls fn with each record, in offset order within a partition (partitions interleave).
// A partition missing from until, or with an until beyond its high watermark, is read up to
// the high watermark as of the start of Read; a from at or after its until reads nothing. fn
// returning false stops the read; Read then returns nil. Read is bounded by ctx only: give it
// a deadline. Errors:
//   - ErrOffsetOutOfRange (wrapped with the partition and its bounds) when a from offset is
//     below the partition's log start offset or above its high watermark;
//   - ErrTopicNotFound, ErrUnavailable, or ctx's error.
func (r *Reader) Read(ctx context.Context, from, until map[string]map[int32]int64, fn func(*kgo.Record) bool) error {
	if len(from) == 0 {
		return nil
	}
	topics := make([]string, 0, len(from))
	for t := range from {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	bounds, err := r.Offsets(ctx, topics)
	if err != nil {
		return err
	}
	start := map[string]map[int32]kgo.Offset{}
	stop := map[string]map[int32]int64{} // partition -> until, for partitions with work
	for _, t := range topics {
		for p, at := range from[t] {
			b, ok := bounds[t][p]
			if !ok {
				return fmt.Errorf("read %s/%d: %w", t, p, ErrTopicNotFound)
			}
			if at < b.Start || at > b.End {
				return fmt.Errorf("read %s/%d from %d: %w: the partition holds offsets %d to %d",
					t, p, at, ErrOffsetOutOfRange, b.Start, b.End)
			}
			end := b.End
			if u, ok := until[t][p]; ok && u < end {
				end = u
			}
			if at >= end {
				continue
			}
			set(start, t, p, kgo.NewOffset().At(at))
			set(stop, t, p, end)
		}
	}
	if len(start) == 0 {
		return nil
	}

	cl, err := kgo.NewClient(append(slices.Clone(r.opts),
		kgo.ConsumePartitions(start),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()), // a range that vanished is an error, not a jump
		kgo.KeepControlRecords(),                    // so that transaction markers count as progress
	)...)
	if err != nil {
		return fmt.Errorf("kafka: reader: %w", err)
	}
	r.mu.Lock()
	if r.closed { // a replay that outlived the service's shutdown
		r.mu.Unlock()
		cl.Close()
		return fmt.Errorf("read: %w", net.ErrClosed)
	}
	r.closing.Add(1)
	r.mu.Unlock()
	defer func() { // closing takes milliseconds the caller need not wait for; Close waits
		go func() {
			defer r.closing.Done()
			cl.Close()
		}()
	}()
	left := 0
	for _, ps := range stop {
		left += len(ps)
	}
	for left > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, kerr.OffsetOutOfRange) {
				err = fmt.Errorf("%w: %w", ErrOffsetOutOfRange, err)
			}
			ferr = errors.Join(ferr, classify(ctx, fmt.Sprintf("read %s/%d", t, p), err))
		})
		if ferr != nil {
			return ferr
		}
		stopped := false
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			end, ok := stop[fp.Topic][fp.Partition]
			if stopped || !ok {
				return
			}
			for _, rec := range fp.Records {
				if rec.Offset >= end {
					break
				}
				if !rec.Attrs.IsControl() && !fn(rec) {
					stopped = true
					return
				}
				if rec.Offset == end-1 {
					break
				}
			}
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset >= end-1 {
				delete(stop[fp.Topic], fp.Partition)
				left--
				cl.PauseFetchPartitions(map[string][]int32{fp.Topic: {fp.Partition}})
			}
		})
		if stopped {
			return nil
		}
	}
	return nil
}

// Close closes the Reader's connections, waiting for the clients of finished reads to close.
// Reads must be done.
func (r *Reader) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.closing.Wait()
	r.admin.Close()
}
