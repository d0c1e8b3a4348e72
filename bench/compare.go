package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// compare runs the same scenarios against realtime-service and another server (Centrifugo:
// centrifugo.go), alternating the two run by run (A B A B ...), each run on a fresh embedded
// broker (kfake, the same partitions) with the same load: the same record value (the other
// server gets it inside its own command envelope, and its clients receive it as the data), the
// same producer, the same WebSocket client library (gorilla/websocket) and the same clock points
// for latency (record value built and handed to the producer -> frame read by the client). It
// prints each figure's median and range for both and the ratio ours/theirs, the median and range
// of the run-by-run ratios, and appends one JSON line per run (mode "compare", with -scenario and
// -system in its args, so that `bench report` groups them).

// compareSystem is one server under comparison.
type compareSystem interface {
	name() string // for tables: "realtime-service", "Centrifugo v6.9.1"
	key() string  // for the JSON lines' -system: "realtime-service", "centrifugo"
	// start starts a fresh broker and the server on it and returns when clients can connect.
	start(ctx context.Context, c *common, bin *binary, stderr io.Writer) (*compareTarget, error)
}

// compareTarget is a started system: its stack (whose node is the server; close stops it and
// the broker), the topic it consumes, how a record value is wrapped for it, and how a client
// connects.
type compareTarget struct {
	st    *stack
	topic string
	// envelope returns what goes before and after the record value for users; nil: the value
	// is the record.
	envelope func(users []string) (pre, post []byte)
	dial     func(ctx context.Context, d *dialer, token string) (frameConn, error)
}

// ourSystem is realtime-service: startStack's broker and node, clients on /v1/ws with
// gorilla/websocket (the tool's ws-gorilla transport).
type ourSystem struct{ label string }

func (o ourSystem) name() string {
	if o.label != "" {
		return o.label
	}
	return "realtime-service"
}
func (o ourSystem) key() string { return strings.ReplaceAll(o.name(), " ", "-") }

func (o ourSystem) start(ctx context.Context, c *common, bin *binary, stderr io.Writer) (*compareTarget, error) {
	st, err := startStack(ctx, c, bin, stderr)
	if err != nil {
		return nil, err
	}
	return &compareTarget{st: st, topic: topicConcepts, dial: func(ctx context.Context, d *dialer, token string) (frameConn, error) {
		return d.dial(ctx, token, "")
	}}, nil
}

// compareScenario is one scenario of compare.
type compareScenario struct {
	name     string // -scenario value
	title    string
	users    int     // delivery: connections, one per user
	fanout   int     // delivery: users each record names
	rate     float64 // delivery: records/s
	duration time.Duration
	conns    int // idle: connections
}

func (s compareScenario) idle() bool { return s.conns > 0 }

// compareConfig is what runCompare parsed.
type compareConfig struct {
	scenarios []compareScenario
	drain     time.Duration // after producing, wait at most this long for deliveries
	drainIdle time.Duration // stop draining after this long without one
	settle    time.Duration // idle: wait this long after the last connection before reading RSS
	parallel  int           // connections opened concurrently
}

// compareScenarios are the scenarios of issue 19 / BENCHMARKS.md "Side by side with Centrifugo".
func compareScenarios(latency, fanout time.Duration, idleConns int) []compareScenario {
	return []compareScenario{
		{name: "latency-1000", title: "latency, 100 users, 1,000 records/s, each to 1 user", users: 100, fanout: 1, rate: 1000, duration: latency},
		{name: "latency-10000", title: "latency, 100 users, 10,000 records/s, each to 1 user", users: 100, fanout: 1, rate: 10000, duration: latency},
		{name: "fanout", title: "fan-out, 1,000 users, 1,000 records/s, each to all 1,000", users: 1000, fanout: 1000, rate: 1000, duration: fanout},
		{name: "idle", title: fmt.Sprintf("idle WebSocket connections, %d", idleConns), conns: idleConns},
	}
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var c common
	cfBin := fs.String("centrifugo", "", "the Centrifugo binary (default: $CENTRIFUGO_BIN); this tool installs nothing: build it with GOBIN=DIR go install github.com/centrifugal/centrifugo/v6@v6.9.1")
	scenarios := fs.String("scenario", "all", "comma-separated: latency-1000, latency-10000, fanout, idle, or all")
	latency := fs.Duration("duration", 15*time.Second, "how long records are produced in the latency scenarios")
	fanout := fs.Duration("fanout-duration", 10*time.Second, "how long records are produced in the fan-out scenario")
	idleConns := fs.Int("conns", 10000, "idle: connections (each needs a file descriptor in this tool and one in the server)")
	var cc compareConfig
	fs.DurationVar(&cc.drain, "drain", 15*time.Second, "after producing, wait at most this long for the remaining deliveries")
	fs.DurationVar(&cc.drainIdle, "drain-idle", 3*time.Second, "stop draining after this long without a new delivery")
	fs.DurationVar(&cc.settle, "settle", 5*time.Second, "idle: wait this long after the last connection before reading the server's RSS")
	fs.IntVar(&cc.parallel, "dial-parallel", 256, "connections opened concurrently")
	fs.IntVar(&c.runs, "runs", 3, "runs per system and scenario, alternating the systems run by run (pairs: realtime-service, then the other)")
	fs.IntVar(&c.rerunNoisy, "rerun-noisy", 0, "when a pair has a noisy run (other processes used more than 0.25 cores), leave it out and run up to this many more pairs")
	fs.StringVar(&c.bin, "bin", "", "a prebuilt realtime-service binary (default: go build ./cmd/realtime-service into a temp dir); its broker serves both systems")
	fs.StringVar(&c.rev, "rev", "", "build realtime-service from this git revision instead of the working tree")
	fs.Var(&c.env, "env", "KEY=VALUE added to realtime-service's environment (repeatable)")
	fs.IntVar(&c.partitions, "partitions", 0, "partitions of each topic (KAFKA_EMBEDDED_PARTITIONS; 0: the broker's default, 3); Centrifugo's topic gets as many")
	fs.StringVar(&c.out, "out", "bench/results.jsonl", "append one JSON line per run to this file (relative to the module root); empty disables")
	fs.StringVar(&c.note, "note", "", "free text recorded in the JSON lines")
	fs.DurationVar(&c.quiet, "wait-quiet", 0, "before each run, wait up to this long until the machine is idle (under 0.15 busy cores over 3 s)")
	versus := fs.String("versus", "", "after the runs, write both systems' medians and ranges to this versus file (e.g. docs/benchmarks/centrifugo.json, relative to the module root), which go run ./bench chart draws as versus-centrifugo.svg; figures of scenarios not run are kept from the file")
	fs.DurationVar(&c.timeout, "timeout", 0, "hard bound for the whole invocation (default: derived from the scenarios and -runs)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	all := compareScenarios(*latency, *fanout, *idleConns)
	for _, name := range strings.Split(*scenarios, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range all {
			if name == "all" || name == s.name {
				cc.scenarios = append(cc.scenarios, s)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("-scenario %q: want latency-1000, latency-10000, fanout, idle or all", name)
		}
	}
	switch {
	case c.runs < 1 || c.rerunNoisy < 0:
		return fmt.Errorf("-runs %d -rerun-noisy %d: want at least 1 and at least 0", c.runs, c.rerunNoisy)
	case *latency <= 0 || *fanout <= 0 || *idleConns < 1:
		return errors.New("-duration, -fanout-duration and -conns must be positive")
	case *idleConns > fileLimit()-200:
		return fmt.Errorf("-conns %d: this tool may open %d files (RLIMIT_NOFILE), and needs one per connection plus about 200", *idleConns, fileLimit())
	case c.bin != "" && c.rev != "":
		return errors.New("-bin and -rev exclude each other")
	}
	c.transport, c.tokenAlg = "ws-gorilla", "HS256"
	if *cfBin == "" {
		*cfBin = os.Getenv("CENTRIFUGO_BIN")
	}
	if *cfBin == "" {
		return errNoCentrifugo
	}
	other, err := newCentrifugoSystem(ctx, *cfBin)
	if err != nil {
		return err
	}
	outcomes, err := compare(ctx, args, &c, cc, [2]compareSystem{ourSystem{}, other}, stdout, stderr)
	if *versus != "" {
		root, rerr := moduleRoot()
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		path := *versus
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		// The command as BENCHMARKS.md gives it: the binary from the environment, no bound.
		cmd := "CENTRIFUGO_BIN=<centrifugo> go run ./bench compare " + strings.Join(withoutFlags(args, "centrifugo", "timeout"), " ")
		rev := readRevision(root, &c)
		if werr := writeVersus(path, outcomes, other.name(), cmd, rev.Commit); werr != nil {
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintf(stdout, "versus figures written to %s (go run ./bench chart draws them)\n", path)
		}
	}
	return err
}

// versusFigures maps compare's figures to the versus file's keys (versusKeys).
var versusFigures = []struct{ scenario, figure, key string }{
	{"latency-1000", "p50", "latency_p50_ms_1000"},
	{"latency-1000", "p99", "latency_p99_ms_1000"},
	{"latency-10000", "p50", "latency_p50_ms_10000"},
	{"latency-10000", "p99", "latency_p99_ms_10000"},
	{"fanout", "deliveries/s", "fanout_deliveries_per_s"},
	{"idle", "RSS per connection", "idle_kb_per_conn"},
}

// writeVersus writes the medians and ranges of the outcomes to the versus file at path: the
// other server's under figures, realtime-service's under ours. The figures of scenarios that were
// not run are kept when the file was written by compare too (it has ours).
func writeVersus(path string, outcomes []*compareOutcome, server, cmd, commit string) error {
	vs := &versusData{Figures: map[string]versusFigure{}, Ours: map[string]versusFigure{}}
	if old, err := readVersus(path); err == nil && old.Ours != nil {
		vs = old
	}
	vs.Server = server
	vs.Build = "go install github.com/centrifugal/centrifugo/v6@v6.9.1 (the -centrifugo binary)"
	vs.Setup = "Both servers measured by go run ./bench compare on the same machine, alternating run by run, each run on a fresh embedded broker (kfake, the same partitions): the same records, producer, rate, users and WebSocket client (gorilla/websocket). Centrifugo: memory engine, its Kafka consumer (type kafka) applying each record as a publish (one user) or broadcast (several) server API command to the users' personal channels user:#<id>, clients on /connection/websocket with its JSON protocol."
	date := time.Now().UTC().Format("2006-01-02 15:04 UTC")
	measured := ""
	for _, m := range versusFigures {
		for _, o := range outcomes {
			r := o.row(m.figure)
			if o.scenario.name != m.scenario || r == nil || len(r.values[0]) == 0 || len(r.values[1]) == 0 {
				continue
			}
			fig := func(v []float64) versusFigure {
				med, lo, hi := medianRange(v)
				return versusFigure{Value: med, Min: lo, Max: hi}
			}
			if f := fig(r.values[0]); f.Value > 0 {
				vs.Ours[m.key] = f
			}
			if f := fig(r.values[1]); f.Value > 0 {
				vs.Figures[m.key] = f
			}
			measured += " " + m.key
		}
	}
	if measured == "" {
		return errors.New("-versus: no figure of the versus chart was measured")
	}
	src := fmt.Sprintf("%s at realtime-service commit %s, %s:%s", cmd, commit, date, measured)
	if vs.Source != "" && len(vs.Ours) > strings.Count(measured, " ") {
		src += "; the other figures from an earlier run: " + vs.Source
	}
	vs.Source = src
	vs.Caption = fmt.Sprintf("both sides measured side by side by go run ./bench compare (realtime-service %s, %s), median of the runs, whiskers min-max.", commit, date)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(vs); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// compareRow is one figure of one scenario: each system's values run by run.
type compareRow struct {
	name, unit string
	values     [2][]float64
}

// compareOutcome is one scenario's figures for both systems.
type compareOutcome struct {
	scenario compareScenario
	rows     []*compareRow
	errs     int // pairs left out because a run failed
	noisy    int // pairs counted although a run was noisy (other processes used more than noisyCores)
	leftOut  int // noisy pairs left out and run again (-rerun-noisy)
}

// row returns the row named name, or nil.
func (o *compareOutcome) row(name string) *compareRow {
	for _, r := range o.rows {
		if r.name == name {
			return r
		}
	}
	return nil
}

// compare runs each scenario c.runs times per system, alternating, and prints the comparison.
func compare(ctx context.Context, args []string, c *common, cc compareConfig, systems [2]compareSystem, stdout, stderr io.Writer) ([]*compareOutcome, error) {
	bound := c.timeout
	if bound <= 0 {
		bound = time.Minute
		for _, s := range cc.scenarios {
			per := s.duration + cc.drain + time.Minute + c.quiet
			if s.idle() {
				per = cc.settle + time.Duration(s.conns/500)*time.Second + time.Minute + c.quiet
			}
			bound += 2 * time.Duration(c.runs+c.rerunNoisy) * per
		}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, bound, fmt.Errorf("time bound of %v reached (-timeout)", bound))
	defer cancel()
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	bin, err := buildBinary(ctx, root, c.bin, c.rev, stderr)
	if err != nil {
		return nil, err
	}
	defer bin.remove()

	var errs []error
	var outcomes []*compareOutcome
	for _, sc := range cc.scenarios {
		out := &compareOutcome{scenario: sc}
		outcomes = append(outcomes, out)
		var sess [2]*session
		for j, sys := range systems {
			sess[j] = newSession("compare", compareArgs(args, sc.name, sys.key()), c, root, io.Discard)
		}
		// Run pairs (A then B) until c.runs pairs count: a pair where a run failed is left out;
		// a noisy pair is left out and run again while -rerun-noisy allows.
		pairs, reruns := 0, 0
		for i := 1; pairs < c.runs && i <= c.runs+c.rerunNoisy && ctx.Err() == nil; i++ {
			var pair [2][]figure
			noisy, failed := false, false
			for j, sys := range systems {
				if c.quiet > 0 {
					waitQuiet(ctx, c.quiet, stderr)
				}
				figs, result, load, err := compareOnce(ctx, c, cc, bin, sys, sc, stderr)
				if err != nil {
					failed = true
					err = fmt.Errorf("%s, %s, run %d: %w", sc.name, sys.name(), i, err)
					errs = append(errs, err)
					fmt.Fprintf(stderr, "%v\n", err)
				}
				printFigures(stdout, fmt.Sprintf("compare %s run %d: %s", sc.name, i, sys.name()), figs, load)
				if rerr := sess[j].record(i, c.runs, figs, compareResult{System: sys.name(), Scenario: sc.name, Result: result}, load, err); rerr != nil {
					fmt.Fprintf(stderr, "results: %v\n", rerr)
				}
				pair[j] = figs
				noisy = noisy || load != nil && load.Noisy
				if failed || ctx.Err() != nil {
					break
				}
			}
			switch {
			case failed || ctx.Err() != nil:
				out.errs++
			case noisy && reruns < c.rerunNoisy:
				reruns++
				out.leftOut++
				fmt.Fprintf(stderr, "pair %d of %s was noisy: running another (%d of -rerun-noisy %d)\n", i, sc.name, reruns, c.rerunNoisy)
			default:
				out.add(0, pair[0])
				out.add(1, pair[1])
				pairs++
				if noisy {
					out.noisy++
				}
			}
		}
		printComparison(stdout, out, systems, c.runs)
		if ctx.Err() != nil {
			errs = append(errs, context.Cause(ctx))
			break
		}
	}
	if c.out != "" {
		fmt.Fprintf(stdout, "\nresults appended to %s (go run ./bench report -mode compare)\n", c.out)
	}
	return outcomes, errors.Join(errs...)
}

// compareResult is the result of one compare run in its JSON line.
type compareResult struct {
	System   string `json:"system"`
	Scenario string `json:"scenario"`
	Result   any    `json:"result"`
}

// compareArgs is args without -scenario, -centrifugo, -versus and their values, then -scenario
// name and -system key: what a JSON line records, so that `bench report` groups runs by scenario
// and system.
func compareArgs(args []string, scenario, system string) []string {
	return append(withoutFlags(args, "scenario", "centrifugo", "versus"), "-scenario", scenario, "-system", system)
}

// withoutFlags is args without the flags named and their values.
func withoutFlags(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if strings.HasPrefix(args[i], "-") && slices.Contains(names, name) {
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// add appends a run's figures to system j's values.
func (o *compareOutcome) add(j int, figs []figure) {
	for _, f := range figs {
		r := o.row(f.Name)
		if r == nil {
			r = &compareRow{name: f.Name, unit: f.Unit}
			o.rows = append(o.rows, r)
		}
		r.values[j] = append(r.values[j], f.Value)
	}
}

// ratios returns ours/theirs run by run, for the runs where both have a value and theirs is
// not zero.
func (r *compareRow) ratios() []float64 {
	var out []float64
	for i := 0; i < len(r.values[0]) && i < len(r.values[1]); i++ {
		if r.values[1][i] != 0 {
			out = append(out, r.values[0][i]/r.values[1][i])
		}
	}
	return out
}

// printComparison prints a scenario's figures side by side: median (min-max) for each system,
// and the ratio ours/theirs of the medians with the range of the run-by-run ratios.
func printComparison(w io.Writer, o *compareOutcome, systems [2]compareSystem, runs int) {
	n := 0
	if len(o.rows) > 0 {
		n = len(o.rows[0].values[0])
	}
	fmt.Fprintf(w, "\n== compare %s: %s; %d runs each, alternating (of -runs %d); median (min-max)\n", o.scenario.name, o.scenario.title, n, runs)
	if o.errs > 0 {
		fmt.Fprintf(w, "(%d pairs left out: a run failed)\n", o.errs)
	}
	if o.leftOut > 0 {
		fmt.Fprintf(w, "(%d noisy pairs left out and run again)\n", o.leftOut)
	}
	if o.noisy > 0 {
		fmt.Fprintf(w, "(%d of the pairs counted were noisy: other processes used more than %.2f cores; rerun on a quiet machine)\n", o.noisy, noisyCores)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tunit\t%s\t%s\tratio ours/theirs (min-max)\n", systems[0].name(), systems[1].name())
	for _, r := range o.rows {
		ratio := "-"
		if rs := r.ratios(); len(rs) > 0 {
			m0, _, _ := medianRange(r.values[0])
			m1, _, _ := medianRange(r.values[1])
			_, lo, hi := medianRange(rs)
			if m1 != 0 {
				ratio = fmt.Sprintf("%s (%s-%s)", fmtNum(m0/m1), fmtNum(lo), fmtNum(hi))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.name, r.unit, medRange(r.values[0]), medRange(r.values[1]), ratio)
	}
	tw.Flush()
}

func medRange(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	m, lo, hi := medianRange(v)
	if len(v) == 1 {
		return fmtNum(m)
	}
	return fmt.Sprintf("%s (%s-%s)", fmtNum(m), fmtNum(lo), fmtNum(hi))
}

// compareOnce starts sys on a fresh broker, runs sc against it and stops both.
func compareOnce(ctx context.Context, c *common, cc compareConfig, bin *binary, sys compareSystem, sc compareScenario, stderr io.Writer) ([]figure, any, *loadReport, error) {
	tgt, err := sys.start(ctx, c, bin, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer tgt.st.close()
	if sc.idle() {
		return compareIdle(ctx, tgt, cc, sc)
	}
	return compareDelivery(ctx, tgt, cc, sc, stderr)
}

// compareDeliveryResult is what a delivery scenario measured on one system.
type compareDeliveryResult struct {
	Produced      int64          `json:"produced"`
	ProduceErrors int64          `json:"produce_errors"`
	Expected      int64          `json:"expected"`
	Received      int64          `json:"received"`
	Lost          int64          `json:"lost"`
	Duplicates    int64          `json:"duplicates"`
	Misrouted     int64          `json:"misrouted"`
	Disconnects   map[string]int `json:"disconnects"`
	Window        float64        `json:"window_s"`
	Latency       latencySummary `json:"latency"`
}

// compareDelivery connects sc.users clients, makes sure each receives (probe records), then
// produces sc.rate records/s for sc.duration, each naming sc.fanout consecutive users, drains,
// and accounts for every frame as the latency mode does (receiver.go).
func compareDelivery(ctx context.Context, tgt *compareTarget, cc compareConfig, sc compareScenario, stderr io.Writer) ([]figure, any, *loadReport, error) {
	st := tgt.st
	p := &plan{run: randomHex(3), users: sc.users, fanout: sc.fanout, total: int64(math.Round(sc.rate * sc.duration.Seconds())), base: time.Now()}
	users := make([]string, sc.users)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
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
	pr := &producer{cl: cl}

	d := newDialer("ws-gorilla", st.url, 64<<10)
	recvs := make([]*receiver, sc.users)
	conns := make([]frameConn, sc.users)
	for i := range recvs {
		recvs[i] = newReceiver(p, i)
	}
	stopAll := func() {
		for i, fc := range conns {
			if fc != nil {
				recvs[i].stop(fc)
				conns[i] = nil
			}
		}
	}
	defer stopAll()
	if failed, err := connectEach(ctx, len(toks), cc.parallel, func(ctx context.Context, i int) (frameConn, error) {
		return tgt.dial(ctx, d, toks[i])
	}, func(i int, fc frameConn) {
		conns[i] = fc
		go recvs[i].serve(fc)
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("%d of %d connections failed: %w", failed, sc.users, err)
	}
	wrap := func(dst, value []byte, names []string) []byte { return append(dst, value...) }
	if tgt.envelope != nil {
		wrap = func(dst, value []byte, names []string) []byte {
			pre, post := tgt.envelope(names)
			return append(append(append(dst, pre...), value...), post...)
		}
	}
	if err := probeTopic(ctx, cl, tgt.topic, p, users, recvs, wrap); err != nil {
		return nil, nil, nil, err
	}

	mon := monitor(st)
	start := time.Now()
	type shape struct{ usersJSON, pre, post []byte }
	shapes := map[int]shape{}
	var value []byte
	var seq int64
	interval := float64(time.Second) / sc.rate
produce:
	for seq < p.total {
		due := min(p.total, int64(float64(time.Since(start))/interval)+1)
		for ; seq < due; seq++ {
			from, n := p.recipients(seq)
			sh, ok := shapes[from]
			if !ok {
				names := make([]string, n)
				for j := range names {
					names[j] = users[(from+j)%sc.users]
				}
				sh.usersJSON = usersJSON(names)
				if tgt.envelope != nil {
					sh.pre, sh.post = tgt.envelope(names)
				}
				shapes[from] = sh
			}
			// The send time is taken as the value is built, as in the latency mode.
			value = conceptValue(value[:0], p.run, seq, p.now(), sh.usersJSON)
			rec := make([]byte, 0, len(sh.pre)+len(value)+len(sh.post))
			rec = append(append(append(rec, sh.pre...), value...), sh.post...)
			pr.produce(ctx, &kgo.Record{Topic: tgt.topic, Key: []byte("c" + strconv.FormatInt(seq%1024, 10)), Value: rec})
		}
		select {
		case <-ctx.Done():
			break produce
		case <-time.After(time.Until(start.Add(time.Duration(float64(seq) * interval)))):
		}
	}
	window := time.Since(start)
	received := func() int64 {
		var n int64
		for _, r := range recvs {
			n += r.uniq.Load()
		}
		return n
	}
	inWindow := received()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cl.Flush(fctx)
	cancel()
	expected := pr.acked.Load() * int64(sc.fanout)
	drainStart, lastProgress, last := time.Now(), time.Now(), received()
	for last < expected && time.Since(drainStart) < cc.drain && time.Since(lastProgress) < cc.drainIdle && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := received(); n != last {
			last, lastProgress = n, time.Now()
		}
	}
	load := mon.stop()
	rss, _ := procRSS(st.nodePID)
	stopAll()

	res := compareDeliveryResult{
		Produced: pr.acked.Load(), ProduceErrors: pr.failed.Load(), Expected: expected,
		Disconnects: map[string]int{}, Window: window.Seconds(),
	}
	all := new(hist)
	for _, r := range recvs {
		res.Received += r.uniq.Load()
		res.Duplicates += r.dup
		res.Misrouted += r.misrouted
		all.merge(r.h)
		if r.endErr != nil {
			res.Disconnects[closeReason(r.endErr)]++
		}
	}
	res.Lost = res.Expected - res.Received
	res.Latency = all.summary()
	disc := 0
	for _, n := range res.Disconnects {
		disc += n
	}
	undelivered := 0.0
	if res.Expected > 0 {
		undelivered = float64(res.Lost) / float64(res.Expected) * 100
	}
	cpuPerRecord := 0.0
	if res.Produced > 0 {
		cpuPerRecord = load.Cores["server"] * load.Seconds / float64(res.Produced) * 1e6
	}
	figs := []figure{
		{"records/s produced", "1/s", float64(pr.sent.Load()) / window.Seconds()},
		{"deliveries/s", "1/s", float64(inWindow) / window.Seconds()},
		{"p50", "ms", res.Latency.P50},
		{"p99", "ms", res.Latency.P99},
		{"p99.9", "ms", res.Latency.P999},
		{"max", "ms", res.Latency.Max},
		{"lost", "", float64(res.Lost)},
		{"undelivered", "%", undelivered},
		{"duplicates", "", float64(res.Duplicates)},
		{"misrouted", "", float64(res.Misrouted)},
		{"disconnects", "", float64(disc)},
		{"server CPU per record", "µs", cpuPerRecord},
		{"server cores", "", load.Cores["server"]},
		{"server RSS", "MB", float64(rss) / (1 << 20)},
	}
	var runErr error
	if pe := pr.err(); pe != nil {
		runErr = fmt.Errorf("produce: %w", pe)
	}
	return figs, res, load, runErr
}

// compareIdleResult is what the idle scenario measured on one system.
type compareIdleResult struct {
	Conns        int   `json:"conns"`
	DialFailures int   `json:"dial_failures"`
	Dropped      int   `json:"dropped"`
	BaseRSS      int64 `json:"base_rss_bytes"`
	RSS          int64 `json:"rss_bytes"`
}

// compareIdle reads the server's RSS (/proc) after it settles, opens sc.conns client connections
// that only read (answering pings), waits cc.settle and reads it again: RSS per connection is the
// difference over the connections. Neither server is asked to collect garbage first.
func compareIdle(ctx context.Context, tgt *compareTarget, cc compareConfig, sc compareScenario) ([]figure, any, *loadReport, error) {
	st := tgt.st
	mon := monitor(st)
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := sleep(cc.settle); err != nil {
		return nil, nil, mon.stop(), err
	}
	res := compareIdleResult{Conns: sc.conns}
	var err error
	if res.BaseRSS, err = procRSS(st.nodePID); err != nil {
		return nil, nil, mon.stop(), err
	}
	users := make([]string, sc.conns)
	for i := range users {
		users[i] = "idle" + strconv.Itoa(i)
	}
	toks, err := st.tokens(users, 2*time.Hour)
	if err != nil {
		return nil, nil, mon.stop(), err
	}
	d := newDialer("ws-gorilla", st.url, 1024)
	clients := make([]*idleClient, sc.conns)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.closing.Store(true)
				cl.fc.close()
			}
		}
		for _, cl := range clients {
			if cl != nil {
				<-cl.done
			}
		}
	}()
	failed, derr := connectEach(ctx, sc.conns, cc.parallel, func(ctx context.Context, i int) (frameConn, error) {
		return tgt.dial(ctx, d, toks[i])
	}, func(i int, fc frameConn) {
		cl := &idleClient{fc: fc, done: make(chan struct{})}
		clients[i] = cl
		go func() {
			defer close(cl.done)
			fc.read(func([]byte) {})
			if !cl.closing.Load() {
				cl.ended.Store(true)
			}
		}()
	})
	res.DialFailures = failed
	if err := sleep(cc.settle); err != nil {
		return nil, nil, mon.stop(), err
	}
	if res.RSS, err = procRSS(st.nodePID); err != nil {
		return nil, nil, mon.stop(), err
	}
	for _, cl := range clients {
		if cl != nil && cl.ended.Load() {
			res.Dropped++
		}
	}
	held := sc.conns - failed - res.Dropped
	perConn := 0.0
	if held > 0 {
		perConn = float64(res.RSS-res.BaseRSS) / float64(held) / 1024
	}
	figs := []figure{
		{"connections held", "", float64(held)},
		{"RSS per connection", "KiB", perConn},
		{"server RSS", "MB", float64(res.RSS) / (1 << 20)},
		{"server RSS before", "MB", float64(res.BaseRSS) / (1 << 20)},
	}
	if derr != nil {
		derr = fmt.Errorf("%d of %d connections failed: %w", failed, sc.conns, derr)
	}
	return figs, res, mon.stop(), derr
}

// connectEach opens n connections with dial, parallel at a time, retrying each up to 3 times;
// start is called with each open one. It returns the number that failed and the first error.
func connectEach(ctx context.Context, n, parallel int, dial func(ctx context.Context, i int) (frameConn, error), start func(i int, fc frameConn)) (int, error) {
	type outcome struct {
		failed bool
		err    error
	}
	sem := make(chan struct{}, parallel)
	results := make(chan outcome, n)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results <- outcome{true, context.Cause(ctx)}
			continue
		}
		go func() {
			defer func() { <-sem }()
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				var fc frameConn
				if fc, err = dial(ctx, i); err == nil {
					start(i, fc)
					results <- outcome{}
					return
				}
				if ctx.Err() != nil {
					break
				}
				time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
			}
			results <- outcome{true, fmt.Errorf("connection %d: %w", i, err)}
		}()
	}
	failed := 0
	var first error
	for range n {
		o := <-results
		if o.failed {
			failed++
			if first == nil {
				first = o.err
			}
		}
	}
	return failed, first
}
