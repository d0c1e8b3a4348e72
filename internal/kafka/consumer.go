package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/realtime-service/realtime-service/internal/config"
)

const (
	defaultHealthGrace = 10 * time.Second
	// defaultMaxPollRecords is large because franz-go sends a broker's next fetch only once the
	// last one's records were all polled: with 500, a burst's next fetch waited for all but the
	// last 500 records of the one before to be handed off (realtime_stage_seconds{stage=
	// "produce_fetch"}); with 10,000 it overlaps the hand-off of most bursts' fetches. Flush
	// still comes every flushEvery records.
	defaultMaxPollRecords = 10_000

	// fetchMaxWait is how long the broker may hold a fetch when it has no new record (franz-go's
	// default is 5 s, Kafka's fetch.max.wait.ms 500 ms). New records are answered at once either
	// way; but a partition that joins the fetch later waits for the fetch in flight. That
	// happens at every restart: the partitions whose commits carry a leader epoch are validated
	// first (KIP-320) while the others already fetch, so with 1 s a node restarted under load
	// delivered its first record a full second after it was ready (measured by the chaos run).
	// 200 ms bounds that delay, at the cost of five idle fetches a second per broker.
	fetchMaxWait = 200 * time.Millisecond

	// The dead-letter duty (RoleDeadLetter) fetches in batches: the broker holds its fetch until
	// dutyFetchMinBytes are there or dutyFetchMaxWait passed. Copies are not urgent, and a fetch
	// per record, as delivery makes, doubled the node's and the broker's fetch work at low rates
	// (each record fetched twice, each fetch a round trip and a wake-up of both).
	dutyFetchMinBytes = 64 << 10
	dutyFetchMaxWait  = 500 * time.Millisecond
)

// Role is what a Consumer does with the records (docs/design.md, "Many nodes").
type Role int

const (
	// RoleAll consumes in this node's group and copies poison records to the dead-letter topic:
	// a node alone. With N nodes each would copy each poison record: use the two roles below.
	RoleAll Role = iota
	// RoleDeliver consumes in this node's group (every node sees every record) and skips a
	// poison record without copying it (counted by kafka_consumer_poison_skipped_total): the
	// RoleDeadLetter consumers copy it, once per cluster.
	RoleDeliver
	// RoleDeadLetter consumes in the group every node shares, cfg.DeadLetterGroup(), so that
	// Kafka gives each partition to exactly one node at a time, without static membership (a
	// node that leaves hands its partitions over at once). Handler only tells poison records,
	// which are copied to the dead-letter topic: once per cluster, or, after a crash, at most
	// once more by the partition's next owner (at-least-once, from the shared group's commits;
	// the copies' dlq-source-topic, dlq-source-partition and dlq-source-offset headers identify
	// such a repeat). Its metrics are kafka_dlq_consumer_* (records, lag, commit errors); the
	// dead-letter metrics keep their kafka_consumer_dead_letter* names; its client's are
	// kafka_client_*{role="dead-letters"}.
	RoleDeadLetter
)

// ConsumerConfig holds what the Consumer hands records to. Handler is required.
type ConsumerConfig struct {
	// Role is what the Consumer does (zero: RoleAll).
	Role Role

	// Handler receives every record of the consumed topics, in offset order within each
	// partition, one at a time (never concurrently). It must not block for long: rebalances
	// wait for it. A nil error means the record was handed off; its offset may then be
	// committed. A non-nil error marks the record as poison: it is copied to the dead-letter
	// topic (see dlq.go) and consumption goes on at once, without waiting for the copy's ack;
	// it is never handed to Handler again (unless a restart comes before the ack). An error
	// that wraps ctx's error while ctx is done (shutdown) is not poison: the record is not
	// committed and comes back on the next start.
	Handler func(ctx context.Context, rec *kgo.Record) error

	// Assigned, if set, is called when partitions are assigned to this node, before any record
	// of them is handed off and never concurrently with Handler, with each newly assigned
	// partition's starting offset: its committed offset, or its log start offset when it has no
	// commit (a partition or topic created after this node's first start) or when its commit
	// fell below the log start (retention). The map is the callee's.
	Assigned func(start map[string]map[int32]int64)

	// Polled, if set, is called with the time PollRecords returned, after each poll that
	// returned records and before they are handed to Handler, from the goroutine that calls
	// Handler: where a record's time in the node begins (package stage, fetch_decode).
	Polled func(at time.Time)

	// Flush, if set, is called after the records of each poll were handed off (before their
	// commit), and after every flushEvery (32) records within a larger poll, from the goroutine
	// that calls Handler: the hub wakes each connection's writer once per batch there, so that
	// one write carries every frame of the batch, and a frame waits for at most 31 records
	// behind it (a poll holds up to MaxPollRecords).
	Flush func()

	// Revoked, if set, is called with the partitions this node stopped consuming (revoked in a
	// rebalance, lost with the group session, or all of them at shutdown), after what was handed
	// off from them has been committed (not tried for lost partitions: their commit would be
	// refused). Never called concurrently with Handler or Assigned.
	Revoked func(map[string][]int32)

	// Behind, if set, is asked before the records of a partition are handed off, with the
	// partition and the offset after its last record in the poll; while it reports true, the
	// hand-off waits (at most behindWait, 1 s, per poll; not past ctx). RoleDeadLetter uses it
	// to run behind this node's own delivery (see Consumer.Handed and Consumer.CatchingUp): in
	// a burst the dead-letter duty (decoding every record once more, producing the copies)
	// would otherwise take the CPU and the broker from the deliveries of the same records.
	Behind func(topic string, partition int32, next int64) bool

	// HealthGrace is how long connection or group errors may go on before Health reports them
	// (zero: 10 s).
	HealthGrace time.Duration

	// MaxPollRecords bounds the records taken from one poll, i.e. handed off between two commits
	// (zero: 10,000; see defaultMaxPollRecords).
	MaxPollRecords int

	// Opts are extra franz-go options for the consuming client (not its admin client), appended
	// last; nil for none. They are meant for hooks, such as package telemetry's ConsumerHook,
	// which puts each record's trace in kgo.Record.Context for Handler. Options that change
	// consuming (group, topics, offsets, commits, rebalancing) would break the Consumer's contract.
	Opts []kgo.Opt
}

// Consumer consumes this node's consumer group on the configured topics and hands every record
// to ConsumerConfig.Handler, implementing docs/design.md, "Delivery semantics":
//   - The group is cfg.ConsumerGroup() ("<KAFKA_GROUP_ID>.<KAFKA_NODE_ID>"): every node sees
//     every record; RoleDeadLetter's is cfg.DeadLetterGroup(), shared (see Role).
//   - At-least-once: an offset is committed only after its record, and every record before it
//     in its partition, was handed off or, when poison, its dead-letter copy was resolved (acked,
//     or failed for good and skipped): every commitInterval while records flow, when partitions
//     are revoked, and at shutdown. Dead-letter copies are produced asynchronously (see
//     deadLetter): the records after a poison one are handed off without waiting for its ack.
//   - The node's first start (its group has no committed offset on the consumed topics) begins
//     at the end of every partition: before joining, the current end offsets are committed for
//     the group (an empty group accepts such admin commits). From then on every partition
//     resumes at its commit, including partitions that had no record before the stop. A
//     partition with no commit after that (created later) is read from its start.
//   - Per-partition order is kept; records are handed off from one goroutine.
//
// Make it with NewConsumer and call Run once at a time.
type Consumer struct {
	cfg     config.Kafka
	cc      ConsumerConfig
	opts    []kgo.Opt // ClientOpts, producerOpts (dead-letter produces) and the logger
	reg     prometheus.Registerer
	log     *slog.Logger
	group   string // the consumer group
	role    string // kprom's role label
	m       *consumerMetrics
	health  health
	running atomic.Bool

	// busyUntil is the time (UnixNano) until which CatchingUp reports true: the end of the
	// last large poll's hand-off plus catchUpLinger, or MaxInt64 during one.
	busyUntil atomic.Int64

	// handedMu guards handed: per partition, the offset after the last record handed off, for
	// Handed (apart from session.mu, which a hand-off holds throughout).
	handedMu sync.RWMutex
	handed   map[string]map[int32]int64
}

// Handed returns the offset after the last record this Consumer handed off from partition
// (poison records included), and false when it has handed off none since it was assigned the
// partition. Safe for concurrent use.
func (c *Consumer) Handed(topic string, partition int32) (int64, bool) {
	c.handedMu.RLock()
	defer c.handedMu.RUnlock()
	next, ok := c.handed[topic][partition]
	return next, ok
}

// CatchingUp reports whether the Consumer is handing off a large poll (catchUpRecords records or
// more: a burst, or a backlog), or finished one less than catchUpLinger ago. Safe for concurrent
// use.
func (c *Consumer) CatchingUp() bool { return time.Now().UnixNano() < c.busyUntil.Load() }

const (
	// catchUpRecords is the poll size from which a consumer is catching up: records arrive
	// faster than it hands them off (at 10,000 records/s a poll holds a few dozen).
	catchUpRecords = 256
	// catchUpLinger is how long CatchingUp stays true after a large poll's hand-off: the gap to
	// the next poll of a burst.
	catchUpLinger = 100 * time.Millisecond
)

func (c *Consumer) setHanded(topic string, partition int32, next int64) {
	c.handedMu.Lock()
	defer c.handedMu.Unlock()
	if c.handed == nil {
		c.handed = map[string]map[int32]int64{}
	}
	set(c.handed, topic, partition, next)
}

func (c *Consumer) forgetHanded(parts map[string][]int32) {
	c.handedMu.Lock()
	defer c.handedMu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			delete(c.handed[t], p)
		}
	}
}

// NewConsumer returns a Consumer of cfg.TopicNames() in its Role's group at brokers
// (seed host:port list). It connects to nothing until Run. Its metrics (kafka_consumer_*, see
// metrics.go) are registered on reg now, and kprom's client metrics (kafka_client_*,
// role="consumer") while Run runs; reg nil means no metrics. Errors: a nil Handler, no topics,
// no dead-letter topic or one that is also consumed (a poison record would loop), ClientOpts's
// errors, or a metric registration conflict.
func NewConsumer(cfg config.Kafka, brokers []string, cc ConsumerConfig, reg prometheus.Registerer, log *slog.Logger) (*Consumer, error) {
	cfg = withDefaults(cfg)
	switch {
	case cc.Handler == nil:
		return nil, errors.New("kafka: consumer: no Handler")
	case len(cfg.Topics) == 0:
		return nil, errors.New("kafka: consumer: no topics to consume")
	case cfg.DLQTopic == "":
		return nil, errors.New("kafka: consumer: no dead-letter topic")
	case slices.Contains(cfg.TopicNames(), cfg.DLQTopic):
		return nil, fmt.Errorf("kafka: consumer: the dead-letter topic %s is also consumed", cfg.DLQTopic)
	}
	if cc.HealthGrace <= 0 {
		cc.HealthGrace = defaultHealthGrace
	}
	if cc.MaxPollRecords <= 0 {
		cc.MaxPollRecords = defaultMaxPollRecords
	}
	opts, err := ClientOpts(cfg, brokers)
	if err != nil {
		return nil, err
	}
	log = orDiscard(log)
	opts = append(opts, producerOpts()...)
	opts = append(opts, kgo.ProducerBatchMaxBytes(dlqMaxRecordBytes), kgo.MaxBufferedBytes(dlqMaxBufferedBytes))
	opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	group, subsystem, kpromRole := cfg.ConsumerGroup(), "consumer", "consumer"
	if cc.Role == RoleDeadLetter {
		group, subsystem, kpromRole = cfg.DeadLetterGroup(), "dlq_consumer", "dead-letters"
	}
	m, err := newConsumerMetrics(reg, subsystem)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer metrics: %w", err)
	}
	return &Consumer{
		cfg:    cfg,
		cc:     cc,
		opts:   opts,
		reg:    reg,
		log:    log,
		m:      m,
		group:  group,
		role:   kpromRole,
		health: health{grace: cc.HealthGrace, group: group},
	}, nil
}

// Run consumes until ctx is done, then commits what was handed off, leaves the group (which
// calls Revoked with every partition) and returns nil. Broker and group errors do not end it:
// they are retried, logged, and reported by Health. It returns an error only when it cannot
// start: Run already running, or the client cannot be built.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("kafka: consumer: Run is already running")
	}
	defer c.running.Store(false)
	c.health.begin(time.Now())
	defer c.health.end()

	admin, err := kgo.NewClient(append(slices.Clone(c.opts), kgo.WithHooks(&c.health))...)
	if err != nil {
		return fmt.Errorf("kafka: consumer: %w", err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	adm.SetTimeoutMillis(int32(min(c.cfg.RequestTimeout.Milliseconds(), 1<<31-1)))
	if err := c.initOffsets(ctx, adm); err != nil {
		return nil // ctx is done
	}

	s := &session{
		c:         c,
		adm:       adm,
		handed:    map[string]map[int32]kgo.EpochOffset{},
		committed: map[string]map[int32]int64{},
		dlq:       map[string]map[int32][]*dlqEntry{},
		inFlight:  inFlight{gauge: c.m.deadLettersInFlight},
		warnLog: newSampledLog(c.log, slog.LevelWarn,
			"kafka consumer: more poison records were copied to the dead-letter topic than were logged one by one (count by topic and code)"),
		errLog: newSampledLog(c.log, slog.LevelError,
			"kafka consumer: more poison records could not be copied to the dead-letter topic and were skipped than were logged one by one (count by topic)"),
	}
	defer s.errLog.Close()
	defer s.warnLog.Close()
	// Dead-letter copies outlive ctx: Run waits for them before the final commit, and cancels
	// what is left only then.
	produceCtx, stopProduces := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProduces()
	s.produceCtx = produceCtx
	// The client's own context: canceled when the final close takes longer than RequestTimeout
	// (see below).
	clientCtx, cancelClient := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelClient()
	opts := append(slices.Clone(c.opts), kgo.ConsumerGroup(c.group), kgo.WithContext(clientCtx))
	if c.cc.Role != RoleDeadLetter {
		// Static membership (KIP-345): the group is this node's alone, so a node restarted after
		// a crash takes its partitions back at once instead of waiting out the old member's
		// session timeout.
		opts = append(opts, kgo.InstanceID(c.cfg.NodeID))
	}
	opts = append(opts,
		kgo.ConsumeTopics(c.cfg.TopicNames()...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(s.adjust),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.WithHooks(&c.health),
	)
	if c.cc.Role == RoleDeadLetter {
		opts = append(opts, kgo.FetchMinBytes(dutyFetchMinBytes), kgo.FetchMaxWait(dutyFetchMaxWait))
	} else {
		opts = append(opts, kgo.FetchMaxWait(fetchMaxWait))
	}
	if c.reg != nil {
		opts = append(opts, kgo.WithHooks(newKprom(c.reg, c.role)))
	}
	opts = append(opts, c.cc.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: consumer: %w", err)
	}
	s.poll(ctx, cl)
	s.waitDeadLetters(ctx)
	stopProduces() // copies still in flight are abandoned: their records come back on the next start
	s.closing.Store(true)
	s.commit(context.WithoutCancel(ctx), cl, nil)
	// Leaving the group waits for a JoinGroup in flight, which the coordinator holds until every
	// member rejoined: in a shared group (RoleDeadLetter) with a crashed member, until its
	// session times out. Past RequestTimeout the client's context is canceled, which fails that
	// request, so that shutdown stays bounded.
	bound := time.AfterFunc(c.cfg.RequestTimeout, cancelClient)
	cl.CloseAllowingRebalance() // leaves the group: revoked runs once more, for every partition
	bound.Stop()
	s.retries.Wait() // the client is closed: their produces fail at once
	return nil
}

// Health returns nil while the consumer is running and healthy, and an error saying why
// otherwise: not running, no broker reachable (wrapping ErrUnavailable), or group, fetch or
// commit errors, each only once it has lasted ConsumerConfig.HealthGrace.
func (c *Consumer) Health() error { return c.health.err(time.Now()) }

// initOffsets implements the first start (see Consumer), retrying until it succeeds or ctx is
// done; it returns only ctx's error.
func (c *Consumer) initOffsets(ctx context.Context, adm *kadm.Client) error {
	backoff := retryBackoff(c.cfg.RetryBackoff)
	for try := 1; ; try++ {
		err := c.commitFirstStart(ctx, adm)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.health.groupFailed(err)
		c.log.Warn("kafka consumer: cannot read or set the group's starting offsets; retrying",
			"group", c.group, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff(try)):
		}
	}
}

// commitFirstStart commits the end offset of every partition of the consumed topics when the
// group has no committed offset on them yet.
func (c *Consumer) commitFirstStart(ctx context.Context, adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	group := c.group
	topics := c.cfg.TopicNames()
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) { // Kafka answers no offsets, kfake this
		return fmt.Errorf("fetch the offsets of group %s: %w", group, err)
	}
	for _, t := range topics {
		for _, o := range committed[t] {
			if o.Err == nil && o.At >= 0 {
				return nil // not the first start
			}
		}
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	start := kadm.Offsets{}
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err == nil:
			start.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition) && o.Partition < 0:
			// The topic does not exist yet: it will be read from its start once it does.
		default:
			lerr = fmt.Errorf("list end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
		}
	})
	if lerr != nil {
		return lerr // all or nothing: a partition left out would be read from its start
	}
	if len(start) == 0 {
		return nil
	}
	if err := adm.CommitAllOffsets(ctx, group, start); err != nil {
		return fmt.Errorf("commit the end offsets for group %s: %w", group, err)
	}
	n := 0
	start.Each(func(kadm.Offset) { n++ })
	c.log.Info("kafka consumer: first start of this node's group: starting at the end of every partition",
		"group", group, "partitions", n)
	return nil
}

// session is the state of one Run.
type session struct {
	c   *Consumer
	adm *kadm.Client // the admin client, apart from the group client

	// mu serialises hand-offs with Assigned and Revoked, and guards the maps.
	mu sync.Mutex
	// handed is, per partition, the offset after the last record handed off (what to commit).
	handed map[string]map[int32]kgo.EpochOffset
	// committed is, per partition, the last offset committed or the starting offset.
	committed map[string]map[int32]int64
	// dlq is, per partition, its poison records whose dead-letter copy was produced and was not
	// yet seen resolved by a commit, in offset order.
	dlq map[string]map[int32][]*dlqEntry

	produceCtx context.Context // of dead-letter copies: canceled once Run has waited for them
	inFlight   inFlight        // dead-letter copies not yet resolved
	closing    atomic.Bool     // Run waited for them already: revoked does not wait again
	committing atomic.Bool     // a commitAsync is in flight
	retries    sync.WaitGroup  // goroutines producing truncated copies (see produceDeadLetter)
	warnLog    *sampledLog     // poison records copied
	errLog     *sampledLog     // poison records whose copy failed
}

// waitDeadLetters waits for the dead-letter copies in flight, at most RequestTimeout (past it
// the commit stops before them: they come back on the next start).
func (s *session) waitDeadLetters(ctx context.Context) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.c.cfg.RequestTimeout)
	defer cancel()
	_ = s.inFlight.wait(wctx)
}

// adjust runs once partitions are assigned and their committed offsets fetched, before they
// are consumed (kgo.AdjustFetchOffsetsFn). It turns "no commit" (AtStart) and commits below the
// log start into the exact log start offset, so that what Assigned reports is exactly where
// consumption begins. An error ends the group session; franz-go rejoins and tries again.
func (s *session) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if len(offsets) == 0 {
		return offsets, nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
	defer cancel()
	starts, err := s.adm.ListStartOffsets(rctx, slices.Collect(maps.Keys(offsets))...)
	if err != nil {
		err = fmt.Errorf("list start offsets of the assigned partitions: %w", err)
		s.c.health.groupFailed(err)
		return nil, err
	}
	begin := make(map[string]map[int32]int64, len(offsets))
	for t, ps := range offsets {
		begin[t] = make(map[int32]int64, len(ps))
		for p, o := range ps {
			ls, ok := starts.Lookup(t, p)
			if !ok || ls.Err != nil {
				err := fmt.Errorf("list start offset of %s/%d: %v", t, p, ls.Err)
				s.c.health.groupFailed(err)
				return nil, err
			}
			at := o.EpochOffset().Offset
			if at < ls.Offset {
				at = ls.Offset
				ps[p] = kgo.NewOffset().At(at)
			}
			begin[t][p] = at
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range begin {
		for p, at := range ps {
			set(s.committed, t, p, at)
			delete(s.handed[t], p)
			delete(s.dlq[t], p)
		}
	}
	if s.c.cc.Assigned != nil {
		s.c.cc.Assigned(begin)
	}
	s.c.health.groupOK()
	return offsets, nil
}

// commitInterval is how often handed-off offsets are committed while records flow: at most ten
// OffsetCommit round trips a second instead of one per poll. A crash re-delivers at most that
// much (clients de-duplicate on the event ID); revocation and shutdown commit at once.
const commitInterval = 100 * time.Millisecond

// flushEvery is how many records handed off within one poll ConsumerConfig.Flush waits for at
// most: a poll holds up to MaxPollRecords (10,000) when records arrive faster than they are
// handed off (a burst), and the frames of the first ones would otherwise wait for the whole
// poll's hand-off before their writers wake (realtime_stage_seconds{stage="enqueue_write"}).
const flushEvery = 32

// poll hands off records until ctx is done or the client is closed, calls Flush after each
// poll's records, and commits what was handed off every commitInterval (also when no more
// records come).
func (s *session) poll(ctx context.Context, cl *kgo.Client) {
	lastCommit := time.Now()
	pending := false // handed off, not committed
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if pending {
			pctx, cancel = context.WithDeadline(ctx, lastCommit.Add(commitInterval))
		}
		fetches := cl.PollRecords(pctx, s.c.cc.MaxPollRecords)
		cancel()
		if s.c.cc.Polled != nil && !fetches.Empty() {
			s.c.cc.Polled(time.Now())
		}
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) && pctx.Err() != nil {
				return // our commit deadline, not a fetch error
			}
			s.c.health.groupFailed(fmt.Errorf("fetch %s/%d: %w", topic, partition, err))
			s.c.log.Warn("kafka consumer: fetch error", "topic", topic, "partition", partition, "err", err)
		})
		large := fetches.NumRecords() >= catchUpRecords
		if large {
			s.c.busyUntil.Store(math.MaxInt64)
		}
		stopped := s.handOff(ctx, cl, fetches)
		if large {
			s.c.busyUntil.Store(time.Now().Add(catchUpLinger).UnixNano())
		}
		if s.c.cc.Flush != nil {
			s.c.cc.Flush()
		}
		pending = pending || fetches.NumRecords() > 0
		switch {
		case stopped:
			// What was handed off is committed, shutdown or not.
			s.commit(context.WithoutCancel(ctx), cl, nil)
		case pending && time.Since(lastCommit) >= commitInterval:
			// While dead-letter copies (or a commit in flight) hold a commit back, the next one
			// comes commitInterval later, records or not.
			pending = s.commitAsync(context.WithoutCancel(ctx), cl)
			lastCommit = time.Now()
		}
		if stopped {
			return
		}
		cl.AllowRebalance()
	}
}

// handOff hands the polled records to the Handler, partition by partition in offset order. It
// reports whether it stopped early because ctx is done.
func (s *session) handOff(ctx context.Context, cl *kgo.Client, fetches kgo.Fetches) (stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0 // records handed off
	waitUntil := time.Now().Add(behindWait)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if stopped || len(p.Records) == 0 {
			return
		}
		if s.c.cc.Behind != nil {
			s.waitBehind(ctx, p.Topic, p.Partition, p.Records[len(p.Records)-1].Offset+1, waitUntil)
		}
		next := int64(-1)
		for _, rec := range p.Records {
			if ctx.Err() != nil || !s.deliver(ctx, cl, rec) {
				stopped = true
				break
			}
			if n++; n%flushEvery == 0 && s.c.cc.Flush != nil {
				s.c.cc.Flush()
				// The writers Flush woke wait for a free P, and this goroutine keeps its own for
				// up to a 10 ms time slice while it hands off on: let them write first.
				runtime.Gosched()
			}
			set(s.handed, rec.Topic, rec.Partition, kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1})
			next = rec.Offset + 1
		}
		if next >= 0 {
			s.c.m.setLag(p.Topic, p.Partition, p.HighWatermark-next)
			s.c.setHanded(p.Topic, p.Partition, next)
		}
	})
	return stopped
}

// behindWait bounds how long one poll's hand-off waits for ConsumerConfig.Behind: the dead-letter
// duty of a node whose delivery is stuck still copies a poll's worth of poison records a second.
const behindWait = time.Second

// waitBehind waits while ConsumerConfig.Behind reports the partition behind next, until until
// or ctx is done, checking every millisecond.
func (s *session) waitBehind(ctx context.Context, topic string, partition int32, next int64, until time.Time) {
	for s.c.cc.Behind(topic, partition, next) && time.Now().Before(until) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// deliver hands rec to the Handler, or to the dead-letter topic when the Handler refuses it
// (without waiting: see deadLetter; RoleDeliver skips it instead). It reports whether rec was handed off (false only when
// ctx ended first). The caller holds s.mu.
func (s *session) deliver(ctx context.Context, cl *kgo.Client, rec *kgo.Record) bool {
	s.c.m.records.WithLabelValues(rec.Topic).Inc()
	err := s.c.cc.Handler(ctx, rec)
	if err == nil {
		return true
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return false // shutting down: not poison; the record comes back on the next start
	}
	if s.c.cc.Role == RoleDeliver {
		s.c.m.poisonSkipped.WithLabelValues(rec.Topic).Inc() // the dead-letter duty copies it
		return true
	}
	s.deadLetter(cl, rec, err)
	return true
}

// commit commits what was handed off and not yet committed, for the partitions in only (all
// when nil), bounded by RequestTimeout, and waits for the answer: in each partition, up to the
// first poison record whose dead-letter copy is not resolved, if any, and otherwise up to after
// the last record handed off. It reports whether such a copy held a commit back. A failure is
// counted and logged; the offsets are committed with the next commit.
func (s *session) commit(ctx context.Context, cl *kgo.Client, only map[string][]int32) (held bool) {
	offsets, held := s.toCommit(only)
	if len(offsets) == 0 {
		return held
	}
	rctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
	defer cancel()
	var cerr error
	cl.CommitOffsetsSync(rctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cerr = commitError(resp, err)
	})
	s.committedNow(offsets, cerr)
	return held
}

// commitAsync is commit without waiting for the answer, for the commits of the poll loop: a
// commit is a round trip to the group coordinator, and records fetched meanwhile would wait for
// it (every commitInterval, they did: realtime_stage_seconds{stage="produce_fetch"}). At most
// one is in flight: while one is, commitAsync commits nothing (the next one takes its offsets).
// franz-go sends commits in order, and a synchronous commit (revocation, shutdown) waits for
// the asynchronous one in flight.
func (s *session) commitAsync(ctx context.Context, cl *kgo.Client) (held bool) {
	if !s.committing.CompareAndSwap(false, true) {
		return true // try again at the next interval
	}
	offsets, held := s.toCommit(nil)
	if len(offsets) == 0 {
		s.committing.Store(false)
		return held
	}
	rctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
	cl.CommitOffsets(rctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cancel()
		s.committedNow(offsets, commitError(resp, err))
		s.committing.Store(false)
	})
	return held
}

// toCommit returns the offsets commit commits (see commit), and whether a dead-letter copy held
// one back.
func (s *session) toCommit(only map[string][]int32) (offsets map[string]map[int32]kgo.EpochOffset, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	offsets = map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range s.handed {
		for p, eo := range ps {
			if only != nil && !slices.Contains(only[t], p) {
				continue
			}
			q := s.dlq[t][p]
			for len(q) > 0 && q[0].state.Load() == dlqResolved {
				q[0] = nil
				q = q[1:]
			}
			if len(q) == 0 {
				delete(s.dlq[t], p)
			} else {
				s.dlq[t][p] = q
				if q[0].offset < eo.Offset {
					eo, held = kgo.EpochOffset{Epoch: q[0].epoch, Offset: q[0].offset}, true
				}
			}
			if c, ok := s.committed[t][p]; ok && eo.Offset <= c {
				continue
			}
			set(offsets, t, p, eo)
		}
	}
	return offsets, held
}

// commitError is the error of an OffsetCommit: the request's, or a partition's.
func commitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

// committedNow records the answer to a commit of offsets: on success they are committed, and a
// failure is counted and logged.
func (s *session) committedNow(offsets map[string]map[int32]kgo.EpochOffset, cerr error) {
	if cerr != nil {
		s.c.m.commitErrors.Inc()
		s.c.health.groupFailed(fmt.Errorf("commit: %w", cerr))
		s.c.log.Warn("kafka consumer: offset commit failed; the next commit retries it",
			"group", s.c.group, "err", cerr)
		return
	}
	s.c.health.groupOK()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range offsets {
		for p, eo := range ps {
			if c, ok := s.committed[t][p]; !ok || eo.Offset > c {
				set(s.committed, t, p, eo.Offset)
			}
		}
	}
}

// revoked waits for the dead-letter copies in flight (at most RequestTimeout), commits what
// was handed off from the revoked partitions, forgets them and tells Revoked
// (kgo.OnPartitionsRevoked; with BlockRebalanceOnPoll it never runs during a hand-off).
func (s *session) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	if !s.closing.Load() {
		s.waitDeadLetters(ctx)
	}
	s.commit(ctx, cl, parts)
	s.forget(parts)
}

// lost forgets partitions whose group session is gone; committing them would be refused
// (kgo.OnPartitionsLost).
func (s *session) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.forget(parts)
}

func (s *session) forget(parts map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t, ps := range parts {
		for _, p := range ps {
			delete(s.handed[t], p)
			delete(s.committed[t], p)
			delete(s.dlq[t], p)
			n++
		}
	}
	s.c.m.dropLag(parts)
	s.c.forgetHanded(parts)
	if n > 0 && s.c.cc.Revoked != nil {
		s.c.cc.Revoked(parts)
	}
}

// set stores v at m[t][p], making the inner map when needed.
func set[V any](m map[string]map[int32]V, t string, p int32, v V) {
	if m[t] == nil {
		m[t] = map[int32]V{}
	}
	m[t][p] = v
}
