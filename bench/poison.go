package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The poison run: the victim's stream flows for -baseline; then P poison records (valid JSON
// that fails validation: userIds empty, masteryLevel 2) are produced straight to the consumed
// topic in batches, interleaved on every partition with the victim's records; the run waits
// until the node has dead-lettered all of them (the dead-letter topic's end offsets), then
// -after more. Measured: the victim's p99 during the burst against the baseline's, whether every
// valid record arrived, the dead-letter count, and the node's log lines naming the dead-letter
// topic.

type poisonConfig struct {
	profile  string // -cpuprofile: the node's CPU profile over the burst's first 2 s
	poison   int
	batch    int
	rate     float64
	baseline time.Duration
	after    time.Duration
	limit    time.Duration // bound on dead-lettering them all
	dlqTopic string
	valid    bool // control run: the burst's records are valid (for a user without connections)
}

func defaultPoison() poisonConfig {
	return poisonConfig{poison: 20_000, batch: 500, rate: 100, baseline: 5 * time.Second, after: 2 * time.Second,
		limit: 2 * time.Minute, dlqTopic: "realtime-service.dlq"}
}

type poisonResult struct {
	Poison       int          `json:"poison"`
	Control      bool         `json:"control,omitempty"` // the burst was valid records`
	ProduceSecs  float64      `json:"produce_seconds"`
	DLQSecs      float64      `json:"dead_lettered_after_s"` // from the first poison record produced to the last dead-lettered (-control: published)
	DLQDelta     int64        `json:"dlq_delta"`
	LogLines     int          `json:"log_lines_naming_dlq"`
	RSSPeak      float64      `json:"rss_peak_mib"`
	Victim       victimResult `json:"victim"`
	AddedP99     float64      `json:"added_p99_ms"`
	ProduceError string       `json:"produce_error,omitempty"`
	// Stages is the node's realtime_stage_seconds from the burst's start until it was handled
	// (every record: the burst's and the victim's).
	Stages map[string]stageSummary `json:"stages,omitempty"`
}

func runPoison(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("poison", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	cfg := defaultPoison()
	fs.IntVar(&cfg.poison, "poison", cfg.poison, "poison records in the burst")
	fs.IntVar(&cfg.batch, "batch", cfg.batch, "poison records per produce batch")
	fs.Float64Var(&cfg.rate, "rate", cfg.rate, "valid records per second to the authenticated victim")
	fs.DurationVar(&cfg.baseline, "baseline", cfg.baseline, "the victim's stream before the burst (its p99 is the baseline)")
	fs.DurationVar(&cfg.after, "after", cfg.after, "the victim's stream after the last poison record was dead-lettered")
	fs.DurationVar(&cfg.limit, "dlq-timeout", cfg.limit, "bound on the node dead-lettering the whole burst")
	fs.StringVar(&cfg.dlqTopic, "dlq-topic", cfg.dlqTopic, "the node's REALTIME_DLQ_TOPIC")
	fs.BoolVar(&cfg.valid, "control", false, "control run: the burst's records are valid, for a user without connections (nothing is dead-lettered), to tell what any burst of that size costs from what poison costs")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if cfg.poison < 1 || cfg.batch < 1 || cfg.rate <= 0 {
		return errors.New("want positive -poison, -batch, -rate")
	}
	if c.target != "" && c.brokers == "" {
		return errors.New("-target needs -brokers: records are produced straight to Kafka")
	}
	perRun := cfg.baseline + cfg.limit + cfg.after + 2*time.Minute
	return repeat(ctx, "poison", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		cfg.profile = profilePath(c.cpuProfile, run)
		return poisonRun(ctx, st, cfg, stderr)
	})
}

// poisonValue is a concept-mastered record that fails validation: no recipient, a mastery level
// out of 0..1.
func poisonValue(run string, i int) []byte {
	return []byte(`{"conceptId":"poison-` + run + `-` + strconv.Itoa(i) + `","userIds":[],"conceptName":"poison","masteryLevel":2}`)
}

func poisonRun(ctx context.Context, st *stack, cfg poisonConfig, stderr io.Writer) ([]figure, any, *loadReport, error) {
	res := poisonResult{Poison: cfg.poison, Control: cfg.valid}
	dlqBefore, err := endOffsets(ctx, st.brokers, cfg.dlqTopic)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := startVictim(ctx, st, cfg.rate)
	if err != nil {
		return nil, nil, nil, err
	}
	defer v.stop()
	select {
	case <-time.After(cfg.baseline):
	case <-ctx.Done():
		return nil, nil, nil, context.Cause(ctx)
	}
	var pubBefore float64
	if m, err := scrapeMetrics(ctx, st); err == nil {
		pubBefore = m.Published
	}
	stagesBefore, err := scrapeStages(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "stage metrics: %v\n", err)
	}
	mon := monitor(st)
	watch := watchRSS(st.nodePID, 0, nil)
	cl, err := newProducer(st.brokers, 5*time.Millisecond)
	if err != nil {
		return nil, nil, nil, err
	}
	defer cl.Close()

	v.phase.Store(phaseAttack)
	if cfg.profile != "" {
		defer func(done <-chan error) {
			if err := <-done; err != nil {
				fmt.Fprintf(stderr, "cpu profile: %v\n", err)
			}
		}(cpuProfile(ctx, st, 2*time.Second, cfg.profile))
	}
	run := randomHex(3)
	start := time.Now()
	batch := make([]*kgo.Record, 0, cfg.batch)
	var perr error
	for i := 0; i < cfg.poison && perr == nil; i++ {
		val := poisonValue(run, i)
		if cfg.valid {
			val = []byte(`{"conceptId":"control-` + run + `-` + strconv.Itoa(i) + `","userIds":["nobody-` + run + `"],"conceptName":"control","masteryLevel":0.5}`)
		}
		batch = append(batch, &kgo.Record{Topic: topicConcepts, Key: []byte("p" + strconv.Itoa(i)), Value: val})
		if len(batch) == cfg.batch || i == cfg.poison-1 {
			perr = cl.ProduceSync(ctx, batch...).FirstErr()
			batch = batch[:0]
		}
	}
	res.ProduceSecs = time.Since(start).Seconds()
	if perr != nil {
		res.ProduceError = perr.Error()
	}
	// Until the node has dead-lettered the whole burst (a control burst: published it).
	deadline := time.Now().Add(cfg.limit)
	pub0 := pubBefore
	for perr == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		if cfg.valid {
			if m, err := scrapeMetrics(ctx, st); err == nil && m.Published-pub0 >= float64(cfg.poison) {
				break
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n, err := endOffsets(ctx, st.brokers, cfg.dlqTopic)
		if err == nil {
			res.DLQDelta = n - dlqBefore
			if res.DLQDelta >= int64(cfg.poison) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.DLQSecs = time.Since(start).Seconds()
	if after, err := scrapeStages(ctx, st); err == nil {
		res.Stages = stagesBetween(stagesBefore, after)
	}
	v.phase.Store(phaseAfter)
	select {
	case <-time.After(cfg.after):
	case <-ctx.Done():
	}
	v.drain(15 * time.Second)
	res.RSSPeak = mib(watch.finish())
	load := mon.stop()
	if n, err := endOffsets(ctx, st.brokers, cfg.dlqTopic); err == nil {
		res.DLQDelta = n - dlqBefore
	}
	res.LogLines = countLines(st, cfg.dlqTopic)
	res.Victim = v.result()
	base, during := res.Victim.Latency[phaseNames[phaseBaseline]], res.Victim.Latency[phaseNames[phaseAttack]]
	res.AddedP99 = during.P99 - base.P99

	figs := []figure{
		{"burst records (poison, or valid with -control)", "", float64(cfg.poison)},
		{"produced in", "s", res.ProduceSecs},
		{"burst handled after (dead-lettered; -control: published)", "s", res.DLQSecs},
		{"dead-letter topic grew by", "records", float64(res.DLQDelta)},
		{"node log lines naming it", "", float64(res.LogLines)},
		{"valid p50 baseline", "ms", base.P50},
		{"valid p99 baseline", "ms", base.P99},
		{"valid p50 during the burst", "ms", during.P50},
		{"valid p99 during the burst", "ms", during.P99},
		{"valid max during the burst", "ms", during.Max},
		{"added p99", "ms", res.AddedP99},
		{"valid records during the burst", "", float64(res.Victim.Produced[phaseNames[phaseAttack]])},
		{"valid records missing", "", float64(res.Victim.Missing)},
		{"server RSS peak", "MiB", res.RSSPeak},
	}
	figs = append(figs, stageFigures(res.Stages)...)
	var runErr error
	if perr != nil {
		runErr = fmt.Errorf("produce: %w", perr)
	} else if !cfg.valid && res.DLQDelta < int64(cfg.poison) {
		runErr = fmt.Errorf("the dead-letter topic grew by %d of %d within %v", res.DLQDelta, cfg.poison, cfg.limit)
	}
	if res.Victim.Missing > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("%d valid records never arrived", res.Victim.Missing))
	}
	return figs, res, load, runErr
}
