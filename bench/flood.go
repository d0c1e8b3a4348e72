package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The flood run: N unauthenticated Engine.IO handshakes (GET /socket.io/?EIO=4&transport=polling,
// no token, no CONNECT afterwards) in T, paced evenly, from -addresses source addresses of
// 127.0.0.0/8, over keep-alive connections (each -per-conn handshakes, then a new connection
// from the next address), while the victim receives its stream. Measured: the node's RSS (peak
// and at the end), the victim's delivery latency during the flood, the answers by status, the
// realtime_admission_* series, and how long the node takes to drop the sessions afterwards.

type floodConfig struct {
	handshakes int
	duration   time.Duration
	addresses  int
	workers    int
	perConn    int
	rate       float64 // the victim's records per second
	baseline   time.Duration
	settle     time.Duration
	maxRSS     int64
}

func defaultFlood() floodConfig {
	return floodConfig{handshakes: 1_000_000, duration: 60 * time.Second, addresses: 4096, workers: 256, perConn: 0,
		rate: 100, baseline: 3 * time.Second, settle: 60 * time.Second, maxRSS: 2 << 30}
}

type floodResult struct {
	Handshakes   int64              `json:"handshakes"`
	Seconds      float64            `json:"seconds"`
	Rate         float64            `json:"handshakes_per_s"`
	Addresses    int                `json:"addresses"`
	PerConn      int                `json:"per_conn"`
	Status       map[string]int64   `json:"status"`
	Latency      latencySummary     `json:"handshake_latency"`
	Aborted      string             `json:"aborted,omitempty"`
	RSSStart     float64            `json:"rss_start_mib"`
	RSSPeak      float64            `json:"rss_peak_mib"`
	RSSEnd       float64            `json:"rss_end_mib"`
	RSSSettled   float64            `json:"rss_settled_mib"`
	Admission    map[string]float64 `json:"admission"` // realtime_admission_* at the end of the flood
	SessionsEnd  float64            `json:"sessions_at_end"`
	SettleSecs   float64            `json:"sessions_gone_after_s"` // -1: not within -settle
	SessionsLeft float64            `json:"sessions_left"`
	PendingLeft  float64            `json:"pending_left"`
	Victim       victimResult       `json:"victim"`
}

func runFlood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	cfg := defaultFlood()
	fs.IntVar(&cfg.handshakes, "handshakes", cfg.handshakes, "unauthenticated Engine.IO handshakes to send")
	fs.DurationVar(&cfg.duration, "duration", cfg.duration, "time over which they are spread evenly")
	fs.IntVar(&cfg.addresses, "addresses", cfg.addresses, "source addresses 127.1.x.y the flood comes from; 1 = one single address")
	fs.IntVar(&cfg.workers, "workers", cfg.workers, "concurrent attacker connections")
	fs.IntVar(&cfg.perConn, "per-conn", cfg.perConn, "handshakes per keep-alive connection before the next one (from the next address); 0: 10 from many addresses (each stays under the per-address cap, so the node-wide caps answer), 1,000 from one (its ephemeral ports last)")
	fs.Float64Var(&cfg.rate, "rate", cfg.rate, "records per second to the authenticated victim")
	fs.DurationVar(&cfg.baseline, "baseline", cfg.baseline, "the victim's stream before the flood (its latency is the baseline)")
	fs.DurationVar(&cfg.settle, "settle", cfg.settle, "after the flood, wait up to this long for the node to drop the sessions")
	mb := fs.Int64("max-rss-mb", cfg.maxRSS>>20, "stop the flood when the node's RSS passes this (MiB); 0: never")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg.maxRSS = *mb << 20
	if err := c.check(); err != nil {
		return err
	}
	if cfg.handshakes < 1 || cfg.duration <= 0 || cfg.addresses < 1 || cfg.workers < 1 || cfg.perConn < 0 || cfg.rate <= 0 {
		return errors.New("want positive -handshakes, -duration, -addresses, -workers, -rate and -per-conn >= 0")
	}
	if cfg.perConn == 0 {
		cfg.perConn = 10
		if cfg.addresses == 1 {
			cfg.perConn = 1000
		}
	}
	if c.target != "" && c.brokers == "" {
		return errors.New("-target needs -brokers: the victim's records are produced straight to Kafka")
	}
	perRun := cfg.baseline + cfg.duration + cfg.settle + 2*time.Minute
	return repeat(ctx, "flood", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return floodRun(ctx, st, cfg, stderr)
	})
}

func floodRun(ctx context.Context, st *stack, cfg floodConfig, stderr io.Writer) ([]figure, any, *loadReport, error) {
	res := floodResult{Addresses: cfg.addresses, PerConn: cfg.perConn, RSSStart: mib(nodeRSS(st))}
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

	mon := monitor(st)
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := watchRSS(st.nodePID, cfg.maxRSS, func() {
		cancel(fmt.Errorf("the node's RSS passed -max-rss-mb %d", cfg.maxRSS>>20))
	})
	v.phase.Store(phaseAttack)
	start := time.Now()
	out, err := floodInChild(fctx, st, cfg, mon)
	res.Seconds = time.Since(start).Seconds()
	if err != nil && fctx.Err() == nil {
		return nil, nil, nil, err
	}
	v.phase.Store(phaseAfter)
	if fctx.Err() != nil && ctx.Err() == nil {
		res.Aborted = context.Cause(fctx).Error()
		fmt.Fprintf(stderr, "flood stopped early: %s\n", res.Aborted)
	}
	res.RSSEnd = mib(nodeRSS(st))
	adm, err := scrapeSeries(ctx, st.url, "realtime_admission_")
	if err != nil {
		fmt.Fprintf(stderr, "metrics: %v\n", err)
	}
	res.Admission = adm
	res.SessionsEnd, _, _ = openSessions(ctx, st)
	res.SettleSecs, res.SessionsLeft, res.PendingLeft = waitSessionsGone(ctx, st, cfg.settle)
	v.drain(10 * time.Second)
	res.RSSPeak = mib(watch.finish())
	load := mon.stop()
	forceGC(ctx, st)
	res.RSSSettled = mib(nodeRSS(st))
	res.Victim = v.result()
	res.Status, res.Latency = out.Status, out.Latency
	for _, n := range res.Status {
		res.Handshakes += n
	}
	res.Rate = float64(res.Handshakes) / res.Seconds

	during := res.Victim.Latency[phaseNames[phaseAttack]]
	figs := []figure{
		{"handshakes sent", "", float64(res.Handshakes)},
		{"handshakes/s", "1/s", res.Rate},
		{"answered 200", "", float64(res.Status["200"])},
		{"answered 429", "", float64(res.Status["429"])},
		{"answered 503", "", float64(res.Status["503"])},
		{"other answers and errors", "", float64(res.Handshakes - res.Status["200"] - res.Status["429"] - res.Status["503"])},
		{"handshake p99", "ms", res.Latency.P99},
		{"server RSS peak", "MiB", res.RSSPeak},
		{"server RSS at the flood's end", "MiB", res.RSSEnd},
		{"server RSS after settling (GC)", "MiB", res.RSSSettled},
		{"victim p50 during the flood", "ms", during.P50},
		{"victim p99 during the flood", "ms", during.P99},
		{"victim p99 before the flood", "ms", res.Victim.Latency[phaseNames[phaseBaseline]].P99},
		{"victim records missing", "", float64(res.Victim.Missing)},
		{"sessions at the flood's end", "", res.SessionsEnd},
		{"sessions gone after", "s", res.SettleSecs},
		{"refused node-connections", "", adm[`realtime_admission_refused_total{reason="node-connections"}`]},
		{"refused node-pending", "", adm[`realtime_admission_refused_total{reason="node-pending"}`]},
		{"refused address-pending", "", adm[`realtime_admission_refused_total{reason="address-pending"}`]},
		{"admission pending at the end", "", adm["realtime_admission_pending"]},
	}
	var runErr error
	if res.Aborted != "" {
		runErr = errors.New(res.Aborted)
	}
	if res.Victim.EndedBy != "" {
		runErr = errors.Join(runErr, fmt.Errorf("the victim's connection ended during the run: %s", res.Victim.EndedBy))
	}
	return figs, res, load, runErr
}

// floodWorkerMode is the hidden mode the flood's attacking side runs in: a child process of the
// tool, so that the victim's latency is measured in a process whose scheduler is not also running
// hundreds of attacking connections (a victim in the same process measured the tool's own run-queue
// delay: tens of milliseconds at 16,000 handshakes/s on two cores).
const floodWorkerMode = "flood-worker"

// floodOutcome is what the worker reports on its standard output, as one JSON object.
type floodOutcome struct {
	Status  map[string]int64 `json:"status"`
	Latency latencySummary   `json:"latency"`
}

// floodInChild runs the handshakes in a child process of this tool (the same executable, in
// floodWorkerMode), its CPU time counted by mon as the "attacker" role, and returns what it
// counted; ctx's end kills the child.
func floodInChild(ctx context.Context, st *stack, cfg floodConfig, mon *loadMonitor) (floodOutcome, error) {
	var out floodOutcome
	exe, err := os.Executable()
	if err != nil {
		return out, err
	}
	cmd := exec.CommandContext(ctx, exe, floodWorkerMode,
		"-host", strings.TrimPrefix(st.url, "http://"),
		"-handshakes", strconv.Itoa(cfg.handshakes), "-duration", cfg.duration.String(),
		"-addresses", strconv.Itoa(cfg.addresses), "-workers", strconv.Itoa(cfg.workers),
		"-per-conn", strconv.Itoa(cfg.perConn))
	var report bytes.Buffer
	cmd.Stdout, cmd.Stderr = &report, os.Stderr
	if err := cmd.Start(); err != nil {
		return out, fmt.Errorf("flood worker: %w", err)
	}
	mon.started("attacker", cmd.Process.Pid)
	err = cmd.Wait()
	if ps := cmd.ProcessState; ps != nil {
		mon.exited("attacker", uint64((ps.UserTime()+ps.SystemTime())*clockTicks/time.Second))
	}
	if err != nil {
		return out, fmt.Errorf("flood worker: %w", err)
	}
	if err := json.Unmarshal(report.Bytes(), &out); err != nil {
		return out, fmt.Errorf("flood worker's report: %w", err)
	}
	return out, nil
}

// runFloodWorker is floodWorkerMode: it sends the handshakes and prints a floodOutcome.
func runFloodWorker(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(floodWorkerMode, flag.ContinueOnError)
	cfg := defaultFlood()
	host := fs.String("host", "", "the node's host:port")
	fs.IntVar(&cfg.handshakes, "handshakes", cfg.handshakes, "")
	fs.DurationVar(&cfg.duration, "duration", cfg.duration, "")
	fs.IntVar(&cfg.addresses, "addresses", cfg.addresses, "")
	fs.IntVar(&cfg.workers, "workers", cfg.workers, "")
	fs.IntVar(&cfg.perConn, "per-conn", 10, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raiseFileLimit()
	f := &flooder{cfg: cfg, host: *host}
	f.run(ctx)
	return json.NewEncoder(stdout).Encode(floodOutcome{Status: f.status.snapshot(), Latency: f.latency()})
}

// flooder sends the handshakes: worker w takes the next handshake number, waits for its time
// (start + i*T/N) and sends it on its keep-alive connection.
type flooder struct {
	cfg    floodConfig
	host   string
	next   atomic.Int64
	conns  atomic.Int64 // connections dialed, for the source addresses
	status counts
	mu     sync.Mutex
	hists  []*hist
}

func (f *flooder) run(ctx context.Context) {
	start := time.Now()
	interval := float64(f.cfg.duration) / float64(f.cfg.handshakes)
	var wg sync.WaitGroup
	for range f.cfg.workers {
		h := new(hist)
		f.mu.Lock()
		f.hists = append(f.hists, h)
		f.mu.Unlock()
		wg.Go(func() { f.worker(ctx, start, interval, h) })
	}
	wg.Wait()
}

func (f *flooder) latency() latencySummary {
	all := new(hist)
	for _, h := range f.hists {
		all.merge(h)
	}
	return all.summary()
}

var floodRequest = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\nUser-Agent: realtime-bench-flood\r\n\r\n"

func (f *flooder) worker(ctx context.Context, start time.Time, interval float64, h *hist) {
	req := []byte(fmt.Sprintf(floodRequest, f.host))
	var nc net.Conn
	var br *bufio.Reader
	used := 0
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	for {
		i := f.next.Add(1) - 1
		if i >= int64(f.cfg.handshakes) {
			return
		}
		if d := time.Until(start.Add(time.Duration(float64(i) * interval))); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		} else if ctx.Err() != nil {
			return
		}
		if nc == nil || used >= f.cfg.perConn {
			if nc != nil {
				nc.Close()
			}
			ip := attackIP(int(f.conns.Add(1)-1), f.cfg.addresses)
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
			var err error
			if nc, err = d.DialContext(ctx, "tcp", f.host); err != nil {
				nc = nil
				if ctx.Err() == nil {
					f.status.add(statusKey(0, err))
				}
				continue
			}
			br, used = bufio.NewReaderSize(nc, 4096), 0
		}
		used++
		t0 := time.Now()
		nc.SetDeadline(t0.Add(10 * time.Second))
		code, closeConn, err := roundTrip(nc, br, req)
		if err != nil && ctx.Err() != nil {
			return
		}
		h.record(int64(time.Since(t0)))
		f.status.add(statusKey(code, err))
		if err != nil || closeConn {
			nc.Close()
			nc = nil
		}
	}
}

// roundTrip writes a prepared HTTP/1.1 request and reads its response, discarding the body.
func roundTrip(nc net.Conn, br *bufio.Reader, req []byte) (status int, closeConn bool, err error) {
	if _, err := nc.Write(req); err != nil {
		return 0, true, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, true, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Close, err
}
