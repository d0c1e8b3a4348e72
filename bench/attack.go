package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The attack modes (flood, oversize, poison, replayburst) measure what an unauthenticated or
// hostile client costs the node, and what an authenticated user notices meanwhile: a victim, one
// /v1/ws client with a real token, receives a steady stream of records produced straight to
// Kafka, and the latency of each (produced to received) is kept by the phase it was produced in.

// Phases of an attack run: the victim's records are counted by the phase they were produced in.
const (
	phaseWarmup   = iota // until the first record arrives: not counted
	phaseBaseline        // before the attack
	phaseAttack          // during it
	phaseAfter           // after it
	phases
)

var phaseNames = [phases]string{"warmup", "baseline", "attack", "after"}

// victim is an authenticated user's /v1/ws connection and the records produced for it at a
// steady rate.
type victim struct {
	run   string
	user  string
	base  time.Time
	fc    frameConn
	cl    *kgo.Client
	phase atomic.Int32
	rate  float64

	mu       sync.Mutex
	phaseOf  []int8 // by seq: the phase the record was produced in
	received []bool // by seq
	hists    [phases]*hist
	produced [phases]int64
	got      [phases]int64
	dup      int64
	failed   atomic.Int64 // produce errors
	first    chan struct{}
	once     sync.Once

	readDone chan struct{}
	readErr  error
	closing  atomic.Bool
	stopProd context.CancelFunc
	prodDone chan struct{}
}

// startVictim connects an authenticated /v1/ws client (source address 127.0.0.1) and produces
// records naming it at rate per second until stop; it returns once the first record arrived
// (the node's consumer is positioned), within a minute.
func startVictim(ctx context.Context, st *stack, rate float64) (*victim, error) {
	v := &victim{run: randomHex(3), base: time.Now(), rate: rate, first: make(chan struct{}), readDone: make(chan struct{}), prodDone: make(chan struct{})}
	v.user = "victim-" + v.run
	for i := range v.hists {
		v.hists[i] = new(hist)
	}
	toks, err := st.tokens([]string{v.user}, 2*time.Hour)
	if err != nil {
		return nil, err
	}
	if v.cl, err = newProducer(st.brokers, 0); err != nil {
		return nil, err
	}
	d := newDialer("ws", st.url, 64<<10)
	if v.fc, err = d.dial(ctx, toks[0], ""); err != nil {
		v.cl.Close()
		return nil, fmt.Errorf("the victim's /v1/ws: %w", err)
	}
	go func() {
		defer close(v.readDone)
		if err := v.fc.read(v.onFrame); !v.closing.Load() {
			v.readErr = err
		}
	}()
	loop, cancel := context.WithCancel(ctx)
	v.stopProd = cancel
	go v.produceLoop(loop, ctx)
	select {
	case <-v.first:
		v.phase.Store(phaseBaseline)
		return v, nil
	case <-v.readDone:
		err = fmt.Errorf("the victim's connection ended before its first record: %v", v.readErr)
	case <-time.After(time.Minute):
		err = fmt.Errorf("the victim received no record within a minute")
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	v.stop()
	return nil, err
}

func (v *victim) now() int64 { return int64(time.Since(v.base)) }

// produceLoop produces the victim's records until loop ends. Each record is counted as produced
// before it is handed to the client, so it is produced under ctx (the run's), not loop: drain
// ends loop and then flushes, and a record whose context ends before it is sent fails instead of
// reaching Kafka, which would leave it counted but never sent.
func (v *victim) produceLoop(loop, ctx context.Context) {
	defer close(v.prodDone)
	users := usersJSON([]string{v.user})
	interval := time.Duration(float64(time.Second) / v.rate)
	start := time.Now()
	for seq := int64(0); ; seq++ {
		select {
		case <-loop.Done():
			return
		case <-time.After(time.Until(start.Add(time.Duration(seq) * interval))):
		}
		ph := int8(v.phase.Load())
		v.mu.Lock()
		v.phaseOf = append(v.phaseOf, ph)
		v.received = append(v.received, false)
		v.produced[ph]++
		v.mu.Unlock()
		val := conceptValue(nil, v.run, seq, v.now(), users)
		v.cl.Produce(ctx, &kgo.Record{Topic: topicConcepts, Key: []byte("v" + strconv.FormatInt(seq, 10)), Value: val}, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				v.failed.Add(1)
			}
		})
	}
}

func (v *victim) onFrame(b []byte) {
	now := v.now()
	i := bytes.Index(b, benchKey)
	if i < 0 {
		return
	}
	rest, ok := bytes.CutPrefix(b[i+len(benchKey):], []byte(v.run+"."))
	if !ok {
		return
	}
	seq, rest, ok1 := parseInt(rest)
	if !ok1 || len(rest) == 0 || rest[0] != '.' {
		return
	}
	sent, _, ok2 := parseInt(rest[1:])
	if !ok2 {
		return
	}
	v.once.Do(func() { close(v.first) })
	v.mu.Lock()
	defer v.mu.Unlock()
	if seq >= int64(len(v.received)) {
		return
	}
	if v.received[seq] {
		v.dup++
		return
	}
	v.received[seq] = true
	ph := v.phaseOf[seq]
	v.got[ph]++
	v.hists[ph].record(now - sent)
}

// drain stops producing and waits up to limit for the records produced so far.
func (v *victim) drain(limit time.Duration) {
	v.stopProd()
	<-v.prodDone
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v.cl.Flush(fctx)
	cancel()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if v.missing() == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// missing counts the records produced after the warm-up that have not arrived.
func (v *victim) missing() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var n int64
	for ph := phaseBaseline; ph < phases; ph++ {
		n += v.produced[ph] - v.got[ph]
	}
	return n
}

func (v *victim) stop() {
	v.stopProd()
	<-v.prodDone
	v.closing.Store(true)
	v.fc.close()
	<-v.readDone
	v.cl.Close()
}

// victimResult is what the victim saw, by phase.
type victimResult struct {
	Rate     float64                   `json:"rate"`
	Produced map[string]int64          `json:"produced"`
	Received map[string]int64          `json:"received"`
	Latency  map[string]latencySummary `json:"latency"`
	Missing  int64                     `json:"missing"`
	Dup      int64                     `json:"duplicates"`
	Errors   int64                     `json:"produce_errors"`
	EndedBy  string                    `json:"ended_by,omitempty"` // why its connection ended early
}

func (v *victim) result() victimResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := victimResult{Rate: v.rate, Produced: map[string]int64{}, Received: map[string]int64{}, Latency: map[string]latencySummary{},
		Dup: v.dup, Errors: v.failed.Load()}
	for ph := phaseBaseline; ph < phases; ph++ {
		r.Produced[phaseNames[ph]] = v.produced[ph]
		r.Received[phaseNames[ph]] = v.got[ph]
		r.Latency[phaseNames[ph]] = v.hists[ph].summary()
		r.Missing += v.produced[ph] - v.got[ph]
	}
	select {
	case <-v.readDone:
		if v.readErr != nil {
			r.EndedBy = closeReason(v.readErr)
		}
	default:
	}
	return r
}

// scrapeSeries returns the samples of /metrics whose name starts with one of prefixes, keyed by
// the sample's name with its labels as the exposition format prints them.
func scrapeSeries(ctx context.Context, base string, prefixes ...string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
			continue
		}
		if name, v, ok := splitSample(line); ok {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// sumSeries sums the samples of m whose name (before its labels) is name.
func sumSeries(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if base, _, _ := strings.Cut(k, "{"); base == name {
			s += v
		}
	}
	return s
}

// openSessions is what the node holds for clients that have not authenticated: its open
// Socket.IO sessions, and its admission controller's pending count (when it has one).
func openSessions(ctx context.Context, st *stack) (sessions, pending float64, err error) {
	m, err := scrapeSeries(ctx, st.url, "realtime_socketio_sessions", "realtime_admission_pending")
	return sumSeries(m, "realtime_socketio_sessions"), sumSeries(m, "realtime_admission_pending"), err
}

// waitSessionsGone polls the node until it holds no Socket.IO session and nothing pending, or
// limit passes; it returns how long that took (-1: not within limit) and the last values.
func waitSessionsGone(ctx context.Context, st *stack, limit time.Duration) (took float64, sessions, pending float64) {
	start := time.Now()
	for {
		s, p, err := openSessions(ctx, st)
		if err == nil {
			sessions, pending = s, p
			if s == 0 && p == 0 {
				return time.Since(start).Seconds(), s, p
			}
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			return -1, sessions, pending
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rssWatch samples the node's RSS every 100 ms, keeping the peak; past limit (0: none) it
// calls over once.
type rssWatch struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(pid int, limit int64, over func()) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		fired := false
		for {
			if rss, err := procRSS(pid); err == nil {
				if rss > w.peak.Load() {
					w.peak.Store(rss)
				}
				if limit > 0 && rss > limit && !fired {
					fired = true
					over()
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *rssWatch) finish() int64 {
	close(w.stop)
	<-w.done
	return w.peak.Load()
}

// attackIP is the i-th of n attacker source addresses, 127.1.0.1 onwards (the victim and the
// other modes use 127.0.x.y). Linux routes all of 127.0.0.0/8 to the loopback interface, so
// binding a dialer to any of them needs no setup; n = 1 is the single address 127.1.0.1.
func attackIP(i, n int) net.IP {
	k := i % max(n, 1)
	return net.IPv4(127, byte(1+k/(254*250)%120), byte(k/254%250), byte(1+k%254))
}

// mib is bytes in MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// nodeRSS is the node's RSS now, 0 when unknown.
func nodeRSS(st *stack) int64 {
	if st.nodePID == 0 {
		return 0
	}
	rss, _ := procRSS(st.nodePID)
	return rss
}

// countLines counts the lines of the node's log that contain s (owned stacks only).
func countLines(st *stack, s string) int {
	if !st.owned || st.node == nil {
		return -1
	}
	f, err := os.Open(st.node.logPath)
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// statusKey names an HTTP answer for the counts of the reports: 200, 429, 503, other-<code>, or
// the kind of error.
func statusKey(code int, err error) string {
	switch {
	case err != nil:
		return "error-" + errKind(err)
	case code == 200, code == 101, code == 413, code == 429, code == 503, code == 401:
		return strconv.Itoa(code)
	}
	return "other-" + strconv.Itoa(code)
}

// counts is a concurrency-safe map of counters.
type counts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counts) add(k string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[k]++
	c.mu.Unlock()
}

func (c *counts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
