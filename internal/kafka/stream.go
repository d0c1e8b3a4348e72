package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
)

// ErrQueueFull is passed to an AsyncProducer's callback for a record that was not queued
// because AsyncConfig.MaxBuffered records were waiting already (franz-go's ErrMaxBuffered).
var ErrQueueFull = errors.New("kafka: producer queue full")

// AsyncConfig configures an AsyncProducer. Zero values have the meaning given with each field.
type AsyncConfig struct {
	// MaxBuffered bounds the records waiting for Kafka (franz-go's MaxBufferedRecords); past it
	// TryProduce refuses new ones with ErrQueueFull at once. Zero means 10000.
	MaxBuffered int
	// Linger is how long a partition's batch waits for more records before it is sent; zero
	// means 5 ms, so that bursts go out in few requests.
	Linger time.Duration
}

// AsyncProducer produces records in the background, for facts that must never slow their
// source: presence records, heartbeats and receipts (docs/presence-and-receipts.md). It is
// idempotent (acks from all in-sync replicas, franz-go's default), keeps each partition's
// records in order, and never blocks its caller. Make it with NewAsyncProducer and Close it.
type AsyncProducer struct {
	cl *kgo.Client
}

// NewAsyncProducer returns an AsyncProducer for the cluster at brokers, with the connection
// settings of ClientOpts. It does not connect until used. Errors are ClientOpts's.
func NewAsyncProducer(cfg config.Kafka, brokers []string, ac AsyncConfig, log *slog.Logger) (*AsyncProducer, error) {
	cfg = withDefaults(cfg)
	if ac.MaxBuffered <= 0 {
		ac.MaxBuffered = 10000
	}
	if ac.Linger <= 0 {
		ac.Linger = 5 * time.Millisecond
	}
	opts, err := ClientOpts(cfg, brokers)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(ac.Linger),
		kgo.MaxBufferedRecords(ac.MaxBuffered),
		kgo.UnknownTopicRetries(unknownTopicRetries),
		kgo.WithLogger(kgoLogger{orDiscard(log)}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &AsyncProducer{cl: cl}, nil
}

// TryProduce queues rec and returns at once; done, if not nil, is called once Kafka
// acknowledged rec (nil) or it failed: ErrQueueFull at once when the queue was full, else a
// Kafka error after retries within KAFKA_REQUEST_TIMEOUT. done runs on the producer's own
// goroutine, in order, and must not block.
func (p *AsyncProducer) TryProduce(rec *kgo.Record, done func(*kgo.Record, error)) {
	p.cl.TryProduce(context.Background(), rec, func(r *kgo.Record, err error) {
		if errors.Is(err, kgo.ErrMaxBuffered) {
			err = ErrQueueFull
		}
		if done != nil {
			done(r, err)
		}
	})
}

// Flush waits until every queued record is acknowledged or failed, or ctx is done (its error).
func (p *AsyncProducer) Flush(ctx context.Context) error { return p.cl.Flush(ctx) }

// Close closes the producer; records still queued fail. Flush first to keep them.
func (p *AsyncProducer) Close() { p.cl.Close() }

// EnsureTopic creates topic with the broker's default partitions and replication factor (-1, as
// KIP-464 allows) and configs, unless it exists. Errors are CreateTopic's, ErrTopicExists aside.
func (c *Client) EnsureTopic(ctx context.Context, topic string, configs map[string]*string) error {
	err := c.CreateTopic(ctx, topic, -1, -1, configs)
	if errors.Is(err, ErrTopicExists) {
		return nil
	}
	return err
}

// Follow reads every partition of topic from its log start, outside any consumer group (nothing
// is committed), and then follows it, calling fn for each record in offset order per partition,
// until ctx is done; it returns nil then. Partitions added later are read from their start too.
// fn runs on Follow's goroutine. A broker that is down is retried with the backoff of
// ClientOpts; Follow returns an error only when its client cannot be made (ClientOpts's).
func Follow(ctx context.Context, cfg config.Kafka, brokers []string, topic string, log *slog.Logger, fn func(*kgo.Record)) error {
	cfg = withDefaults(cfg)
	opts, err := ClientOpts(cfg, brokers)
	if err != nil {
		return err
	}
	opts = append(opts,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.MetadataMaxAge(30*time.Second),
		kgo.WithLogger(kgoLogger{orDiscard(log)}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	last := "" // the last error logged: a broker that stays down is reported once, not per poll
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if err.Error() != last {
				last = err.Error()
				orDiscard(log).Warn("reading a followed topic failed; retrying", "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(fn)
	}
}
