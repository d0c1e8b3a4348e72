package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type stormResult struct {
	Transport      string  `json:"transport"`
	TokenAlg       string  `json:"token_alg"` // how the clients' tokens are signed (-token-alg)
	Conns          int     `json:"conns"`
	Resume         bool    `json:"resume"`
	StopS          float64 `json:"stop_s"`             // SIGTERM -> old node exited
	ReadyS         float64 `json:"ready_s"`            // SIGTERM -> new node ready
	FirstBackS     float64 `json:"first_back_s"`       // SIGTERM -> first client connected to the new node
	LastBackS      float64 `json:"last_back_s"`        // SIGTERM -> the last client connected to it
	BackAfterReady float64 `json:"back_after_ready_s"` // new node ready -> all clients connected
	OutageS        float64 `json:"outage_s"`           // SIGTERM -> all clients connected
	// ConnsPerS is the new node's accept rate during the storm: clients reconnected / the time
	// from the first client connected to it to the last (first_back_s to last_back_s). Each
	// connection is a handshake: token verification, upgrade, hub insert, the resume.
	ConnsPerS float64 `json:"conns_per_s"`
	// ConnsPerSOutage is clients reconnected / last_back_s (SIGTERM to the last client back).
	ConnsPerSOutage float64 `json:"conns_per_s_outage"`
	// NodeCPUS is the new node's CPU time (user + system, s) from its start to the last client
	// back: its start-up plus every reconnection's handshake (10 ms resolution).
	NodeCPUS float64 `json:"node_cpu_s"`
	// NodeCPUStormS is the new node's CPU time from the first client back to the last
	// (first_back_s to last_back_s): the reconnections' handshakes, tokens verified.
	NodeCPUStormS float64           `json:"node_cpu_storm_s"`
	Reconnected   int               `json:"reconnected"`
	Verified      int               `json:"verified"` // clients that got a record produced after the storm
	Attempts      int64             `json:"attempts"` // dials after the restart began
	ErrorsDown    map[string]int    `json:"errors_while_down"`
	ErrorsUp      map[string]int    `json:"errors_after_ready"`
	ErrorSamples  map[string]string `json:"error_samples"` // the first error of each kind
	Resyncs       int64             `json:"resyncs"`
	ResyncSample  string            `json:"resync_sample,omitempty"` // the data of one resync frame
	Server        nodeStats         `json:"server"`
}

func runStorm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	conns := fs.Int("conns", 10000, "N: clients, one user each")
	retry := fs.Duration("retry", 100*time.Millisecond, "delay between a client's reconnection attempts (±50% jitter)")
	jitter := fs.Duration("jitter", 0, "spread each client's first reconnection attempt uniformly over this (0: all at once)")
	resume := fs.Bool("resume", true, "reconnect with a resume token (the last cursor frame's cursor and the IDs of the events after it), as clients do")
	limit := fs.Duration("reconnect-timeout", 2*time.Minute, "give up waiting for the clients after this")
	readBuf := fs.Int("read-buffer", 1024, "client read buffer per connection, bytes")
	parallel := fs.Int("dial-parallel", 256, "connections opened concurrently at the start")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if c.target != "" {
		return errors.New("storm restarts the node, so it needs an owned stack (no -target)")
	}
	if *conns > fileLimit()-100 {
		return fmt.Errorf("-conns %d needs as many file descriptors; RLIMIT_NOFILE is %d (hard limit; raising it needs CAP_SYS_RESOURCE)", *conns, fileLimit())
	}
	perRun := *limit + 3*time.Minute
	return repeat(ctx, "storm", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		sc := stormConfig{conns: *conns, retry: *retry, jitter: *jitter, resume: *resume, limit: *limit, readBuf: *readBuf, parallel: *parallel}
		return stormRun(ctx, st, &c, sc, run, stderr)
	})
}

type stormConfig struct {
	conns         int
	retry, jitter time.Duration
	resume        bool
	limit         time.Duration
	readBuf       int
	parallel      int
}

// stormClient reconnects until stopped, keeping its cursor and the IDs after it (see
// clientCursor).
type stormClient struct {
	token       string
	cur         *clientCursor // owned by the client's goroutine
	probe       atomic.Int64  // last probe phase received
	resyncs     atomic.Int64
	resyncFrame atomic.Pointer[string] // the data of the first resync frame, cut to 400 bytes
}

func (sc *stormClient) onEvent(run string) func(name string, data []byte, id string) {
	marker := []byte(`"bench":"` + run + ".p")
	return func(name string, data []byte, id string) {
		if i := bytes.Index(data, marker); i >= 0 {
			n, _, _ := parseInt(data[i+len(marker):])
			sc.probe.Store(n)
			return
		}
		if name == "resync" {
			if sc.resyncs.Add(1) == 1 {
				f := string(data[:min(len(data), 400)])
				sc.resyncFrame.CompareAndSwap(nil, &f)
			}
		}
	}
}

func stormRun(ctx context.Context, st *stack, c *common, cfg stormConfig, run int, stderr io.Writer) ([]figure, any, *loadReport, error) {
	runID := randomHex(3)
	users := make([]string, cfg.conns)
	for i := range users {
		users[i] = "s" + strconv.Itoa(i)
	}
	toks, err := st.tokens(users, 2*time.Hour)
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := newProducer(st.brokers, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	defer cl.Close()

	d := newDialer(c.transport, st.url, cfg.readBuf)
	var (
		connected  atomic.Int64
		attempts   atomic.Int64
		restarting atomic.Bool
		oldGone    atomic.Bool  // the old node has exited: a connection now is to the new node
		firstBack  atomic.Int64 // time.Now().UnixNano() of the first connection to the new node
		lastBack   atomic.Int64 // the same when every client was first connected again
		newPID     atomic.Int64 // the new node's process ID, once started
		cpuFirst   atomic.Int64 // its CPU time at firstBack, clock ticks + 1 (0: not read)
		cpuLast    atomic.Int64 // the same at lastBack
		ready      atomic.Bool
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		emu        sync.Mutex
		errsDown   = map[string]int{}
		errsUp     = map[string]int{}
		samples    = map[string]string{}
		liveMu     sync.Mutex
		live       = map[*stormClient]frameConn{}
		closedAll  bool // set by shutdown: a connection opened after it is closed at once
	)
	clients := make([]*stormClient, cfg.conns)
	sem := make(chan struct{}, cfg.parallel)
	for i := range clients {
		sc := &stormClient{token: toks[i], cur: newClientCursor()}
		clients[i] = sc
		wg.Go(func() {
			onEvent := sc.onEvent(runID)
			var foreign int64 // unparsable frames: not counted, the probes say what arrived
			first := true
			for {
				if !first {
					select {
					case <-stop:
						return
					default:
					}
				}
				cursor := ""
				if cfg.resume {
					cursor = sc.cur.token()
				}
				if first {
					sem <- struct{}{}
				}
				if restarting.Load() {
					attempts.Add(1)
				}
				fc, err := d.dial(ctx, sc.token, cursor)
				if first {
					<-sem
				}
				if err != nil {
					if restarting.Load() {
						kind := dialErrKind(err)
						emu.Lock()
						if ready.Load() {
							errsUp[kind]++
						} else {
							errsDown[kind]++
						}
						if _, ok := samples[kind]; !ok {
							samples[kind] = err.Error()
						}
						emu.Unlock()
					}
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					case <-time.After(jittered(cfg.retry)):
					}
					continue
				}
				first = false
				if oldGone.Load() && firstBack.CompareAndSwap(0, time.Now().UnixNano()) {
					cpuFirst.Store(nodeCPUTicks(newPID.Load()))
				}
				liveMu.Lock()
				if closedAll {
					liveMu.Unlock()
					fc.close()
					return
				}
				live[sc] = fc
				liveMu.Unlock()
				if connected.Add(1) == int64(cfg.conns) && oldGone.Load() && lastBack.CompareAndSwap(0, time.Now().UnixNano()) {
					cpuLast.Store(nodeCPUTicks(newPID.Load()))
				}
				readClientEvents(fc, sc.cur, &foreign, onEvent)
				fc.close() // release the socket now, not when a GC finalizes it
				connected.Add(-1)
				liveMu.Lock()
				delete(live, sc)
				liveMu.Unlock()
				if cfg.jitter > 0 {
					select {
					case <-stop:
						return
					case <-time.After(time.Duration(rand.Int64N(int64(cfg.jitter)))):
					}
				}
			}
		})
	}
	shutdown := func() {
		close(stop)
		liveMu.Lock()
		closedAll = true
		for _, fc := range live {
			fc.close()
		}
		liveMu.Unlock()
		wg.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			shutdown()
		}
	}()

	all := func() bool { return connected.Load() == int64(cfg.conns) }
	if !waitUntil(ctx, cfg.limit, all) {
		return nil, nil, nil, fmt.Errorf("only %d of %d clients connected", connected.Load(), cfg.conns)
	}
	if n := probeAll(ctx, cl, runID, 1, users, clients, 60*time.Second); n != cfg.conns {
		return nil, nil, nil, fmt.Errorf("only %d of %d clients received the first probe", n, cfg.conns)
	}

	// The storm.
	mon := monitor(st)
	t0 := time.Now()
	restarting.Store(true)
	mon.exited("server", st.stopNode(30*time.Second))
	stopped := time.Since(t0)
	oldGone.Store(true)
	if err := st.startNodeThen(ctx, func(pid int) { newPID.Store(int64(pid)) }); err != nil {
		return nil, nil, mon.stop(), err
	}
	mon.started("server", st.nodePID)
	readyAt := time.Since(t0)
	ready.Store(true)
	back := waitUntilFine(ctx, cfg.limit, all)
	backAt := time.Since(t0)
	nodeCPU, _ := procCPU(st.nodePID)
	load := mon.stop()

	res := stormResult{
		Transport:   c.transport,
		TokenAlg:    st.signer.alg,
		Conns:       cfg.conns,
		Resume:      cfg.resume,
		StopS:       stopped.Seconds(),
		ReadyS:      readyAt.Seconds(),
		Reconnected: int(connected.Load()),
		Attempts:    attempts.Load(),
	}
	if back {
		res.BackAfterReady = (backAt - readyAt).Seconds()
		res.OutageS = backAt.Seconds()
		res.NodeCPUS = float64(nodeCPU) / clockTicks
		if fb, lb := firstBack.Load(), lastBack.Load(); fb != 0 && lb > fb {
			res.FirstBackS = time.Unix(0, fb).Sub(t0).Seconds()
			res.LastBackS = time.Unix(0, lb).Sub(t0).Seconds()
			res.ConnsPerS = float64(res.Reconnected) / (res.LastBackS - res.FirstBackS)
			res.ConnsPerSOutage = float64(res.Reconnected) / res.LastBackS
		}
		if f, l := cpuFirst.Load(), cpuLast.Load(); f > 0 && l >= f {
			res.NodeCPUStormS = float64(l-f) / clockTicks
		}
	}
	res.Verified = probeAll(ctx, cl, runID, 2, users, clients, 30*time.Second)
	res.Server, _ = scrapeMetrics(ctx, st)
	shutdown()
	emu.Lock()
	res.ErrorsDown, res.ErrorsUp, res.ErrorSamples = errsDown, errsUp, samples
	emu.Unlock()
	for _, sc := range clients {
		res.Resyncs += sc.resyncs.Load()
		if f := sc.resyncFrame.Load(); f != nil && res.ResyncSample == "" {
			res.ResyncSample = *f
		}
	}
	errUp := 0
	for _, n := range res.ErrorsUp {
		errUp += n
	}
	figs := []figure{
		{"old node stopped", "s", res.StopS},
		{"new node ready", "s", res.ReadyS},
		{"first client back", "s", res.FirstBackS},
		{"last client back", "s", res.LastBackS},
		{"all back after ready", "s", res.BackAfterReady},
		{"outage (SIGTERM to all back)", "s", res.OutageS},
		{"connections/s (first to last back)", "1/s", res.ConnsPerS},
		{"connections/s (SIGTERM to last back)", "1/s", res.ConnsPerSOutage},
		{"new node CPU (start to all back)", "s", res.NodeCPUS},
		{"new node CPU (first to last back)", "s", res.NodeCPUStormS},
		{"reconnected", "clients", float64(res.Reconnected)},
		{"verified delivery after", "clients", float64(res.Verified)},
		{"dial attempts", "", float64(res.Attempts)},
		{"errors after ready", "", float64(errUp)},
		{"resyncs", "", float64(res.Resyncs)},
	}
	var runErr error
	if !back {
		runErr = fmt.Errorf("only %d of %d clients were back after %v", res.Reconnected, cfg.conns, cfg.limit)
	}
	return figs, res, load, runErr
}

// waitUntilFine polls cond every 5 ms (the storm's end is timed).
func waitUntilFine(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// probeUsers is how many users one probe record names: few, so that a probe frame stays small
// (a record naming 10,000 users is a 120 KB frame, and a connection held paused by a resume
// replay while probes repeat would overflow its send queue and be closed as slow).
const probeUsers = 100

// probeAll produces probe records of phase naming every user (probeUsers per record) until every
// client has received phase, or limit passes; it returns how many did.
func probeAll(ctx context.Context, cl *kgo.Client, run string, phase int64, users []string, clients []*stormClient, limit time.Duration) int {
	count := func() int {
		n := 0
		for _, sc := range clients {
			if sc.probe.Load() >= phase {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for from := 0; from < len(users); from += probeUsers {
			v := probeValue(run, int(phase), usersJSON(users[from:min(len(users), from+probeUsers)]))
			cl.Produce(ctx, &kgo.Record{Topic: topicConcepts, Value: v}, nil)
		}
		if waitUntil(ctx, time.Second, func() bool { return count() == len(clients) }) {
			break
		}
	}
	return count()
}

func jittered(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// dialErrKind classifies a failed connection attempt.
func dialErrKind(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "refused"
	case strings.Contains(s, "handshake: "):
		return "http " + s[strings.Index(s, "handshake: ")+len("handshake: "):]
	case strings.Contains(s, "timeout"), strings.Contains(s, "deadline"):
		return "timeout"
	case strings.Contains(s, "reset"):
		return "reset"
	case strings.Contains(s, "EOF"):
		return "eof"
	}
	return "other"
}

// nodeCPUTicks is the CPU time of process pid in clock ticks plus 1, or 0 when unknown (pid 0,
// or the process gone).
func nodeCPUTicks(pid int64) int64 {
	if pid <= 0 {
		return 0
	}
	t, err := procCPU(int(pid))
	if err != nil {
		return 0
	}
	return int64(t) + 1
}
