package main

import (
	"cmp"
	"context"
	"encoding/base64"
	be "encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The chaos run ("Nothing missed"): one broker and two nodes (distinct KAFKA_NODE_ID, so two
// consumer groups), K users with clients spread over both nodes and over the transports
// (WebSocket resuming with ?cursor=, SSE with Last-Event-ID, Socket.IO with connection state
// recovery: pid and offset in CONNECT), records produced with franz-go at a rate, each naming
// random users. While records flow, every client drops its connection at random moments (a TCP
// close, no close frame) and resumes with its resume token on a random node that is up; one node
// is killed with SIGKILL mid-run and restarted with the same node ID (its clients resume on the
// other node, or on it once it is ready again). After producing stops, the clients reconnect
// for good, and the run waits until every client holds everything or the drain bound passes.
//
// Every client keeps what docs/client-protocol.md ("Cursor") asks of clients (see clientCursor):
// the cursor of its last cursor frame and the IDs of the events it got after it, which it sends
// back as its resume token, and the IDs it got, to drop an event it has already.
//
// What it asserts, per client: the set of records received (de-duplicated by event ID) equals the
// set of records addressed to its user, all produced after the client first connected (every
// client connects, and receives a probe record, before the first record is produced); nothing
// addressed to another user; every event carries the ID Kafka gave the record, and no record
// comes under two IDs, nor again after the client sent back its ID (the client would drop it
// on ID); no frame carries the recipient list; no resync. It reports resumes (to the same node
// or the other one), Socket.IO recoveries, resume times (dial to connected) and catch-up times
// (dial to the last event the client had missed delivered). -partitions sets the topics'
// partition count, and with it the cursor's length.

type chaosConfig struct {
	users          int
	clientsPerUser int
	events         int
	rate           float64
	recipients     int // a record names 1..recipients users
	transports     []string
	dropMean       time.Duration // mean lifetime of a connection before its client drops it
	reconnectMax   time.Duration // a client waits 0..this before it resumes
	killAt         float64       // fraction of the records produced when a node is killed; 0: no kill
	killNode       int           // 1 or 2
	down           time.Duration // how long the killed node stays down
	restartAs      string        // "same": the same KAFKA_NODE_ID; "new": a new one, as a replaced Kubernetes pod
	sticky         float64       // fraction of the clients that only ever use their first node
	drain          time.Duration
	seed           uint64
	dialTimeout    time.Duration
	readBuf        int
}

func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	cfg := defaultChaos()
	transports := strings.Join(cfg.transports, ",")
	fs.IntVar(&cfg.users, "users", cfg.users, "K: users")
	fs.IntVar(&cfg.clientsPerUser, "clients-per-user", cfg.clientsPerUser, "clients per user, spread over the nodes and the transports")
	fs.IntVar(&cfg.events, "events", cfg.events, "records produced")
	fs.Float64Var(&cfg.rate, "rate", cfg.rate, "records produced per second")
	fs.IntVar(&cfg.recipients, "recipients", cfg.recipients, "a record names 1 to this many distinct random users")
	fs.StringVar(&transports, "transports", transports, "client transports, comma-separated: ws (?cursor=), sse (Last-Event-ID), socketio (pid and offset)")
	fs.DurationVar(&cfg.dropMean, "drop-mean", cfg.dropMean, "mean lifetime of a connection before its client drops it (exponential); 0: clients never drop")
	fs.DurationVar(&cfg.reconnectMax, "reconnect-max", cfg.reconnectMax, "a client waits uniformly up to this before resuming")
	fs.Float64Var(&cfg.killAt, "kill-at", cfg.killAt, "kill a node with SIGKILL once this fraction of the records is produced (0: no kill)")
	fs.IntVar(&cfg.killNode, "kill-node", cfg.killNode, "the node killed: 1 or 2")
	fs.DurationVar(&cfg.down, "down", cfg.down, "how long the killed node stays down before it is restarted")
	fs.StringVar(&cfg.restartAs, "restart-as", cfg.restartAs, "the restarted node's KAFKA_NODE_ID: same (its consumer group resumes from its commits) or new (a first start, as a Kubernetes pod replaced under a new name)")
	fs.Float64Var(&cfg.sticky, "sticky", cfg.sticky, "fraction of the clients that only ever resume on their first node (waiting while it is down, back as soon as it is ready); the others pick a random node that is up")
	fs.DurationVar(&cfg.drain, "drain", cfg.drain, "after producing, wait at most this long for every client to hold every record")
	fs.Uint64Var(&cfg.seed, "seed", cfg.seed, "seed of every random choice (recipients, lifetimes, delays, nodes)")
	fs.DurationVar(&cfg.dialTimeout, "dial-timeout", cfg.dialTimeout, "bound on one connection attempt (a Socket.IO recovery replays before its CONNECT reply)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	cfg.transports = strings.Split(transports, ",")
	if err := cfg.check(); err != nil {
		return err
	}
	if c.target != "" {
		return errors.New("chaos kills and restarts nodes, so it needs an owned stack (no -target)")
	}
	if !slices.ContainsFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, "REALTIME_PING_INTERVAL=") }) {
		c.env = append(c.env, "REALTIME_PING_INTERVAL=1000") // cursor frames every second
	}
	perRun := cfg.bound()
	return repeat(ctx, "chaos", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return chaosRun(ctx, st, cfg, stderr)
	})
}

func defaultChaos() chaosConfig {
	return chaosConfig{
		users:          100,
		clientsPerUser: 2,
		events:         10000,
		rate:           500,
		recipients:     3,
		transports:     []string{"ws", "sse", "socketio"},
		dropMean:       3 * time.Second,
		reconnectMax:   500 * time.Millisecond,
		killAt:         0.4,
		killNode:       1,
		down:           2 * time.Second,
		restartAs:      "same",
		sticky:         0.2,
		drain:          60 * time.Second,
		seed:           1,
		dialTimeout:    10 * time.Second,
		readBuf:        4096,
	}
}

func (cfg *chaosConfig) check() error {
	for _, t := range cfg.transports {
		if t != "ws" && t != "sse" && t != "socketio" {
			return fmt.Errorf("-transports: %q is not ws, sse or socketio", t)
		}
	}
	switch {
	case cfg.users < 1 || cfg.clientsPerUser < 1 || cfg.events < 1:
		return errors.New("-users, -clients-per-user and -events must be positive")
	case cfg.recipients < 1 || cfg.recipients > cfg.users:
		return fmt.Errorf("want 1 <= -recipients (%d) <= -users (%d)", cfg.recipients, cfg.users)
	case cfg.rate <= 0:
		return errors.New("-rate must be positive")
	case cfg.killAt < 0 || cfg.killAt >= 1:
		return errors.New("-kill-at must be in [0, 1)")
	case cfg.killNode != 1 && cfg.killNode != 2:
		return errors.New("-kill-node must be 1 or 2")
	case cfg.restartAs != "same" && cfg.restartAs != "new":
		return errors.New("-restart-as must be same or new")
	case cfg.sticky < 0 || cfg.sticky > 1:
		return errors.New("-sticky must be in [0, 1]")
	case cfg.users*cfg.clientsPerUser > fileLimit()/2-200:
		return fmt.Errorf("%d clients need as many file descriptors in this tool and the nodes; RLIMIT_NOFILE is %d", cfg.users*cfg.clientsPerUser, fileLimit())
	}
	return nil
}

// bound is the time one run may take: connecting, producing, the kill, the drain.
func (cfg *chaosConfig) bound() time.Duration {
	produce := time.Duration(float64(cfg.events) / cfg.rate * float64(time.Second))
	return 2*time.Minute + produce + cfg.down + cfg.drain + time.Duration(cfg.users*cfg.clientsPerUser)*10*time.Millisecond
}

// chaosResult is what a chaos run found.
type chaosResult struct {
	Users          int            `json:"users"`
	Clients        int            `json:"clients"`
	ByTransport    map[string]int `json:"clients_by_transport"`
	Events         int            `json:"events"`
	Rate           float64        `json:"rate"`
	Seed           uint64         `json:"seed"`
	Produced       int64          `json:"produced"`
	ProduceErrors  int64          `json:"produce_errors"`
	ProduceSeconds float64        `json:"produce_s"`
	Partitions     int            `json:"partitions"` // partitions the acknowledged records went to

	Expected   int64 `json:"expected"`   // deliveries: records x clients of their users
	Received   int64 `json:"received"`   // of those, received at least once
	Missing    int64 `json:"missing"`    // expected, never received
	Duplicates int64 `json:"duplicates"` // events dropped on ID: the client had them already
	Misrouted  int64 `json:"misrouted"`  // records addressed to other users
	Unexpected int64 `json:"unexpected"` // this run's records the client was not expecting otherwise (unacknowledged)
	BadIDs     int64 `json:"bad_ids"`    // frames whose id is not the record's event ID
	LeakedIDs  int64 `json:"leaked_user_ids"`
	Foreign    int64 `json:"foreign"` // unparsable frames
	Resyncs    int64 `json:"resyncs"`

	Connects         int               `json:"connects"`
	Resumes          int               `json:"resumes"`
	ResumesOther     int               `json:"resumes_other_node"`
	ResumesByT       map[string]int    `json:"resumes_by_transport"`
	Drops            int               `json:"drops"`        // connections the clients dropped
	ServerEnded      map[string]int    `json:"server_ended"` // connections the server (or a kill) ended, by reason
	DialErrors       map[string]int    `json:"dial_errors"`
	DialErrorSamples map[string]string `json:"dial_error_samples,omitempty"`
	SIORecovered     int               `json:"socketio_recovered"`
	SIONotRecovered  int               `json:"socketio_not_recovered"`
	ResumeTime       latencySummary    `json:"resume_time"` // dial to connected, resumes
	CatchUp          latencySummary    `json:"catch_up"`    // dial to the last missed event, resumes that missed some
	CatchUpMissed    float64           `json:"catch_up_missed_mean"`
	CatchUpMissedMax int               `json:"catch_up_missed_max"`
	Interrupted      int               `json:"catch_up_interrupted"` // resumes whose connection ended before catching up
	DrainSeconds     float64           `json:"drain_s"`              // producing ended -> every client complete

	Slowest  []string             `json:"slowest_catch_ups"` // the five slowest, with their connection
	Timeline []string             `json:"timeline"`
	Nodes    map[string]nodeStats `json:"nodes"`
	Failures []chaosFailure       `json:"failures,omitempty"`
	Resync   []string             `json:"resync_samples,omitempty"`
}

// chaosFailure describes one client that failed an assertion, for the report.
type chaosFailure struct {
	Client    int         `json:"client"`
	User      string      `json:"user"`
	Transport string      `json:"transport"`
	Missing   []string    `json:"missing,omitempty"` // event IDs, with when they were acknowledged
	Other     []string    `json:"other,omitempty"`
	Conns     []chaosConn `json:"conns"`
}

// chaosConn is one connection of a client, for the failure report.
type chaosConn struct {
	Node      string  `json:"node"`
	DialS     float64 `json:"dial_s"`
	ConnS     float64 `json:"connected_s"`
	EndS      float64 `json:"end_s"`
	Cursor    string  `json:"cursor,omitempty"` // the cursor sent, decoded
	End       string  `json:"end"`
	Frames    int     `json:"frames"`
	Missed    int     `json:"missed"` // acknowledged records of the user the client lacked at the dial
	Recovered string  `json:"recovered,omitempty"`
	FirstID   string  `json:"first_id,omitempty"`
	CatchUpMS float64 `json:"catch_up_ms,omitempty"` // dial to the last missed event delivered
}

// chaosPlan is the records of a run: recipients per sequence number, drawn from the seed.
type chaosPlan struct {
	run        string
	users      []string
	recipients [][]int32
}

func (p *chaosPlan) names(seq int64, user int) bool {
	return seq >= 0 && seq < int64(len(p.recipients)) && slices.Contains(p.recipients[seq], int32(user))
}

// chaosNode is a node and whether the "load balancer" sends clients to it.
type chaosNode struct {
	name string
	st   *stack
	up   atomic.Bool
	// Set at a restart: when it was ready, and when a client first got a record from it after.
	readyAt, firstAt atomic.Int64  // ns since the run's base
	mu               sync.Mutex    // guards dialers and upc
	upc              chan struct{} // closed when the node is up again (nil while up)
	dial             map[string]*dialer
}

// setUp marks the node up or down for the "load balancer"; clients waiting for it to be up
// again wake at once.
func (n *chaosNode) setUp(up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.up.Store(up)
	switch {
	case !up && n.upc == nil:
		n.upc = make(chan struct{})
	case up && n.upc != nil:
		close(n.upc)
		n.upc = nil
	}
}

// waitUp returns a channel closed once the node is up (nil when it is up now).
func (n *chaosNode) waitUp() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.upc
}

func (n *chaosNode) dialer(transport string, readBuf int, timeout time.Duration) *dialer {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.dial[transport]
	if d == nil {
		d = newDialer(transport, n.st.url, readBuf)
		d.timeout = timeout
		n.dial[transport] = d
	}
	return d
}

// chaosClient is one client: its connections one after the other, what it received.
type chaosClient struct {
	id        int
	user      int
	transport string
	token     string
	home      int  // the node of the first connection
	sticky    bool // resumes only on home
	rng       *rand.Rand

	connected atomic.Bool
	uniq      atomic.Int64 // records of the run received at least once
	probe     atomic.Bool

	// Owned by the client's goroutine; read by others only after it ended.
	cur            *clientCursor // the last cursor and the IDs after it; every ID received
	pid            string        // socketio
	seen           map[int64]int32
	ids            map[int64]string
	conns          []chaosConn
	resyncs        []string
	misrouted      []int64
	foreign        int64
	badIDs         int64
	leaked         int64
	drops          int
	serverEnds     map[string]int
	dialErrs       map[string]int
	dialErrSample  map[string]string
	sioRecovered   int
	sioFresh       int
	resumeTimes    *hist
	catchUp        *hist
	catchUpMissed  []int
	interrupted    int
	firstConnected time.Time
}

type chaosState struct {
	cfg    chaosConfig
	plan   *chaosPlan
	base   time.Time
	nodes  []*chaosNode
	chaos  atomic.Bool     // clients drop connections
	stop   context.Context // done when the clients must stop
	stopc  <-chan struct{} // stop.Done()
	prodAt atomic.Int64    // ns since base when producing started; 0 before

	ackMu sync.Mutex
	acked [][]int64 // per user, acknowledged sequence numbers in acknowledgement order
	ids   []string  // per seq: the event ID Kafka gave it ("" until acknowledged)
	ackAt []float64 // per seq: seconds since base of the acknowledgement

	tlMu     sync.Mutex
	timeline []string
}

func (s *chaosState) since() float64 { return time.Since(s.base).Seconds() }

func (s *chaosState) logf(format string, args ...any) {
	s.tlMu.Lock()
	defer s.tlMu.Unlock()
	s.timeline = append(s.timeline, fmt.Sprintf("%6.2fs ", s.since())+fmt.Sprintf(format, args...))
}

func (s *chaosState) stopped() bool {
	select {
	case <-s.stopc:
		return true
	default:
		return false
	}
}

// sleep waits d, or less when the run stops; it reports whether the run goes on.
func (s *chaosState) sleep(d time.Duration) bool {
	select {
	case <-s.stopc:
		return false
	case <-time.After(d):
		return true
	}
}

func (s *chaosState) node(name string) *chaosNode {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// pick returns a random node that is up (cl's home node only, for a sticky client), waiting
// while none is; -1 when the run stops.
func (s *chaosState) pick(cl *chaosClient) int {
	for {
		var up []int
		for i, n := range s.nodes {
			if n.up.Load() && (!cl.sticky || i == cl.home) {
				up = append(up, i)
			}
		}
		if len(up) > 0 {
			return up[cl.rng.IntN(len(up))]
		}
		if cl.sticky { // back as soon as the home node is ready, as a client retrying it would be
			if c := s.nodes[cl.home].waitUp(); c != nil {
				select {
				case <-c:
				case <-s.stopc:
					return -1
				}
			}
			continue
		}
		if !s.sleep(20 * time.Millisecond) {
			return -1
		}
	}
}

// missing returns the acknowledged records of cl's user that cl lacks.
func (s *chaosState) missing(cl *chaosClient) map[int64]struct{} {
	s.ackMu.Lock()
	acked := s.acked[cl.user]
	s.ackMu.Unlock()
	m := map[int64]struct{}{}
	for _, seq := range acked {
		if cl.seen[seq] == 0 {
			m[seq] = struct{}{}
		}
	}
	return m
}

func chaosRun(ctx context.Context, st *stack, cfg chaosConfig, stderr io.Writer) ([]figure, any, *loadReport, error) {
	stop, stopNow := context.WithCancel(context.Background())
	defer stopNow()
	s := &chaosState{cfg: cfg, base: time.Now(), stop: stop, stopc: stop.Done()}
	rng := rand.New(rand.NewPCG(cfg.seed, 0x6368616f73)) // "chaos"
	p := &chaosPlan{run: randomHex(3), recipients: make([][]int32, cfg.events)}
	for i := range cfg.users {
		p.users = append(p.users, "cu"+strconv.Itoa(i))
	}
	for seq := range p.recipients {
		n := 1 + rng.IntN(cfg.recipients)
		for _, u := range rng.Perm(cfg.users)[:n] {
			p.recipients[seq] = append(p.recipients[seq], int32(u))
		}
	}
	s.plan = p
	s.acked = make([][]int64, cfg.users)
	s.ids = make([]string, cfg.events)
	s.ackAt = make([]float64, cfg.events)

	// Two nodes: the stack's and a sibling on the same broker.
	st.logName = "node-1.log"
	st2, err := st.sibling("chaos-2-"+randomHex(3), "node-2.log")
	if err != nil {
		return nil, nil, nil, err
	}
	if err := st2.startNode(ctx); err != nil {
		return nil, nil, nil, err
	}
	defer st2.stopNode(20 * time.Second)
	s.nodes = []*chaosNode{
		{name: "node-1", st: st, dial: map[string]*dialer{}},
		{name: "node-2", st: st2, dial: map[string]*dialer{}},
	}
	for _, n := range s.nodes {
		n.setUp(true)
	}
	mon := startLoadMonitor(map[string]int{"node-1": st.nodePID, "node-2": st2.nodePID, "broker": st.broker.cmd.Process.Pid, "tool": os.Getpid()})
	defer mon.stop()

	toks, err := st.tokens(p.users, 2*time.Hour)
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := newProducer(st.brokers, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	defer cl.Close()

	// The clients: user u's j-th client uses transport (u*cpu+j) mod T and starts on node
	// (u+j) mod 2, so both nodes and every transport have clients of many users.
	var clients []*chaosClient
	for u := range cfg.users {
		for j := range cfg.clientsPerUser {
			id := len(clients)
			clients = append(clients, &chaosClient{
				id: id, user: u, token: toks[u],
				transport:     cfg.transports[(u*cfg.clientsPerUser+j)%len(cfg.transports)],
				home:          (u + j) % 2,
				rng:           rand.New(rand.NewPCG(cfg.seed, uint64(id)+1)),
				seen:          map[int64]int32{},
				cur:           newClientCursor(),
				ids:           map[int64]string{},
				serverEnds:    map[string]int{},
				dialErrs:      map[string]int{},
				dialErrSample: map[string]string{},
				resumeTimes:   new(hist),
				catchUp:       new(hist),
			})
		}
	}
	for _, c := range clients {
		c.sticky = c.rng.Float64() < cfg.sticky
	}
	var wg sync.WaitGroup
	stopClients := sync.OnceFunc(func() {
		stopNow()
		wg.Wait()
	})
	defer stopClients()
	for _, c := range clients {
		wg.Go(func() { s.runClient(ctx, c) })
	}
	allConnected := func() bool {
		for _, c := range clients {
			if !c.connected.Load() {
				return false
			}
		}
		return true
	}
	if !waitUntil(ctx, time.Minute, allConnected) {
		return nil, nil, nil, fmt.Errorf("not every client connected within a minute")
	}
	s.logf("%d clients connected", len(clients))
	// Probes: both nodes consume, and every client is registered, before the first record.
	if err := s.probe(ctx, cl, clients); err != nil {
		return nil, nil, nil, err
	}
	s.logf("every client received a probe record")

	// Produce, with chaos.
	pr := &producer{cl: cl}
	s.chaos.Store(cfg.dropMean > 0)
	start := time.Now()
	s.prodAt.Store(int64(time.Since(s.base)))
	s.logf("producing %d records at %.0f/s", cfg.events, cfg.rate)
	killSeq := int64(-1)
	if cfg.killAt > 0 {
		killSeq = int64(cfg.killAt * float64(cfg.events))
	}
	killDone := make(chan error, 1)
	killing := false
	defer func() {
		if killing {
			<-killDone // the stack must not close under a restart
		}
	}()
	interval := float64(time.Second) / cfg.rate
	var value []byte
	for seq := int64(0); seq < int64(cfg.events) && ctx.Err() == nil; {
		due := min(int64(cfg.events), int64(float64(time.Since(start))/interval)+1)
		for ; seq < due; seq++ {
			if seq == killSeq {
				killing = true
				go func() { killDone <- s.killAndRestart(ctx, cfg.killNode-1, mon) }()
			}
			names := make([]string, len(p.recipients[seq]))
			for i, u := range p.recipients[seq] {
				names[i] = p.users[u]
			}
			value = conceptValue(value[:0], p.run, seq, p.now(s.base), usersJSON(names))
			rec := &kgo.Record{Topic: topicConcepts, Key: []byte("k" + strconv.FormatInt(rng.Int64N(1<<20), 10)), Value: slices.Clone(value)}
			pr.sent.Add(1)
			seq := seq // the loop goes on before the promise runs
			cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
				pr.promise(r, err)
				if err != nil {
					return
				}
				s.ackMu.Lock()
				s.ids[seq] = fmt.Sprintf("%s:%d:%d", r.Topic, r.Partition, r.Offset)
				s.ackAt[seq] = s.since()
				for _, u := range p.recipients[seq] {
					s.acked[u] = append(s.acked[u], seq)
				}
				s.ackMu.Unlock()
			})
		}
		next := start.Add(time.Duration(float64(seq) * interval))
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(next)):
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cl.Flush(fctx)
	cancel()
	produceSecs := time.Since(start).Seconds()
	s.logf("producing ended: %d acknowledged, %d failed", pr.acked.Load(), pr.failed.Load())
	if killing {
		killing = false
		if err := <-killDone; err != nil {
			return nil, nil, mon.stop(), err
		}
	}
	// The drain: no more drops; every client reconnects and catches up.
	s.chaos.Store(false)
	endProduce := time.Now()
	expected := int64(0)
	s.ackMu.Lock()
	perUser := make([]int64, cfg.users)
	for u, a := range s.acked {
		perUser[u] = int64(len(a))
	}
	s.ackMu.Unlock()
	for _, c := range clients {
		expected += perUser[c.user]
	}
	received := func() int64 {
		var n int64
		for _, c := range clients {
			n += c.uniq.Load()
		}
		return n
	}
	complete := waitUntil(ctx, cfg.drain, func() bool { return allConnected() && received() >= expected })
	drain := time.Since(endProduce).Seconds()
	if complete {
		s.logf("every client holds every record")
	} else {
		s.logf("drain bound reached: %d of %d deliveries, %d clients connected", received(), expected, countTrue(clients))
	}
	// A little longer, so that late duplicates and misrouted frames are counted too.
	s.sleep(500 * time.Millisecond)
	res := chaosResult{
		Users: cfg.users, Clients: len(clients), ByTransport: map[string]int{}, Events: cfg.events,
		Rate: cfg.rate, Seed: cfg.seed, Produced: pr.acked.Load(), ProduceErrors: pr.failed.Load(),
		ProduceSeconds: produceSecs, Expected: expected, DrainSeconds: drain,
		ResumesByT: map[string]int{}, ServerEnded: map[string]int{}, DialErrors: map[string]int{},
		DialErrorSamples: map[string]string{}, Nodes: map[string]nodeStats{},
	}
	for _, n := range s.nodes {
		if n.st.node != nil {
			res.Nodes[n.name], _ = scrapeMetrics(ctx, n.st)
		}
	}
	load := mon.stop()
	stopClients()
	s.account(&res, clients)
	s.tlMu.Lock()
	res.Timeline = s.timeline
	s.tlMu.Unlock()

	figs := []figure{
		{"clients", "", float64(res.Clients)},
		{"records produced", "", float64(res.Produced)},
		{"partitions they went to", "", float64(res.Partitions)},
		{"expected deliveries", "", float64(res.Expected)},
		{"missing", "", float64(res.Missing)},
		{"misrouted", "", float64(res.Misrouted)},
		{"resyncs", "", float64(res.Resyncs)},
		{"bad ids", "", float64(res.BadIDs)},
		{"leaked userIds", "", float64(res.LeakedIDs)},
		{"duplicates", "", float64(res.Duplicates)},
		{"drops (by clients)", "", float64(res.Drops)},
		{"resumes", "", float64(res.Resumes)},
		{"resumes on the other node", "", float64(res.ResumesOther)},
		{"socket.io recovered", "", float64(res.SIORecovered)},
		{"socket.io not recovered", "", float64(res.SIONotRecovered)},
		{"resume p50 (dial to connected)", "ms", res.ResumeTime.P50},
		{"resume p99", "ms", res.ResumeTime.P99},
		{"resume max", "ms", res.ResumeTime.Max},
		{"catch-up p50 (dial to last missed event)", "ms", res.CatchUp.P50},
		{"catch-up p99", "ms", res.CatchUp.P99},
		{"catch-up max", "ms", res.CatchUp.Max},
		{"missed per resume (mean)", "", res.CatchUpMissed},
		{"drain (end of producing to complete)", "s", res.DrainSeconds},
	}
	var failures []string
	if res.ProduceErrors > 0 {
		failures = append(failures, fmt.Sprintf("%d produce errors", res.ProduceErrors))
	}
	if res.Missing > 0 {
		failures = append(failures, fmt.Sprintf("%d of %d deliveries missing", res.Missing, res.Expected))
	}
	if res.Misrouted > 0 {
		failures = append(failures, fmt.Sprintf("%d misrouted", res.Misrouted))
	}
	if res.Resyncs > 0 {
		failures = append(failures, fmt.Sprintf("%d resyncs", res.Resyncs))
	}
	if res.Duplicates > 0 {
		// Every client sends back the IDs it got after its cursor: the server owes it nothing
		// twice (docs/client-protocol.md, "Cursor").
		failures = append(failures, fmt.Sprintf("%d events came again although the client had sent back their IDs", res.Duplicates))
	}
	if res.BadIDs > 0 || res.LeakedIDs > 0 || res.Foreign > 0 || res.Unexpected > 0 {
		failures = append(failures, fmt.Sprintf("%d frames with a wrong id, %d with userIds, %d unparsable, %d unexpected", res.BadIDs, res.LeakedIDs, res.Foreign, res.Unexpected))
	}
	if !complete && res.Missing == 0 {
		failures = append(failures, "not every client was connected at the end")
	}
	var runErr error
	if len(failures) > 0 {
		runErr = errors.New("chaos: " + strings.Join(failures, "; "))
		s.printFailures(stderr, &res)
	}
	return figs, res, load, runErr
}

func countTrue(clients []*chaosClient) int {
	n := 0
	for _, c := range clients {
		if c.connected.Load() {
			n++
		}
	}
	return n
}

// now is nanoseconds since base, the send time in a record's bench field.
func (p *chaosPlan) now(base time.Time) int64 { return int64(time.Since(base)) }

// probe produces probe records naming every user until every client has received one.
func (s *chaosState) probe(ctx context.Context, cl *kgo.Client, clients []*chaosClient) error {
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		for from := 0; from < len(s.plan.users); from += probeUsers {
			v := probeValue(s.plan.run, n, usersJSON(s.plan.users[from:min(len(s.plan.users), from+probeUsers)]))
			cl.Produce(ctx, &kgo.Record{Topic: topicConcepts, Value: v}, nil)
		}
		if waitUntil(ctx, 500*time.Millisecond, func() bool {
			for _, c := range clients {
				if !c.probe.Load() {
					return false
				}
			}
			return true
		}) {
			return nil
		}
	}
	return errors.New("not every client received a probe record within 60 s")
}

// killAndRestart kills node i with SIGKILL, keeps it down for cfg.down, restarts it with the
// same environment (KAFKA_NODE_ID, address) and sends clients to it again once it is ready.
func (s *chaosState) killAndRestart(ctx context.Context, i int, mon *loadMonitor) error {
	n := s.nodes[i]
	role := n.name
	mon.exited(role, n.st.killNode())
	n.setUp(false) // the load balancer notices
	s.logf("%s killed (SIGKILL)", n.name)
	if !s.sleep(s.cfg.down) {
		return nil
	}
	n.st.logName = n.name + ".restarted.log"
	id := "same KAFKA_NODE_ID"
	if s.cfg.restartAs == "new" {
		nodeID := "chaos-" + randomHex(4)
		for i, kv := range n.st.nodeEnv {
			if strings.HasPrefix(kv, "KAFKA_NODE_ID=") {
				n.st.nodeEnv[i] = "KAFKA_NODE_ID=" + nodeID
			}
		}
		id = "new KAFKA_NODE_ID " + nodeID + " (a first start)"
	}
	t0 := time.Now()
	if err := n.st.restartNode(ctx, time.Millisecond); err != nil {
		return fmt.Errorf("restart %s: %w", n.name, err)
	}
	mon.started(role, n.st.nodePID)
	n.readyAt.Store(int64(time.Since(s.base)))
	n.setUp(true) // clients are sent to it as soon as it says it is ready
	s.logf("%s restarted with the %s, ready after %.2fs", n.name, id, time.Since(t0).Seconds())
	return nil
}

// runClient connects, reads, drops and resumes until the run stops.
func (s *chaosState) runClient(ctx context.Context, cl *chaosClient) {
	first := true
	for !s.stopped() {
		ni := cl.home
		if !first {
			if ni = s.pick(cl); ni < 0 {
				return
			}
		}
		node := s.nodes[ni]
		cc := chaosConn{Node: node.name, DialS: s.since(), Cursor: describeCursor(cl.cur.token())}
		var missing map[int64]struct{}
		if !first {
			missing = s.missing(cl)
			cc.Missed = len(missing)
		}
		dialAt := time.Now()
		fc, err := s.dial(ctx, cl, node, &cc)
		if err != nil {
			kind := dialErrKind(err)
			cl.dialErrs[kind]++
			if _, ok := cl.dialErrSample[kind]; !ok {
				cl.dialErrSample[kind] = node.name + ": " + err.Error()
			}
			if !s.sleep(time.Duration(50+cl.rng.IntN(100)) * time.Millisecond) {
				return
			}
			continue
		}
		cc.ConnS = s.since()
		if first {
			cl.firstConnected = time.Now()
		} else {
			cl.resumeTimes.record(int64(time.Since(dialAt)))
		}
		first = false
		cl.connected.Store(true)

		var dropped atomic.Bool
		var timer *time.Timer
		if s.cfg.dropMean > 0 {
			life := time.Duration(cl.rng.ExpFloat64() * float64(s.cfg.dropMean))
			timer = time.AfterFunc(life, func() {
				if s.chaos.Load() {
					dropped.Store(true)
					fc.close()
				}
			})
		}
		stopWatch := context.AfterFunc(s.stop, fc.close)
		onEvent := func(name string, data []byte, id string) {
			cc.Frames++
			s.onEvent(cl, &cc, name, data, id, missing, dialAt)
			if missing != nil && len(missing) == 0 {
				cc.CatchUpMS = float64(time.Since(dialAt)) / 1e6
				cl.catchUp.record(int64(time.Since(dialAt)))
				cl.catchUpMissed = append(cl.catchUpMissed, cc.Missed)
				missing = nil
			}
		}
		if len(missing) == 0 {
			missing = nil
		}
		err = s.read(cl, fc, onEvent)
		fc.close()
		stopWatch()
		if timer != nil {
			timer.Stop()
		}
		cl.connected.Store(false)
		cc.EndS = s.since()
		switch {
		case s.stopped():
			cc.End = "stopped"
		case dropped.Load():
			cc.End = "dropped"
			cl.drops++
		default:
			cc.End = closeReason(err)
			cl.serverEnds[cc.End]++
		}
		if missing != nil && !s.stopped() {
			cl.interrupted++
		}
		cl.conns = append(cl.conns, cc)
		if s.stopped() {
			return
		}
		wait := time.Duration(0)
		if s.cfg.reconnectMax > 0 && s.chaos.Load() {
			wait = time.Duration(cl.rng.Int64N(int64(s.cfg.reconnectMax)))
		}
		if !s.sleep(wait) {
			return
		}
	}
}

// dial opens cl's next connection to node, resuming with what cl holds: its resume token
// (WebSocket ?cursor=, SSE Last-Event-ID; Socket.IO the recovery offset, with the pid of its last
// session).
func (s *chaosState) dial(ctx context.Context, cl *chaosClient, node *chaosNode, cc *chaosConn) (frameConn, error) {
	d := node.dialer(cl.transport, s.cfg.readBuf, s.cfg.dialTimeout)
	dctx, cancel := context.WithTimeout(ctx, s.cfg.dialTimeout)
	defer cancel()
	resume := cl.cur.token()
	if cl.transport != "socketio" {
		return d.dial(dctx, cl.token, resume)
	}
	fc, pid, err := d.dialSocketIOWith(dctx, cl.token, cl.pid, resume)
	if err != nil {
		return nil, err
	}
	if cl.pid != "" && resume != "" {
		if pid == cl.pid {
			cl.sioRecovered++
			cc.Recovered = "yes"
		} else {
			cl.sioFresh++
			cc.Recovered = "no"
		}
	}
	cl.pid = pid
	return fc, nil
}

// read reads fc until it ends, keeping cl's cursor and IDs and dropping the events it has (see
// readClientEvents).
func (s *chaosState) read(cl *chaosClient, fc frameConn, onEvent func(name string, data []byte, id string)) error {
	return readClientEvents(fc, cl.cur, &cl.foreign, onEvent)
}

// onEvent accounts for one event a client received.
func (s *chaosState) onEvent(cl *chaosClient, cc *chaosConn, name string, data []byte, id string, missing map[int64]struct{}, dialAt time.Time) {
	switch name {
	case "cursor", "disconnect":
		return
	case "resync":
		if len(cl.resyncs) < 3 {
			cl.resyncs = append(cl.resyncs, fmt.Sprintf("client %d (%s, user %s) on %s at %.2fs: %.300s", cl.id, cl.transport, s.plan.users[cl.user], cc.Node, s.since(), data))
		} else {
			cl.resyncs = append(cl.resyncs, "")
		}
		return
	}
	var d struct {
		Bench   string          `json:"bench"`
		UserIDs json.RawMessage `json:"userIds"`
	}
	if json.Unmarshal(data, &d) != nil {
		cl.foreign++
		return
	}
	if d.UserIDs != nil {
		cl.leaked++
	}
	run, rest, ok := strings.Cut(d.Bench, ".")
	if !ok || run != s.plan.run {
		cl.foreign++
		return
	}
	if strings.HasPrefix(rest, "p") {
		cl.probe.Store(true)
		return
	}
	seqStr, _, _ := strings.Cut(rest, ".")
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	if err != nil {
		cl.foreign++
		return
	}
	if !s.plan.names(seq, cl.user) {
		cl.misrouted = append(cl.misrouted, seq)
		return
	}
	if cc.FirstID == "" {
		cc.FirstID = id
	}
	if n := s.node(cc.Node); n.readyAt.Load() > 0 && n.firstAt.Load() == 0 && int64(cc.DialS*1e9) >= n.readyAt.Load() {
		if n.firstAt.CompareAndSwap(0, int64(time.Since(s.base))) {
			s.logf("%s delivered its first record since its restart (%.2fs after it was ready)", n.name, float64(n.firstAt.Load()-n.readyAt.Load())/1e9)
		}
	}
	if id == "" {
		cl.badIDs++ // every event carries its ID, on every transport
	}
	cl.seen[seq]++
	if cl.seen[seq] == 1 {
		cl.uniq.Add(1)
		cl.ids[seq] = id
	} else {
		cl.badIDs++ // the same record again under another ID: de-duplication cannot catch it
	}
	if missing != nil {
		delete(missing, seq)
	}
}

// account fills res from the clients, once they have stopped.
func (s *chaosState) account(res *chaosResult, clients []*chaosClient) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	parts := map[string]bool{}
	for _, id := range s.ids {
		if i := strings.LastIndexByte(id, ':'); i > 0 {
			parts[id[:i]] = true
		}
	}
	res.Partitions = len(parts)
	acked := make([]map[int64]bool, len(s.acked))
	for u, seqs := range s.acked {
		acked[u] = make(map[int64]bool, len(seqs))
		for _, seq := range seqs {
			acked[u][seq] = true
		}
	}
	var missed []int
	for _, cl := range clients {
		res.ByTransport[cl.transport]++
		var fail chaosFailure
		for seq := range acked[cl.user] {
			if cl.seen[seq] == 0 {
				res.Missing++
				fail.Missing = append(fail.Missing, fmt.Sprintf("%s (seq %d, acknowledged at %.2fs)", s.ids[seq], seq, s.ackAt[seq]))
			} else {
				res.Received++
			}
		}
		for seq := range cl.seen {
			if !acked[cl.user][seq] {
				res.Unexpected++
				fail.Other = append(fail.Other, fmt.Sprintf("unexpected seq %d", seq))
			}
			if id := cl.ids[seq]; id != "" && id != s.ids[seq] {
				res.BadIDs++
				fail.Other = append(fail.Other, fmt.Sprintf("seq %d came as %s, Kafka gave it %s", seq, id, s.ids[seq]))
			}
		}
		res.BadIDs += cl.badIDs
		res.Duplicates += cl.cur.dups
		res.Misrouted += int64(len(cl.misrouted))
		for _, seq := range cl.misrouted {
			fail.Other = append(fail.Other, fmt.Sprintf("misrouted seq %d (for %v)", seq, s.plan.recipients[seq]))
		}
		res.LeakedIDs += cl.leaked
		res.Foreign += cl.foreign
		res.Resyncs += int64(len(cl.resyncs))
		for _, r := range cl.resyncs {
			if r != "" && len(res.Resync) < 5 {
				res.Resync = append(res.Resync, r)
			}
		}
		if len(cl.resyncs) > 0 {
			fail.Other = append(fail.Other, fmt.Sprintf("%d resyncs", len(cl.resyncs)))
		}
		for i, cc := range cl.conns {
			res.Connects++
			if i > 0 {
				res.Resumes++
				res.ResumesByT[cl.transport]++
				if cc.Node != cl.conns[i-1].Node {
					res.ResumesOther++
				}
			}
		}
		res.Drops += cl.drops
		for k, v := range cl.serverEnds {
			res.ServerEnded[k] += v
		}
		for k, v := range cl.dialErrs {
			res.DialErrors[k] += v
			if _, ok := res.DialErrorSamples[k]; !ok {
				res.DialErrorSamples[k] = cl.dialErrSample[k]
			}
		}
		res.SIORecovered += cl.sioRecovered
		res.SIONotRecovered += cl.sioFresh
		res.Interrupted += cl.interrupted
		missed = append(missed, cl.catchUpMissed...)
		if len(fail.Missing) > 0 || len(fail.Other) > 0 {
			slices.Sort(fail.Missing)
			fail.Client, fail.User, fail.Transport, fail.Conns = cl.id, s.plan.users[cl.user], cl.transport, cl.conns
			if len(fail.Missing) > 20 {
				fail.Missing = append(fail.Missing[:20], fmt.Sprintf("... %d in all", len(fail.Missing)))
			}
			if len(res.Failures) < 10 {
				res.Failures = append(res.Failures, fail)
			}
		}
	}
	type slow struct {
		ms   float64
		desc string
	}
	var slowest []slow
	for _, cl := range clients {
		for _, cc := range cl.conns {
			if cc.CatchUpMS > 0 {
				slowest = append(slowest, slow{cc.CatchUpMS, fmt.Sprintf("%.0f ms: client %d (%s) on %s, dial at %.2fs, %d missed, cursor [%s]",
					cc.CatchUpMS, cl.id, cl.transport, cc.Node, cc.DialS, cc.Missed, cc.Cursor)})
			}
		}
	}
	slices.SortFunc(slowest, func(a, b slow) int { return -cmp.Compare(a.ms, b.ms) })
	for _, sl := range slowest[:min(5, len(slowest))] {
		res.Slowest = append(res.Slowest, sl.desc)
	}
	rt, cu := new(hist), new(hist)
	for _, cl := range clients {
		rt.merge(cl.resumeTimes)
		cu.merge(cl.catchUp)
	}
	res.ResumeTime, res.CatchUp = rt.summary(), cu.summary()
	if len(missed) > 0 {
		sum := 0
		for _, m := range missed {
			sum += m
			res.CatchUpMissedMax = max(res.CatchUpMissedMax, m)
		}
		res.CatchUpMissed = float64(sum) / float64(len(missed))
	}
}

// printFailures writes what a failing run found: the timeline, the failing clients and their
// connections (with the cursors they sent, decoded), the nodes' resync counters and log tails.
func (s *chaosState) printFailures(w io.Writer, res *chaosResult) {
	fmt.Fprintf(w, "\nchaos run FAILED (seed %d, run %s)\ntimeline:\n", s.cfg.seed, s.plan.run)
	for _, l := range res.Timeline {
		fmt.Fprintln(w, "  "+l)
	}
	for _, f := range res.Failures {
		fmt.Fprintf(w, "client %d (user %s, %s):\n", f.Client, f.User, f.Transport)
		for _, m := range f.Missing {
			fmt.Fprintln(w, "  missing "+m)
		}
		for _, o := range f.Other {
			fmt.Fprintln(w, "  "+o)
		}
		for _, c := range f.Conns {
			fmt.Fprintf(w, "  conn %-6s dial %6.2fs connected %6.2fs end %6.2fs (%s) frames %d missed-at-dial %d recovered %q first %q cursor [%s]\n",
				c.Node, c.DialS, c.ConnS, c.EndS, c.End, c.Frames, c.Missed, c.Recovered, c.FirstID, c.Cursor)
		}
	}
	for _, r := range res.Resync {
		fmt.Fprintln(w, "resync: "+r)
	}
	for _, name := range slices.Sorted(maps.Keys(res.Nodes)) {
		fmt.Fprintf(w, "%s: resyncs %v\n", name, res.Nodes[name].Resyncs)
	}
	for _, n := range s.nodes {
		if n.st.node != nil {
			fmt.Fprintf(w, "%s log ends:\n%s\n", n.name, n.st.node.logTail())
		}
	}
}

// describeCursor decodes a cursor for the failure report: "topic/partition@offset ...". Clients
// treat cursors as opaque; the tool peeks to say what a resume asked for. Wire form (versions 1
// and 2): see internal/realtime/cursor.go. A resume token's IDs ("~id,id") are shown as they are.
func describeCursor(token string) string {
	if token == "" {
		return ""
	}
	c, ids, _ := strings.Cut(token, "~")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 6 || b[0] != 1 && b[0] != 2 {
		return "undecodable " + c
	}
	names := map[uint32]string{}
	for _, t := range []string{topicConcepts, topicSessions} {
		names[fnv1a(t)] = t
	}
	version := b[0]
	b = b[5:]
	var parts []string
	add := func(t string, p uint64, o int64) {
		if t == topicConcepts {
			t = "c" // short: the records of the run are all on concept-notifications
		}
		parts = append(parts, fmt.Sprintf("%s/%d@%d", t, p, o))
	}
	n, k := be.Uvarint(b)
	if k <= 0 {
		return "undecodable " + c
	}
	b = b[k:]
	for range n {
		if len(b) < 4 {
			return "undecodable " + c
		}
		t := names[be.BigEndian.Uint32(b)]
		b = b[4:]
		if version == 1 {
			p, k1 := be.Uvarint(b)
			if k1 <= 0 {
				return "undecodable " + c
			}
			o, k2 := be.Uvarint(b[k1:])
			if k2 <= 0 {
				return "undecodable " + c
			}
			b = b[k1+k2:]
			add(t, p, int64(o))
			continue
		}
		m, k := be.Uvarint(b)
		if k <= 0 {
			return "undecodable " + c
		}
		b = b[k:]
		p, o := int64(-1), int64(0)
		for range m {
			gap, k1 := be.Uvarint(b)
			if k1 <= 0 {
				return "undecodable " + c
			}
			d, k2 := be.Varint(b[k1:])
			if k2 <= 0 {
				return "undecodable " + c
			}
			b = b[k1+k2:]
			p, o = p+int64(gap)+1, o+d
			add(t, uint64(p), o)
		}
	}
	if ids != "" {
		parts = append(parts, "~"+ids)
	}
	return strings.Join(parts, " ")
}

func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
