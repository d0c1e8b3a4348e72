package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The replayburst run: users A and B each take a cursor (a record naming both), disconnect, and
// miss records (-missed-a for A, -missed for B, among -noise records for users without
// connections) beyond the node's memory history (the owned node gets REALTIME_HISTORY_SIZE=10),
// so that every resume replays from Kafka. Then, -iterations times: B resumes alone from its old
// cursor; then A opens -resumes simultaneous resumes from its old cursor and B resumes once
// meanwhile. A resume sends the client's resume token (its cursor and the IDs of the hello
// records it got; see clientCursor) and fails on any event it had already. Measured: B's resume time (dial to its last missed event) alone and during A's
// burst, and their ratio; A's resumes must all succeed too.

type replayBurstConfig struct {
	resumes    int
	missedA    int
	missedB    int
	noise      int
	iterations int
	timeout    time.Duration
}

func defaultReplayBurst() replayBurstConfig {
	return replayBurstConfig{resumes: 100, missedA: 1000, missedB: 100, noise: 10_000, iterations: 5, timeout: 60 * time.Second}
}

type replayBurstResult struct {
	Resumes    int                `json:"resumes"`
	MissedA    int                `json:"missed_a"`
	MissedB    int                `json:"missed_b"`
	Noise      int                `json:"noise"`
	Iterations int                `json:"iterations"`
	Alone      latencySummary     `json:"b_alone"`
	During     latencySummary     `json:"b_during_burst"`
	Ratio      float64            `json:"ratio_p50"`
	A          latencySummary     `json:"a_resumes"`
	AFailed    map[string]int64   `json:"a_failed,omitempty"`
	Replays    map[string]float64 `json:"replays"`
	Resyncs    map[string]float64 `json:"resyncs,omitempty"`
	RSSPeak    float64            `json:"rss_peak_mib"`
	Failure    string             `json:"failure,omitempty"`
}

func runReplayBurst(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replayburst", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	cfg := defaultReplayBurst()
	fs.IntVar(&cfg.resumes, "resumes", cfg.resumes, "A's simultaneous resumes")
	fs.IntVar(&cfg.missedA, "missed-a", cfg.missedA, "records A misses")
	fs.IntVar(&cfg.missedB, "missed", cfg.missedB, "records B misses")
	fs.IntVar(&cfg.noise, "noise", cfg.noise, "records for other users (no connections) among them")
	fs.IntVar(&cfg.iterations, "iterations", cfg.iterations, "pairs of B's resumes, alone and during A's burst")
	fs.DurationVar(&cfg.timeout, "resume-timeout", cfg.timeout, "bound on one resume's catch-up")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if cfg.resumes < 1 || cfg.missedA < 1 || cfg.missedB < 1 || cfg.noise < 0 || cfg.iterations < 1 {
		return errors.New("want positive -resumes, -missed-a, -missed, -iterations and -noise >= 0")
	}
	if c.target == "" && !slices.ContainsFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, "REALTIME_HISTORY_SIZE=") }) {
		c.env = append(c.env, "REALTIME_HISTORY_SIZE=10")
	}
	perRun := 2*time.Minute + time.Duration(cfg.iterations)*2*cfg.timeout
	return repeat(ctx, "replayburst", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return replayBurstRun(ctx, st, cfg, stderr)
	})
}

// replayClient is one connection of A or B: the hello connection (want 0) waits for a hello
// record; a resume counts the distinct missed records of its user.
type replayClient struct {
	prefix []byte // `"bench":"<run>.<a|b|h>`
	want   int
	seen   map[int64]bool
	twice  int // a missed record again under another ID (de-duplication on ID cannot drop it)
	resync bool
	done   chan struct{}
}

func (rc *replayClient) onEvent(name string, data []byte, id string) {
	switch {
	case name == "resync":
		rc.resync = true
		return
	case id == "":
		return // a cursor frame: the reader keeps it
	}
	i := bytes.Index(data, rc.prefix)
	if i < 0 {
		return // a hello record the client had not got before it disconnected
	}
	if rc.want == 0 {
		if !isClosed(rc.done) {
			close(rc.done)
		}
		return
	}
	seq, _, ok := parseInt(data[i+len(rc.prefix):])
	if !ok {
		return
	}
	if rc.seen[seq] {
		rc.twice++
		return
	}
	rc.seen[seq] = true
	if len(rc.seen) == rc.want {
		close(rc.done)
	}
}

// resumeOnce dials with the resume token of k (a copy of what the client held when it
// disconnected) and waits until rc has every missed record; it returns the time from the dial.
// An event the client had (dropped on ID: the token listed it), a missed record twice, or a
// frame it cannot parse fails the resume.
func resumeOnce(ctx context.Context, d *dialer, token string, k *clientCursor, rc *replayClient, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	fc, err := d.dial(ctx, token, k.token())
	if err != nil {
		return 0, err
	}
	var foreign int64
	ended := make(chan error, 1)
	go func() { ended <- readClientEvents(fc, k, &foreign, rc.onEvent) }()
	var took time.Duration
	select {
	case <-rc.done:
		took = time.Since(start)
	case err := <-ended:
		fc.close()
		return 0, fmt.Errorf("connection ended after %d of %d records: %v", len(rc.seen), rc.want, err)
	case <-time.After(limit):
		err = fmt.Errorf("%d of %d records after %v (resync %v)", len(rc.seen), rc.want, limit, rc.resync)
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	fc.close()
	<-ended
	if err == nil && (k.dups > 0 || rc.twice > 0 || foreign > 0) {
		err = fmt.Errorf("%d events the client had sent back the IDs of, %d missed records twice, %d unparsable frames", k.dups, rc.twice, foreign)
	}
	if err != nil {
		return 0, err
	}
	return took, nil
}

func replayBurstRun(ctx context.Context, st *stack, cfg replayBurstConfig, stderr io.Writer) ([]figure, any, *loadReport, error) {
	run := randomHex(3)
	userA, userB := "rb-a-"+run, "rb-b-"+run
	toks, err := st.tokens([]string{userA, userB}, 2*time.Hour)
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := newProducer(st.brokers, 5*time.Millisecond)
	if err != nil {
		return nil, nil, nil, err
	}
	defer cl.Close()
	d := newDialer("ws", st.url, 64<<10)
	d.timeout = 30 * time.Second
	// Cursors: both connect (each gets its opening cursor), a record naming both arrives, both
	// disconnect, holding their cursor and the IDs of the hello records they got.
	cursors := []*clientCursor{newClientCursor(), newClientCursor()}
	hello := []*replayClient{
		{prefix: []byte(`"bench":"` + run + `.h`), done: make(chan struct{})},
		{prefix: []byte(`"bench":"` + run + `.h`), done: make(chan struct{})},
	}
	var conns []frameConn
	var readers sync.WaitGroup
	var foreign [2]int64
	for i, tok := range toks {
		fc, err := d.dial(ctx, tok, "")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("hello connection: %w", err)
		}
		conns = append(conns, fc)
		readers.Go(func() { readClientEvents(fc, cursors[i], &foreign[i], hello[i].onEvent) })
	}
	closeAll := func() {
		for _, fc := range conns {
			fc.close()
		}
		readers.Wait()
		conns = nil
	}
	both := usersJSON([]string{userA, userB})
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; ; n++ {
		cl.Produce(ctx, &kgo.Record{Topic: topicConcepts, Value: []byte(`{"bench":"` + run + `.h` + strconv.Itoa(n) + `","conceptId":"h","userIds":` + string(both) + `,"conceptName":"bench","masteryLevel":0.5}`)}, nil)
		select {
		case <-hello[0].done:
		case <-time.After(500 * time.Millisecond):
		}
		if isClosed(hello[0].done) && isClosed(hello[1].done) {
			break
		}
		if time.Now().After(deadline) {
			closeAll()
			return nil, nil, nil, errors.New("no hello record reached both users within 60s")
		}
	}
	closeAll()
	if cursors[0].token() == "" || cursors[1].token() == "" || foreign[0]+foreign[1] > 0 {
		return nil, nil, nil, fmt.Errorf("the hello connections got no cursor (A %q, B %q) or %d unparsable frames", cursors[0].token(), cursors[1].token(), foreign[0]+foreign[1])
	}
	start, err := scrapeMetrics(ctx, st)
	if err != nil {
		return nil, nil, nil, err
	}

	// What they miss: A's, B's and the noise, interleaved, keys spread over the partitions.
	usersA, usersB := usersJSON([]string{userA}), usersJSON([]string{userB})
	var perr error
	var pmu sync.Mutex
	kinds := slices.Repeat([]byte{'a'}, cfg.missedA)
	kinds = append(kinds, slices.Repeat([]byte{'b'}, cfg.missedB)...)
	kinds = append(kinds, slices.Repeat([]byte{'n'}, cfg.noise)...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	ia, ib := 0, 0
	for i, k := range kinds {
		var val []byte
		switch k {
		case 'a':
			val = []byte(`{"bench":"` + run + `.a.` + strconv.Itoa(ia) + `","conceptId":"c` + strconv.Itoa(i) + `","userIds":` + string(usersA) + `,"conceptName":"bench","masteryLevel":0.5}`)
			ia++
		case 'b':
			val = []byte(`{"bench":"` + run + `.b.` + strconv.Itoa(ib) + `","conceptId":"c` + strconv.Itoa(i) + `","userIds":` + string(usersB) + `,"conceptName":"bench","masteryLevel":0.5}`)
			ib++
		default:
			val = []byte(`{"bench":"` + run + `.n.` + strconv.Itoa(i) + `","conceptId":"c` + strconv.Itoa(i) + `","userIds":["rb-n-` + run + `-` + strconv.Itoa(i%1000) + `"],"conceptName":"bench","masteryLevel":0.5}`)
		}
		cl.Produce(ctx, &kgo.Record{Topic: topicConcepts, Key: []byte("c" + strconv.Itoa(i)), Value: val}, func(_ *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				perr = cmpOr(perr, err)
				pmu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, nil, nil, err
	}
	if perr != nil || ia != cfg.missedA || ib != cfg.missedB {
		return nil, nil, nil, fmt.Errorf("produce: %v (A %d of %d, B %d of %d)", perr, ia, cfg.missedA, ib, cfg.missedB)
	}
	// The node has published them all: the hello records and these.
	if !waitUntil(ctx, 60*time.Second, func() bool {
		m, err := scrapeMetrics(ctx, st)
		return err == nil && m.Published-start.Published >= float64(len(kinds))
	}) {
		return nil, nil, nil, errors.New("the node did not publish the missed records within 60s")
	}

	mon := monitor(st)
	watch := watchRSS(st.nodePID, 0, nil)
	res := replayBurstResult{Resumes: cfg.resumes, MissedA: cfg.missedA, MissedB: cfg.missedB, Noise: cfg.noise}
	alone, during, aTimes := new(hist), new(hist), new(hist)
	var aFailed counts
	newB := func() *replayClient {
		return &replayClient{prefix: []byte(`"bench":"` + run + `.b.`), want: cfg.missedB, seen: map[int64]bool{}, done: make(chan struct{})}
	}
	var runErr error
	for it := 0; it < cfg.iterations && runErr == nil; it++ {
		t, err := resumeOnce(ctx, d, toks[1], cursors[1].clone(), newB(), cfg.timeout)
		if err != nil {
			runErr = fmt.Errorf("B alone, iteration %d: %w", it+1, err)
			break
		}
		alone.record(int64(t))

		var wg sync.WaitGroup
		var mu sync.Mutex
		go1 := make(chan struct{})
		for range cfg.resumes {
			wg.Go(func() {
				<-go1
				rc := &replayClient{prefix: []byte(`"bench":"` + run + `.a.`), want: cfg.missedA, seen: map[int64]bool{}, done: make(chan struct{})}
				t, err := resumeOnce(ctx, d, toks[0], cursors[0].clone(), rc, cfg.timeout)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					aFailed.add(errKindLong(err))
					return
				}
				aTimes.record(int64(t))
			})
		}
		close(go1)
		time.Sleep(time.Millisecond) // A's dials are under way
		t, err = resumeOnce(ctx, d, toks[1], cursors[1].clone(), newB(), cfg.timeout)
		wg.Wait()
		if err != nil {
			runErr = fmt.Errorf("B during A's burst, iteration %d: %w", it+1, err)
			break
		}
		during.record(int64(t))
		// A's connections are gone before the next iteration (REALTIME_MAX_CONNECTIONS_PER_USER).
		waitUntil(ctx, 10*time.Second, func() bool {
			m, err := scrapeMetrics(ctx, st)
			return err == nil && m.Connections == 0
		})
	}
	res.RSSPeak = mib(watch.finish())
	load := mon.stop()
	end, _ := scrapeMetrics(ctx, st)
	res.Replays = map[string]float64{}
	for src, n := range end.Replays {
		res.Replays[src] = n - start.Replays[src]
	}
	for reason, n := range end.Resyncs {
		if dd := n - start.Resyncs[reason]; dd > 0 {
			if res.Resyncs == nil {
				res.Resyncs = map[string]float64{}
			}
			res.Resyncs[reason] = dd
		}
	}
	res.Iterations = int(during.n)
	res.Alone, res.During, res.A = alone.summary(), during.summary(), aTimes.summary()
	if res.Alone.P50 > 0 {
		res.Ratio = res.During.P50 / res.Alone.P50
	}
	if f := aFailed.snapshot(); len(f) > 0 {
		res.AFailed = f
	}
	var aFails int64
	for _, n := range res.AFailed {
		aFails += n
	}
	if runErr != nil {
		res.Failure = runErr.Error()
	}
	figs := []figure{
		{"iterations", "", float64(res.Iterations)},
		{"A's simultaneous resumes", "", float64(cfg.resumes)},
		{"B resume alone p50", "ms", res.Alone.P50},
		{"B resume alone max", "ms", res.Alone.Max},
		{"B resume during A's burst p50", "ms", res.During.P50},
		{"B resume during A's burst max", "ms", res.During.Max},
		{"ratio (p50 during / alone)", "", res.Ratio},
		{"A resume p50", "ms", res.A.P50},
		{"A resume max", "ms", res.A.Max},
		{"A resumes failed", "", float64(aFails)},
		{"replays from kafka", "", res.Replays["kafka"]},
		{"replays from memory", "", res.Replays["memory"]},
		{"server RSS peak", "MiB", res.RSSPeak},
	}
	return figs, res, load, runErr
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// errKindLong names a resume failure for the report: the handshake status, or the kind of error.
func errKindLong(err error) string {
	if s := err.Error(); strings.HasPrefix(s, "handshake: ") {
		return s
	}
	return errKind(err)
}
