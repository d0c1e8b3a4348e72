package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// common holds the flags every mode has: where the node is (owned or -target), how often to
// repeat, the time bound, where results and profiles go.
type common struct {
	// An already running node instead of an owned stack.
	target    string // base URL, http://127.0.0.1:3000
	brokers   string // its Kafka seed brokers (for modes that produce to Kafka)
	secret    string // its REALTIME_JWT_SECRET
	apiKey    string // one of its REALTIME_API_KEYS
	debugAddr string // its DEBUG_ADDR, for profiles and forced GCs
	pid       int    // its process ID, for RSS and CPU time

	bin string   // a prebuilt service binary; empty: go build ./cmd/realtime-service
	rev string   // build the service from this git revision instead of the working tree
	env listFlag // extra KEY=VALUE for the owned node (GOGC, REALTIME_SEND_QUEUE_BYTES, ...)
	// partitions of each topic the owned broker creates (KAFKA_EMBEDDED_PARTITIONS); 0: its
	// default, 3.
	partitions int
	runs       int // repetitions, each on a fresh owned stack
	timeout    time.Duration
	out        string // JSON lines file; "" disables
	chart      string // after the runs, draw the charts of out into this directory; "" disables
	note       string // free text recorded with the run

	cpuProfile  string // server CPU profile taken during the measurement window
	heapProfile string // server heap profile at the end of the measurement
	selfProfile string // the load tool's own CPU profile

	transport  string        // ws, ws-gorilla, sse, socketio
	tokenAlg   string        // HS256, RS256, ES256: how client tokens are signed (see tokenSigner)
	quiet      time.Duration // before each run, wait up to this long for the machine to be idle
	rerunNoisy int           // run up to this many more times when a run was noisy
}

func (c *common) register(fs *flag.FlagSet, defaultTransport string) {
	fs.StringVar(&c.target, "target", "", "base URL of an already running node (e.g. http://127.0.0.1:3000); default: build and start a broker and a node")
	fs.StringVar(&c.brokers, "brokers", "", "with -target: the node's Kafka seed brokers, host:port[,host:port]")
	fs.StringVar(&c.secret, "jwt-secret", "", "with -target: the node's REALTIME_JWT_SECRET (client tokens are signed with it)")
	fs.StringVar(&c.apiKey, "api-key", "", "with -target: one of the node's REALTIME_API_KEYS")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "with -target: the node's DEBUG_ADDR (pprof), for profiles and forced GCs")
	fs.IntVar(&c.pid, "pid", 0, "with -target: the node's process ID, for its RSS and CPU time")
	fs.StringVar(&c.bin, "bin", "", "a prebuilt realtime-service binary (default: go build ./cmd/realtime-service into a temp dir)")
	fs.StringVar(&c.rev, "rev", "", "build the service from this git revision (e.g. HEAD: the last commit, without uncommitted changes) instead of the working tree")
	fs.Var(&c.env, "env", "KEY=VALUE added to the owned node's environment (repeatable), e.g. -env GOGC=200")
	fs.IntVar(&c.partitions, "partitions", 0, "partitions of each topic the owned broker creates (KAFKA_EMBEDDED_PARTITIONS; 0: its default, 3); the cursor frames grow with it, events do not")
	fs.IntVar(&c.runs, "runs", 1, "repeat the scenario this many times, each on a fresh stack; prints median (min-max)")
	fs.DurationVar(&c.timeout, "timeout", 0, "hard bound for the whole invocation (default: derived from the scenario)")
	fs.StringVar(&c.out, "out", "bench/results.jsonl", "append one JSON line per run to this file (relative to the module root); empty disables")
	fs.StringVar(&c.chart, "chart", "", "after the runs, draw the SVG charts of the -out file into this directory (as go run ./bench chart does), e.g. bench/charts")
	fs.StringVar(&c.note, "note", "", "free text recorded in the JSON line")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the node, taken during the measurement window, to this file (run i>1 gets .i)")
	fs.StringVar(&c.heapProfile, "heapprofile", "", "write a heap profile of the node, taken at the end of the measurement, to this file")
	fs.StringVar(&c.selfProfile, "selfprofile", "", "write a CPU profile of the load tool itself to this file")
	fs.DurationVar(&c.quiet, "wait-quiet", 0, "before each run, wait up to this long until the machine is idle (under 0.15 busy cores over 3 s), so that other processes do not skew it")
	fs.IntVar(&c.rerunNoisy, "rerun-noisy", 0, "when a run is noisy (other processes used more than 0.25 cores), run up to this many more; the summary leaves noisy runs out")
	fs.StringVar(&c.tokenAlg, "token-alg", "HS256", "how client tokens are signed: HS256 (the node's REALTIME_JWT_SECRET), RS256 (RSA-2048) or ES256 (P-256); RS256 and ES256 make a key pair per stack and start the node with REALTIME_JWKS_URL, a JWK Set this tool serves on loopback, and no secret")
	fs.StringVar(&c.transport, "transport", defaultTransport, "client transport: ws (/v1/ws, the tool's own lean RFC 6455 client), ws-gorilla (/v1/ws with gorilla/websocket), sse (/v1/events) or socketio (/socket.io/, Engine.IO v4 WebSocket transport)")
}

func (c *common) check() error {
	switch c.transport {
	case "ws", "ws-gorilla", "sse", "socketio":
	default:
		return fmt.Errorf("-transport %q: want ws, ws-gorilla, sse or socketio", c.transport)
	}
	if c.partitions < 0 || c.partitions > 1000 {
		return fmt.Errorf("-partitions %d: want 0 (the broker's default) to 1000", c.partitions)
	}
	if c.partitions > 0 && c.target != "" {
		return fmt.Errorf("-partitions sets up the owned broker's topics; with -target the broker is not ours")
	}
	if !slices.Contains(tokenAlgs, c.tokenAlg) {
		return fmt.Errorf("-token-alg %q: want one of %v", c.tokenAlg, tokenAlgs)
	}
	if c.target != "" && c.tokenAlg != "HS256" {
		return fmt.Errorf("-token-alg %s needs an owned stack (the node must trust this tool's key); -target signs HS256 with -jwt-secret", c.tokenAlg)
	}
	if c.runs < 1 || c.rerunNoisy < 0 {
		return fmt.Errorf("-runs %d -rerun-noisy %d: want at least 1 and at least 0", c.runs, c.rerunNoisy)
	}
	if c.chart != "" && c.out == "" {
		return fmt.Errorf("-chart draws the -out file; -out is empty")
	}
	if c.bin != "" && c.rev != "" {
		return fmt.Errorf("-bin and -rev exclude each other")
	}
	if c.target != "" && c.secret == "" {
		return fmt.Errorf("-target needs -jwt-secret (the node's REALTIME_JWT_SECRET) to sign client tokens")
	}
	return nil
}

// profilePath is path for run i (1-based): path itself for the first run, path.i after.
func profilePath(path string, i int) string {
	if path == "" || i == 1 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// intList is a comma-separated list of positive integers, e.g. 1000,10000.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("%q: want positive integers separated by commas", v)
		}
		*l = append(*l, n)
	}
	return nil
}

// parseFlags parses args into fs; -h prints the flags and returns errUsage.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		return errUsage
	}
	return nil
}
