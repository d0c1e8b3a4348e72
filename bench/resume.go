package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The resume run ("Nothing missed": resume time): one user's client is connected and holds a
// cursor; it disconnects; M records for that user are produced (interleaved with -noise records
// per missed one for other users, who have no connection), acknowledged by the broker and
// published by the node (its realtime_events_published_total says so); the client reconnects
// with its resume token, the cursor of its last cursor frame and the IDs of the events it got
// after it (see clientCursor; WebSocket ?cursor=, SSE Last-Event-ID, Socket.IO auth cursor).
// Measured: from the start of the dial to the M-th missed event received. Checked, every
// iteration: exactly the M missed events arrive, each once (none dropped as a duplicate either:
// the client sent back every ID it had), in partition order, each under the ID Kafka gave it, no
// resync; then a record produced after the catch-up arrives live, next. The node's
// realtime_replays_total says where each replay came from: -source memory (the default history)
// or kafka (the node's REALTIME_HISTORY_SIZE below M, so that its history cannot serve the range).

type resumeConfig struct {
	source       string // memory or kafka: where the replays must come from
	iterations   int    // measured resumes
	warmup       int    // resumes before, not measured
	missed       int    // records the client misses per resume
	noise        int    // records for other users per missed record
	noiseUsers   int    // how many other users share the noise
	key          string // concept: a distinct key per record (as the API keys by conceptId); user: the user's ID
	kafkaHistory int    // the node's REALTIME_HISTORY_SIZE with -source kafka
	iterTimeout  time.Duration
	dialTimeout  time.Duration
	readBuf      int
	seed         uint64
}

func defaultResume() resumeConfig {
	return resumeConfig{
		source:       "memory",
		iterations:   200,
		warmup:       5,
		missed:       100,
		noise:        9,
		noiseUsers:   1000,
		key:          "concept",
		kafkaHistory: 50,
		iterTimeout:  15 * time.Second,
		dialTimeout:  10 * time.Second,
		readBuf:      16 << 10,
		seed:         1,
	}
}

func (cfg *resumeConfig) check(transport string) error {
	switch {
	case cfg.source != "memory" && cfg.source != "kafka":
		return fmt.Errorf("-source %q: want memory or kafka", cfg.source)
	case transport != "ws" && transport != "ws-gorilla" && transport != "sse" && transport != "socketio":
		return fmt.Errorf("-transport %q: resume measures ws, ws-gorilla, sse or socketio", transport)
	case cfg.iterations < 1 || cfg.warmup < 0 || cfg.missed < 1 || cfg.noise < 0 || cfg.noiseUsers < 1:
		return errors.New("want -iterations >= 1, -warmup >= 0, -missed >= 1, -noise >= 0, -noise-users >= 1")
	case cfg.key != "concept" && cfg.key != "user":
		return fmt.Errorf("-key %q: want concept or user", cfg.key)
	case cfg.kafkaHistory < 0 || cfg.kafkaHistory >= cfg.missed:
		return fmt.Errorf("-kafka-history %d: want 0 <= it < -missed (%d), so that the history cannot serve the resume", cfg.kafkaHistory, cfg.missed)
	}
	return nil
}

func runResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("resume", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	cfg := defaultResume()
	fs.StringVar(&cfg.source, "source", cfg.source, "where the replays must come from: memory (the node's default history) or kafka (the owned node gets REALTIME_HISTORY_SIZE=-kafka-history)")
	fs.IntVar(&cfg.iterations, "iterations", cfg.iterations, "measured resumes")
	fs.IntVar(&cfg.warmup, "warmup", cfg.warmup, "resumes before the measured ones (checked, not measured)")
	fs.IntVar(&cfg.missed, "missed", cfg.missed, "records the client misses per resume")
	fs.IntVar(&cfg.noise, "noise", cfg.noise, "records for other users (without connections) produced per missed record, interleaved")
	fs.IntVar(&cfg.noiseUsers, "noise-users", cfg.noiseUsers, "other users the noise records name (one each, at random)")
	fs.StringVar(&cfg.key, "key", cfg.key, "record keys: concept (a distinct key per record, as the API keys by conceptId: the user's records spread over the partitions) or user (the user's records on one partition)")
	fs.IntVar(&cfg.kafkaHistory, "kafka-history", cfg.kafkaHistory, "with -source kafka: the owned node's REALTIME_HISTORY_SIZE (below -missed; 0 turns the history off)")
	fs.DurationVar(&cfg.iterTimeout, "iteration-timeout", cfg.iterTimeout, "bound on one resume's catch-up, and on the live record after it")
	fs.DurationVar(&cfg.dialTimeout, "dial-timeout", cfg.dialTimeout, "bound on one connection attempt")
	fs.Uint64Var(&cfg.seed, "seed", cfg.seed, "seed of the noise recipients")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if err := cfg.check(c.transport); err != nil {
		return err
	}
	if cfg.source == "kafka" && c.target == "" &&
		!slices.ContainsFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, "REALTIME_HISTORY_SIZE=") }) {
		c.env = append(c.env, "REALTIME_HISTORY_SIZE="+strconv.Itoa(cfg.kafkaHistory))
	}
	perRun := 2*time.Minute + time.Duration(cfg.iterations+cfg.warmup)*2*time.Second
	return repeat(ctx, "resume", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return resumeRun(ctx, st, c.transport, cfg, stderr)
	})
}

// resumeResult is what a resume run measured and found.
type resumeResult struct {
	Source     string `json:"source"`
	Transport  string `json:"transport"`
	Missed     int    `json:"missed"`
	Noise      int    `json:"noise"`
	Key        string `json:"key"`
	Iterations int    `json:"iterations"` // measured resumes completed
	Warmup     int    `json:"warmup"`

	CatchUp     latencySummary `json:"catch_up"`       // dial start to the last missed event received
	Connect     latencySummary `json:"connect"`        // dial start to connected (handshake done)
	First       latencySummary `json:"first_missed"`   // dial start to the first missed event
	Live        latencySummary `json:"live"`           // the record after the catch-up: produced to received
	PublishWait latencySummary `json:"publish_wait"`   // first missed record produced to the node having published them all
	Inversions  int            `json:"cross_part_inv"` // missed events received before one produced earlier, on another partition (allowed: partition order only)

	Replays   map[string]float64 `json:"replays"`           // realtime_replays_total delta by source
	Replayed  float64            `json:"replayed_events"`   // realtime_replayed_events_total delta
	Resyncs   map[string]float64 `json:"resyncs,omitempty"` // realtime_resyncs_total delta by reason
	NodeStart nodeStats          `json:"node_start"`
	NodeEnd   nodeStats          `json:"node_end"`
	Failure   string             `json:"failure,omitempty"` // the first iteration that failed a check
}

// resumeConn is one connection of the client and what it received. The reader goroutine owns
// every field but fc and done until done is closed; caught and live signal progress.
type resumeConn struct {
	fc     frameConn
	done   chan struct{}
	err    error
	caught chan struct{} // closed at the last missed event
	live   chan struct{} // closed at the live record
	hello  chan struct{} // closed at the first hello record (the first connection)
	hellos atomic.Int64  // hello records received

	run     string
	want    map[int64]int    // missed seq -> its index in production order
	ids     map[int64]string // missed seq -> the event ID Kafka gave it
	liveSeq int64

	dialAt, connectedAt, firstAt, caughtAt, liveAt time.Time

	got        int
	seen       map[int64]bool
	lastOff    map[string]int64 // topic:partition -> last offset received
	maxIdx     int
	inversions int
	liveID     string
	problems   []string
}

func (rc *resumeConn) problem(format string, args ...any) {
	if len(rc.problems) < 10 {
		rc.problems = append(rc.problems, fmt.Sprintf(format, args...))
	} else if len(rc.problems) == 10 {
		rc.problems = append(rc.problems, "...")
	}
}

// helloSeqs are the sequence numbers of the records that give the first connection a cursor.
const helloSeqs = 1000

func (rc *resumeConn) onEvent(name string, data []byte, id string) {
	switch name {
	case "cursor":
		return
	case "resync", "disconnect":
		rc.problem("%s frame: %.200s", name, data)
		return
	}
	var d struct {
		Bench string `json:"bench"`
	}
	run, rest, ok := "", "", false
	if json.Unmarshal(data, &d) == nil {
		run, rest, ok = strings.Cut(d.Bench, ".")
	}
	seqStr, _, _ := strings.Cut(rest, ".")
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	if !ok || run != rc.run || err != nil {
		rc.problem("foreign event %q: %.200s", name, data)
		return
	}
	now := time.Now()
	switch idx, missed := rc.want[seq]; {
	case seq < helloSeqs:
		if rc.hello == nil {
			rc.problem("hello record %d again", seq)
		} else if !rc.seen[seq] {
			rc.seen[seq] = true
			if rc.hellos.Add(1) == 1 {
				close(rc.hello)
			}
		}
	case seq == rc.liveSeq:
		if !rc.liveAt.IsZero() {
			rc.problem("live record %d twice", seq)
			return
		}
		if rc.got < len(rc.want) {
			rc.problem("live record %d after only %d of %d missed ones", seq, rc.got, len(rc.want))
		}
		rc.liveAt, rc.liveID = now, id
		close(rc.live)
	case missed:
		if rc.seen[seq] {
			rc.problem("missed record %d (%s) twice", seq, id)
			return
		}
		if !rc.liveAt.IsZero() {
			rc.problem("missed record %d (%s) after the live one", seq, id)
		}
		rc.seen[seq] = true
		rc.got++
		if id != rc.ids[seq] {
			rc.problem("missed record %d came as %q; Kafka gave it %q", seq, id, rc.ids[seq])
		}
		if i := strings.LastIndexByte(id, ':'); i > 0 {
			off, _ := strconv.ParseInt(id[i+1:], 10, 64)
			if last, ok := rc.lastOff[id[:i]]; ok && off <= last {
				rc.problem("out of partition order: %s after offset %d", id, last)
			}
			rc.lastOff[id[:i]] = off
		}
		if idx < rc.maxIdx {
			rc.inversions++
		}
		rc.maxIdx = max(rc.maxIdx, idx)
		if rc.got == 1 {
			rc.firstAt = now
		}
		if rc.got == len(rc.want) {
			rc.caughtAt = now
			close(rc.caught)
		}
	case seq < 0:
		rc.problem("misrouted: a record for another user (%s)", id)
	default:
		rc.problem("unexpected record %d (%s): not missed by this resume (an earlier one: sent again)", seq, id)
	}
}

// resumeState is one run: the user, the producer, the records produced so far.
type resumeState struct {
	cfg       resumeConfig
	st        *stack
	run       string
	user      string
	token     string
	noise     []string
	rng       *rand.Rand
	cl        *kgo.Client
	d         *dialer
	base      time.Time
	seq       int64         // next sequence number of the user's records
	produced  int64         // records produced this run (every one is published by the node)
	published float64       // realtime_events_published_total before the run
	cur       *clientCursor // the client's cursor, the IDs after it, every ID it got
	value     []byte
}

func resumeRun(ctx context.Context, st *stack, transport string, cfg resumeConfig, stderr io.Writer) ([]figure, any, *loadReport, error) {
	s := &resumeState{cfg: cfg, st: st, run: randomHex(3), base: time.Now(), seq: helloSeqs, cur: newClientCursor(),
		rng: rand.New(rand.NewPCG(cfg.seed, 0x726573756d65))} // "resume"
	s.user = "ru-" + s.run
	for i := range cfg.noiseUsers {
		s.noise = append(s.noise, "rn-"+s.run+"-"+strconv.Itoa(i))
	}
	toks, err := st.tokens([]string{s.user}, 2*time.Hour)
	if err != nil {
		return nil, nil, nil, err
	}
	s.token = toks[0]
	if s.cl, err = newProducer(st.brokers, 0); err != nil {
		return nil, nil, nil, err
	}
	defer s.cl.Close()
	s.d = newDialer(transport, st.url, cfg.readBuf)
	s.d.timeout = cfg.dialTimeout
	res := resumeResult{Source: cfg.source, Transport: transport, Missed: cfg.missed, Noise: cfg.noise, Key: cfg.key, Warmup: cfg.warmup}
	if res.NodeStart, err = scrapeMetrics(ctx, st); err != nil {
		return nil, nil, nil, fmt.Errorf("the node's /metrics: %w", err)
	}
	s.published = res.NodeStart.Published

	// The first connection, and a record that gives it a cursor.
	if err := s.hello(ctx); err != nil {
		return nil, nil, nil, err
	}

	mon := monitor(st)
	defer mon.stop()
	catchUp, connect, first, live, pubWait := new(hist), new(hist), new(hist), new(hist), new(hist)
	var runErr error
	for i := range cfg.warmup + cfg.iterations {
		if ctx.Err() != nil {
			runErr = context.Cause(ctx)
			break
		}
		t, err := s.iteration(ctx)
		if err != nil {
			runErr = fmt.Errorf("resume %d of %d: %w", i+1, cfg.warmup+cfg.iterations, err)
			res.Failure = runErr.Error()
			break
		}
		if i < cfg.warmup {
			continue
		}
		res.Iterations++
		catchUp.record(int64(t.catchUp))
		connect.record(int64(t.connect))
		first.record(int64(t.first))
		live.record(int64(t.live))
		pubWait.record(int64(t.publish))
		res.Inversions += t.inversions
	}
	load := mon.stop()
	res.NodeEnd, _ = scrapeMetrics(ctx, st)
	res.CatchUp, res.Connect, res.First, res.Live, res.PublishWait = catchUp.summary(), connect.summary(), first.summary(), live.summary(), pubWait.summary()
	res.Replays = map[string]float64{}
	for _, src := range []string{"memory", "kafka"} {
		res.Replays[src] = res.NodeEnd.Replays[src] - res.NodeStart.Replays[src]
	}
	res.Replayed = res.NodeEnd.Replayed - res.NodeStart.Replayed
	for reason, n := range res.NodeEnd.Resyncs {
		if d := n - res.NodeStart.Resyncs[reason]; d > 0 {
			if res.Resyncs == nil {
				res.Resyncs = map[string]float64{}
			}
			res.Resyncs[reason] = d
		}
	}
	if runErr == nil {
		runErr = res.checkSources(cfg)
		if runErr != nil {
			res.Failure = runErr.Error()
		}
	}

	figs := []figure{
		{"resumes measured", "", float64(res.Iterations)},
		{"missed events per resume", "", float64(cfg.missed)},
		{"resume p50 (dial to last missed event)", "ms", res.CatchUp.P50},
		{"resume p90", "ms", res.CatchUp.P90},
		{"resume p99", "ms", res.CatchUp.P99},
		{"resume max", "ms", res.CatchUp.Max},
		{"connect p50 (dial to connected)", "ms", res.Connect.P50},
		{"first missed event p50 (dial to first)", "ms", res.First.P50},
		{"live event after catch-up p50 (produced to received)", "ms", res.Live.P50},
		{"cross-partition reorderings per resume (allowed)", "", float64(res.Inversions) / float64(max(1, res.Iterations))},
		{"replays from memory", "", res.Replays["memory"]},
		{"replays from kafka", "", res.Replays["kafka"]},
		{"history bytes (node's estimate, end)", "MB", res.NodeEnd.HistoryBytes / 1e6},
		{"history events (end)", "", res.NodeEnd.HistoryEvents},
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "resume run FAILED: %v\n", runErr)
	}
	return figs, res, load, runErr
}

// checkSources compares the node's replay counters with what the run did: one replay per
// resume, every one from the intended source, every missed event replayed, no resync.
func (r *resumeResult) checkSources(cfg resumeConfig) error {
	resumes := float64(cfg.warmup + cfg.iterations)
	other := "kafka"
	if cfg.source == "kafka" {
		other = "memory"
	}
	var bad []string
	if r.Replays[cfg.source] != resumes || r.Replays[other] != 0 {
		bad = append(bad, fmt.Sprintf("the node counted %v replays from %s and %v from %s for %v resumes; want all from %s",
			r.Replays[cfg.source], cfg.source, r.Replays[other], other, resumes, cfg.source))
	}
	if r.Replayed != resumes*float64(cfg.missed) {
		bad = append(bad, fmt.Sprintf("the node replayed %v events; want %v", r.Replayed, resumes*float64(cfg.missed)))
	}
	if len(r.Resyncs) > 0 {
		bad = append(bad, fmt.Sprintf("resyncs %v", r.Resyncs))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// iterTimes is what one resume measured.
type iterTimes struct {
	catchUp, connect, first, live, publish time.Duration
	inversions                             int
}

// iteration is one resume: the client is disconnected and holds s.cursor; the missed records are
// produced and published; the client resumes, catches up and gets a live record; it disconnects.
func (s *resumeState) iteration(ctx context.Context) (iterTimes, error) {
	var t iterTimes
	want := make(map[int64]int, s.cfg.missed)
	ids := make(map[int64]string, s.cfg.missed)
	var idsMu sync.Mutex
	var perr error
	produceStart := time.Now()
	for j := range s.cfg.missed {
		seq := s.seq
		s.seq++
		want[seq] = j
		s.produce(ctx, seq, s.user, func(r *kgo.Record, err error) {
			idsMu.Lock()
			defer idsMu.Unlock()
			if err != nil {
				perr = err
				return
			}
			ids[seq] = fmt.Sprintf("%s:%d:%d", r.Topic, r.Partition, r.Offset)
		})
		for range s.cfg.noise {
			s.produce(ctx, -1, s.noise[s.rng.IntN(len(s.noise))], func(_ *kgo.Record, err error) {
				if err != nil {
					idsMu.Lock()
					perr = err
					idsMu.Unlock()
				}
			})
		}
	}
	if err := s.flush(ctx); err != nil {
		return t, err
	}
	idsMu.Lock()
	err := perr
	idsMu.Unlock()
	if err != nil {
		return t, fmt.Errorf("produce: %w", err)
	}
	if err := s.waitPublished(ctx); err != nil {
		return t, err
	}
	t.publish = time.Since(produceStart)

	liveSeq := s.seq
	s.seq++
	rc, err := s.connect(ctx, want, ids, liveSeq)
	if err != nil {
		return t, fmt.Errorf("resume dial: %w", err)
	}
	fail := func(what string) (iterTimes, error) {
		s.disconnect(rc)
		return t, fmt.Errorf("%s: %d of %d missed events received (connection: %v); problems: %s",
			what, rc.got, len(want), rc.err, strings.Join(rc.problems, "; "))
	}
	if !s.await(ctx, rc, rc.caught) {
		return fail("no catch-up within " + s.cfg.iterTimeout.String())
	}
	liveAt := time.Now()
	var liveID string
	s.produce(ctx, liveSeq, s.user, func(r *kgo.Record, err error) {
		if err == nil {
			idsMu.Lock()
			liveID = fmt.Sprintf("%s:%d:%d", r.Topic, r.Partition, r.Offset)
			idsMu.Unlock()
		}
	})
	if !s.await(ctx, rc, rc.live) {
		return fail("no live record within " + s.cfg.iterTimeout.String() + " after the catch-up")
	}
	s.disconnect(rc)
	if err := s.flush(ctx); err != nil {
		return t, err
	}
	idsMu.Lock()
	if rc.liveID != liveID {
		rc.problem("the live record came as %q; Kafka gave it %q", rc.liveID, liveID)
	}
	idsMu.Unlock()
	if len(rc.problems) > 0 {
		return t, errors.New(strings.Join(rc.problems, "; "))
	}
	t.catchUp = rc.caughtAt.Sub(rc.dialAt)
	t.connect = rc.connectedAt.Sub(rc.dialAt)
	t.first = rc.firstAt.Sub(rc.dialAt)
	t.live = rc.liveAt.Sub(liveAt)
	t.inversions = rc.inversions
	return t, nil
}

// await waits for c, the connection's end, the iteration bound or ctx; it reports whether c
// was closed.
func (s *resumeState) await(ctx context.Context, rc *resumeConn, c <-chan struct{}) bool {
	timer := time.NewTimer(s.cfg.iterTimeout)
	defer timer.Stop()
	select {
	case <-c:
		return true
	case <-rc.done:
		select { // the connection may have ended right after c
		case <-c:
			return true
		default:
			return false
		}
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// produce sends one record naming user: one of the user's (seq >= 0) or noise (seq -1).
func (s *resumeState) produce(ctx context.Context, seq int64, user string, promise func(*kgo.Record, error)) {
	s.value = conceptValue(s.value[:0], s.run, seq, int64(time.Since(s.base)), usersJSON([]string{user}))
	s.produced++
	key := "k" + strconv.FormatInt(s.produced, 10) + "-" + s.run // as distinct concepts: over the partitions
	if s.cfg.key == "user" && seq >= 0 {
		key = user
	}
	s.cl.Produce(ctx, &kgo.Record{Topic: topicConcepts, Key: []byte(key), Value: slices.Clone(s.value)}, promise)
}

func (s *resumeState) flush(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.cl.Flush(fctx); err != nil {
		return fmt.Errorf("produce: flush: %w", err)
	}
	return nil
}

// waitPublished polls the node's /metrics until it has published every record of the run.
func (s *resumeState) waitPublished(ctx context.Context) error {
	want := s.published + float64(s.produced)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := scrapeMetrics(ctx, s.st)
		if err == nil && st.Published >= want {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the node published %v of %v records within 30 s (%v)", st.Published-s.published, s.produced, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connect dials with the client's cursor and starts reading; want and ids are the missed records
// it must get, liveSeq the record expected after them.
func (s *resumeState) connect(ctx context.Context, want map[int64]int, ids map[int64]string, liveSeq int64) (*resumeConn, error) {
	rc := &resumeConn{
		done: make(chan struct{}), caught: make(chan struct{}), live: make(chan struct{}),
		run: s.run, want: want, ids: ids, liveSeq: liveSeq,
		seen: map[int64]bool{}, lastOff: map[string]int64{},
	}
	if want == nil {
		rc.hello = make(chan struct{})
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.dialTimeout)
	defer cancel()
	rc.dialAt = time.Now()
	fc, err := s.d.dial(dctx, s.token, s.cur.token())
	if err != nil {
		return nil, err
	}
	rc.connectedAt = time.Now()
	rc.fc = fc
	dups, noID := s.cur.dups, s.cur.noID
	go func() { // owns s.cur until done
		defer close(rc.done)
		var foreign int64
		rc.err = readClientEvents(fc, s.cur, &foreign, rc.onEvent)
		if foreign > 0 {
			rc.problem("%d unparsable frames", foreign)
		}
		// The client sent back every ID it got since its cursor: the server owes it no event twice.
		if n := s.cur.dups - dups; n > 0 {
			rc.problem("%d events came again under an ID the client had sent back (dropped on ID)", n)
		}
		if n := s.cur.noID - noID; n > 0 {
			rc.problem("%d events without an ID", n)
		}
	}()
	return rc, nil
}

// disconnect closes the connection as a client losing it does and waits for its reader: the
// cursor and IDs it kept are then the run's.
func (s *resumeState) disconnect(rc *resumeConn) {
	rc.fc.close()
	<-rc.done
}

// hello connects the client for the first time and produces records for its user until one
// arrives: the client then holds a cursor (the opening one) and the IDs of the hello records.
func (s *resumeState) hello(ctx context.Context) error {
	rc, err := s.connect(ctx, nil, nil, -1)
	if err != nil {
		return fmt.Errorf("first connection: %w", err)
	}
	err = s.helloOn(ctx, rc)
	s.disconnect(rc)
	if err == nil && len(rc.problems) > 0 {
		err = fmt.Errorf("first connection: %s", strings.Join(rc.problems, "; "))
	}
	return err
}

func (s *resumeState) helloOn(ctx context.Context, rc *resumeConn) error {
	for n := int64(0); n < helloSeqs; n++ {
		s.produce(ctx, n, s.user, nil)
		select {
		case <-rc.hello:
			// Every hello received before the connection closes: none is missed.
			if err := s.flush(ctx); err != nil {
				return err
			}
			if !waitUntilFine(ctx, 30*time.Second, func() bool { return rc.hellos.Load() == n+1 }) {
				return fmt.Errorf("%d of %d hello records reached the first connection", rc.hellos.Load(), n+1)
			}
			return nil
		case <-rc.done:
			return fmt.Errorf("first connection ended: %v", rc.err)
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return errors.New("no hello record reached the first connection")
}
