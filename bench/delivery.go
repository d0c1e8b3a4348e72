package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// deliveryConfig is a latency or fanout run.
type deliveryConfig struct {
	users     int
	fanout    int
	rate      float64
	duration  time.Duration
	drain     time.Duration
	drainIdle time.Duration
	readBuf   int
	parallel  int
	linger    time.Duration
}

// deliveryResult is what a latency or fanout run measured.
type deliveryResult struct {
	Transport string  `json:"transport"`
	Users     int     `json:"users"`
	Fanout    int     `json:"fanout"`
	Rate      float64 `json:"rate"`
	Duration  float64 `json:"duration_s"`

	Produced      int64          `json:"produced"`
	ProduceErrors int64          `json:"produce_errors"`
	ProducedRate  float64        `json:"produced_per_s"`
	Expected      int64          `json:"expected"`
	Received      int64          `json:"received"` // unique deliveries of this run's records
	Lost          int64          `json:"lost"`
	Duplicates    int64          `json:"duplicates"`
	Misrouted     int64          `json:"misrouted"`
	Foreign       int64          `json:"foreign"`     // frames of other runs or unparsable
	Control       int64          `json:"control"`     // frames without a bench field (resync, disconnect)
	Disconnects   map[string]int `json:"disconnects"` // connections that ended early, by reason

	DeliveriesPerSec float64 `json:"deliveries_per_s"`         // delivered within the produce window / window
	OverallPerSec    float64 `json:"overall_deliveries_per_s"` // all / (last delivery - start)
	BacklogEnd       int64   `json:"backlog_end"`              // expected - received when producing ended
	BacklogMid       int64   `json:"backlog_mid"`              // the same half-way through
	Drain            float64 `json:"drain_s"`                  // last delivery after producing ended

	Latency latencySummary `json:"latency"`
	// Stages is the node's realtime_stage_seconds over the run (scraped before and after), by
	// stage: where the records waited (empty against a node without it).
	Stages   map[string]stageSummary `json:"stages,omitempty"`
	Timeline []timePoint             `json:"timeline"`
	Server   nodeStats               `json:"server"`
}

type timePoint struct {
	T        float64 `json:"t"`
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
}

func runDelivery(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	var dc deliveryConfig
	defUsers, defFanout, defRate := 100, 1, 1000.0
	if mode == "fanout" {
		defUsers, defFanout = 1000, 1000
	}
	fs.IntVar(&dc.users, "users", defUsers, "K: users, each with one connection")
	fs.IntVar(&dc.fanout, "fanout", defFanout, "M: users each record names (consecutive, mod K)")
	fs.Float64Var(&dc.rate, "rate", defRate, "R: records produced per second")
	fs.DurationVar(&dc.duration, "duration", 30*time.Second, "T: how long records are produced")
	fs.DurationVar(&dc.drain, "drain", 30*time.Second, "after producing, wait at most this long for the remaining deliveries")
	fs.DurationVar(&dc.drainIdle, "drain-idle", 5*time.Second, "stop draining after this long without a new delivery")
	fs.IntVar(&dc.readBuf, "read-buffer", 64<<10, "client read buffer per connection, bytes")
	fs.IntVar(&dc.parallel, "dial-parallel", 256, "connections opened concurrently")
	fs.DurationVar(&dc.linger, "linger", 0, "the producer's linger (franz-go ProducerLinger): 0 sends each record at once; more batches records into fewer requests, adding up to that much latency")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	switch {
	case dc.users < 1 || dc.fanout < 1 || dc.fanout > dc.users:
		return fmt.Errorf("want 1 <= -fanout (%d) <= -users (%d)", dc.fanout, dc.users)
	case dc.fanout > 10000:
		return fmt.Errorf("-fanout %d: a record names at most 10,000 users", dc.fanout)
	case dc.rate <= 0 || dc.duration <= 0:
		return errors.New("-rate and -duration must be positive")
	}
	if c.target != "" && c.brokers == "" {
		return errors.New("-target needs -brokers: records are produced straight to Kafka")
	}
	perRun := dc.duration + dc.drain + 2*time.Minute
	return repeat(ctx, mode, args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, i int) ([]figure, any, *loadReport, error) {
		return deliveryRun(ctx, st, &c, dc, i, stderr)
	})
}

// deliveryRun connects the users, makes sure every connection receives (a probe record), then
// produces at the rate for the duration, drains, and accounts for every frame.
func deliveryRun(ctx context.Context, st *stack, c *common, dc deliveryConfig, run int, stderr io.Writer) ([]figure, any, *loadReport, error) {
	p := &plan{
		run:    randomHex(3),
		users:  dc.users,
		fanout: dc.fanout,
		total:  int64(math.Round(dc.rate * dc.duration.Seconds())),
		base:   time.Now(),
	}
	prefix := "u"
	if !st.owned {
		prefix = p.run + "u" // a shared node may have other users called u1
	}
	users := make([]string, dc.users)
	for i := range users {
		users[i] = prefix + strconv.Itoa(i)
	}
	toks, err := st.tokens(users, 2*time.Hour)
	if err != nil {
		return nil, nil, nil, err
	}

	cl, err := newProducer(st.brokers, dc.linger)
	if err != nil {
		return nil, nil, nil, err
	}
	defer cl.Close()
	pr := &producer{cl: cl}

	d := newDialer(c.transport, st.url, dc.readBuf)
	recvs := make([]*receiver, dc.users)
	conns := make([]frameConn, dc.users)
	for i := range recvs {
		recvs[i] = newReceiver(p, i)
	}
	defer func() {
		for i, fc := range conns {
			if fc != nil {
				recvs[i].stop(fc)
			}
		}
	}()
	if failed, err := connectAll(ctx, d, toks, dc.parallel, func(i int, fc frameConn) {
		conns[i] = fc
		go recvs[i].serve(fc)
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("%d of %d connections failed: %w", failed, dc.users, err)
	}
	if err := probe(ctx, cl, p, users, recvs); err != nil {
		return nil, nil, nil, err
	}

	// Measure.
	stagesBefore, err := scrapeStages(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "stage metrics: %v\n", err)
	}
	mon := monitor(st)
	profDone := cpuProfile(ctx, st, dc.duration, profilePath(c.cpuProfile, run))
	var timeline []timePoint
	received := func() int64 {
		var n int64
		for _, r := range recvs {
			n += r.uniq.Load()
		}
		return n
	}
	start := time.Now()
	startNS := p.now()
	var midBacklog int64 = -1
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	recipientsJSON := map[int][]byte{}
	var value []byte
	var seq int64
	interval := float64(time.Second) / dc.rate
produce:
	for seq < p.total {
		due := min(p.total, int64(float64(time.Since(start))/interval)+1)
		for ; seq < due; seq++ {
			from, n := p.recipients(seq)
			uj, ok := recipientsJSON[from]
			if !ok {
				names := make([]string, n)
				for j := range names {
					names[j] = users[(from+j)%dc.users]
				}
				uj = usersJSON(names)
				recipientsJSON[from] = uj
			}
			value = conceptValue(value[:0], p.run, seq, p.now(), uj)
			pr.produce(ctx, &kgo.Record{Topic: topicConcepts, Key: []byte("c" + strconv.FormatInt(seq%1024, 10)), Value: append([]byte(nil), value...)})
		}
		if midBacklog < 0 && time.Since(start) >= dc.duration/2 {
			midBacklog = pr.sent.Load()*int64(dc.fanout) - received()
		}
		next := start.Add(time.Duration(float64(seq) * interval))
		select {
		case <-ctx.Done():
			break produce
		case t := <-tick.C:
			timeline = append(timeline, timePoint{T: t.Sub(start).Seconds(), Sent: pr.sent.Load(), Received: received()})
		case <-time.After(time.Until(next)):
		}
	}
	window := time.Since(start)
	endNS := p.now()
	inWindow := received()
	backlogEnd := pr.sent.Load()*int64(dc.fanout) - inWindow
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cl.Flush(fctx)
	cancel()

	// Drain.
	expected := pr.acked.Load() * int64(dc.fanout)
	drainStart, lastProgress, last := time.Now(), time.Now(), received()
	for last < expected && time.Since(drainStart) < dc.drain && time.Since(lastProgress) < dc.drainIdle && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := received(); n != last {
			last, lastProgress = n, time.Now()
		}
	}
	load := mon.stop()
	if err := <-profDone; err != nil {
		fmt.Fprintf(stderr, "cpu profile: %v\n", err)
	}
	srv, err := scrapeMetrics(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "metrics: %v\n", err)
	}
	stagesAfter, err := scrapeStages(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "stage metrics: %v\n", err)
	}
	if err := heapProfile(ctx, st, profilePath(c.heapProfile, run)); err != nil {
		fmt.Fprintf(stderr, "heap profile: %v\n", err)
	}
	// Close the connections before reading what the readers counted.
	for i, fc := range conns {
		if fc != nil {
			recvs[i].stop(fc)
			conns[i] = nil
		}
	}

	res := deliveryResult{
		Transport:     c.transport,
		Users:         dc.users,
		Fanout:        dc.fanout,
		Rate:          dc.rate,
		Duration:      window.Seconds(),
		Produced:      pr.acked.Load(),
		ProduceErrors: pr.failed.Load(),
		ProducedRate:  float64(pr.sent.Load()) / window.Seconds(),
		Expected:      expected,
		Disconnects:   map[string]int{},
		BacklogEnd:    backlogEnd,
		BacklogMid:    max(midBacklog, 0),
		Timeline:      timeline,
		Server:        srv,
		Stages:        stagesBetween(stagesBefore, stagesAfter),
	}
	all := new(hist)
	var lastNS int64
	for _, r := range recvs {
		res.Received += r.uniq.Load()
		res.Duplicates += r.dup
		res.Misrouted += r.misrouted
		res.Foreign += r.foreign
		res.Control += r.control
		all.merge(r.h)
		lastNS = max(lastNS, r.last.Load())
		if r.endErr != nil {
			res.Disconnects[closeReason(r.endErr)]++
		}
	}
	res.Lost = res.Expected - res.Received
	res.DeliveriesPerSec = float64(inWindow) / window.Seconds()
	if lastNS > startNS {
		res.OverallPerSec = float64(res.Received) / (float64(lastNS-startNS) / 1e9)
	}
	if lastNS > endNS {
		res.Drain = float64(lastNS-endNS) / 1e9
	}
	res.Latency = all.summary()

	disc := 0
	for _, n := range res.Disconnects {
		disc += n
	}
	figs := []figure{
		{"records/s produced", "1/s", res.ProducedRate},
		{"deliveries/s", "1/s", res.DeliveriesPerSec},
		{"p50", "ms", res.Latency.P50},
		{"p90", "ms", res.Latency.P90},
		{"p99", "ms", res.Latency.P99},
		{"p99.9", "ms", res.Latency.P999},
		{"max", "ms", res.Latency.Max},
	}
	figs = append(figs, stageFigures(res.Stages)...)
	if len(res.Stages) > 0 {
		// The stages' means add up (their quantiles do not): what is left of the mean
		// end-to-end latency is the client's side (the load tool's clock to the record
		// timestamp, the socket, the tool's read) and what no stage covers.
		sum := 0.0
		for _, s := range res.Stages {
			sum += s.Mean
		}
		figs = append(figs,
			figure{"mean end to end", "ms", res.Latency.Mean},
			figure{"mean of the stages summed", "ms", sum},
		)
	}
	figs = append(figs, []figure{
		{"expected", "", float64(res.Expected)},
		{"lost", "", float64(res.Lost)},
		{"duplicates", "", float64(res.Duplicates)},
		{"misrouted", "", float64(res.Misrouted)},
		{"produce errors", "", float64(res.ProduceErrors)},
		{"disconnects", "", float64(disc)},
		{"backlog at mid", "deliveries", float64(res.BacklogMid)},
		{"backlog at end", "deliveries", float64(res.BacklogEnd)},
		{"drain", "s", res.Drain},
		{"server RSS", "MB", float64(srv.RSS) / (1 << 20)},
	}...)
	if w := load.WritesPS["server"] * load.Seconds; w > 0 {
		figs = append(figs,
			figure{"server write syscalls/s", "1/s", load.WritesPS["server"]},
			figure{"deliveries per server write", "", float64(res.Received) / w},
			figure{"tool read syscalls/s", "1/s", load.ReadsPS["tool"]},
		)
	}
	if srv.Receipts != nil || srv.ReceiptsDropped > 0 {
		figs = append(figs,
			figure{"delivered receipts produced", "", srv.Receipts["delivered"]},
			figure{"receipts dropped", "", srv.ReceiptsDropped},
		)
	}
	if res.Received > 0 && res.Produced > 0 {
		// What the cursor design is judged by: the bytes the node writes (to clients, mostly:
		// its Kafka fetch requests and logs are a few KB/s) per delivery, and its CPU per record.
		figs = append(figs,
			figure{"server bytes written per delivery", "B", load.WriteBytes["server"] / float64(res.Received)},
			figure{"server CPU per record", "µs", load.Cores["server"] * load.Seconds / float64(res.Produced) * 1e6},
		)
	}
	var runErr error
	if pe := pr.err(); pe != nil {
		runErr = fmt.Errorf("produce: %w", pe)
	}
	return figs, res, load, runErr
}

// probe produces probe records naming every user until every connection has received one, so
// that the node's consumer is positioned and every connection registered before measuring. A
// node's first start begins at the end of each partition, so a record produced before that is
// never delivered.
func probe(ctx context.Context, cl *kgo.Client, p *plan, users []string, recvs []*receiver) error {
	return probeTopic(ctx, cl, topicConcepts, p, users, recvs, nil)
}

// probeTopic is probe on topic, each probe value passed through wrap when it is not nil (compare:
// the other system's envelope, naming the chunk's users).
func probeTopic(ctx context.Context, cl *kgo.Client, topic string, p *plan, users []string, recvs []*receiver, wrap func(dst, value []byte, names []string) []byte) error {
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; ; n++ {
		for from := 0; from < len(users); from += probeUsers {
			chunk := users[from:min(len(users), from+probeUsers)]
			v := probeValue(p.run, n, usersJSON(chunk))
			if wrap != nil {
				v = wrap(nil, v, chunk)
			}
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: v}, nil)
		}
		wait := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(wait) {
			missing := 0
			for _, r := range recvs {
				if !r.probe.Load() {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d connections received no probe record within 60s", missing, len(recvs))
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
