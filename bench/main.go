// Command bench is realtime-service's load tool. Each mode measures one scenario of BENCHMARKS.md:
//
//	go run ./bench latency [flags]   K users, one connection each, R records/s for T, each to 1 user
//	go run ./bench fanout  [flags]   the same with each record naming M of the K users
//	go run ./bench idle    [flags]   N idle connections: server RSS, Go heap, goroutines per connection
//	go run ./bench produce [flags]   HTTP load on the produce endpoints (notification, record, batch)
//	go run ./bench wrk     [flags]   wrk against POST /v1/notifications/concept-mastered
//	go run ./bench storm   [flags]   N clients reconnect at once after a server restart
//	go run ./bench chaos   [flags]   two nodes, clients dropping and resuming, a node killed: nothing missed
//	go run ./bench resume  [flags]   one client misses M records and resumes: time to catch up, from memory or Kafka
//	go run ./bench flood   [flags]   N unauthenticated Socket.IO handshakes while a user receives: RSS, its latency
//	go run ./bench oversize [flags]  C unauthenticated Socket.IO clients each send 1 MB: RSS, close codes
//	go run ./bench poison  [flags]   a burst of poison records among valid ones: added p99, dead letters
//	go run ./bench replayburst [flags] one user's 100 simultaneous Kafka resumes: another user's resume time
//	go run ./bench compare [flags]   the same scenarios against realtime-service and Centrifugo, alternating
//	go run ./bench serve   [flags]   start the stack and print its addresses, for manual runs
//	go run ./bench report  [flags]   medians and ranges of the quiet runs in bench/results.jsonl
//	go run ./bench chart   [flags]   SVG charts of bench/results.jsonl: latency, fan-out, memory, versus Centrifugo
//
// By default it owns what it measures: it builds ./cmd/realtime-service into a temporary
// directory and starts, as child processes, `realtime-service broker` (the embedded Kafka broker)
// and one node pointed at it, on free loopback ports, and stops both at the end, on Ctrl-C and at
// its time bound (-timeout). -target points it at a node that is already running instead.
//
// It talks only to loopback. Each run prints a table and appends one JSON line to
// bench/results.jsonl (-out), with the machine load during the run (load average, the CPU time of
// the server, the broker and the tool, and the CPU time of everything else) so that noisy runs
// can be told apart. -runs N repeats a scenario on a fresh stack and prints the median and the
// range of each figure. -chart DIR then draws the results file's SVG charts into DIR, as the chart
// mode does.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: go run ./bench <mode> [flags]

modes:
  latency   K users x 1 connection, R records/s for T, each record to one user (-users -rate -duration)
  fanout    K users, R records/s, each record to M users (-users -fanout -rate -duration)
  idle      N idle connections; RSS, heap and goroutines per connection (-conns 1000,10000)
  produce   HTTP load on one produce endpoint (-endpoint notification|session|record|batch -conns -duration)
  wrk       wrk (Debian package wrk) against POST /v1/notifications/concept-mastered (-conns -duration)
  storm     N clients reconnect at once after a server restart (-conns; -token-alg RS256|ES256: tokens
            verified with a JWK Set); reports connections/s and the new node's CPU
  chaos     2 nodes, K users' clients drop and resume at random, a node is SIGKILLed and restarted;
            asserts every client holds exactly its user's records, none twice, none misrouted, no resync
            (-users -events -partitions)
  resume    a client misses M records (-missed 100) and resumes with its cursor and the IDs it got
            after it, -iterations times; time from the dial to the last missed event, replayed from
            -source memory or kafka;
            asserts exactly the missed events arrive, in partition order, then a live one
  flood     -handshakes N unauthenticated Engine.IO handshakes (GET /socket.io/?EIO=4&transport=polling,
            no token) spread over -duration from -addresses source addresses 127.1.x.y (1: a single
            address), while an authenticated /v1/ws user receives -rate records/s; reports the node's
            RSS (peak, end), the user's p50/p99 during the flood, answers by status (200/429/503),
            realtime_admission_*, and how long the node takes to drop the sessions (-settle)
  oversize  -conns C unauthenticated Socket.IO clients connect, then each sends one -size message
            (-transport websocket: want close 1009; polling: one POST body, want 413); reports the
            node's RSS peak and after, close codes or statuses
  poison    -poison P records that fail validation produced to the consumed topic in -batch
            batches while valid records flow to a user at -rate/s; reports its p99 during the burst
            against the -baseline window (the added p99), missing valid records, the dead-letter
            topic's growth and the node's log lines naming it
  replayburst  user A opens -resumes simultaneous resumes from an old cursor (replayed from Kafka:
            the node's REALTIME_HISTORY_SIZE is 10) while user B resumes once; B's resume time
            alone and during the burst (-iterations pairs)
  compare   realtime-service and Centrifugo (-centrifugo PATH or $CENTRIFUGO_BIN; nothing is installed)
            side by side, alternating run by run on a fresh broker each (-runs 3): latency at 1,000
            and 10,000 records/s to 100 users, fan-out of each record to 1,000 users, 10,000 idle
            WebSocket connections (-scenario latency-1000,latency-10000,fanout,idle or all);
            prints both medians (min-max) and the ratio ours/theirs with the range of the
            run-by-run ratios
  serve     start the broker and a node, print their addresses, wait (-duration or Ctrl-C)
  report    median (min-max) of each scenario's quiet runs in bench/results.jsonl, by commit
  chart     SVG charts of the runs in bench/results.jsonl (-in) into bench/charts (-out): latency.svg,
            fanout.svg, memory.svg and versus-centrifugo.svg

Run "go run ./bench <mode> -h" for a mode's flags.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// run dispatches to a mode. SIGINT and SIGTERM cancel ctx: the mode stops, reports what it has
// measured so far when that makes sense, and stops the processes it started.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	raiseFileLimit()
	mode, rest := args[0], args[1:]
	switch mode {
	case "latency", "fanout":
		return runDelivery(ctx, mode, rest, stdout, stderr)
	case "idle":
		return runIdle(ctx, rest, stdout, stderr)
	case "produce":
		return runProduce(ctx, rest, stdout, stderr)
	case "wrk":
		return runWrk(ctx, rest, stdout, stderr)
	case "storm":
		return runStorm(ctx, rest, stdout, stderr)
	case "chaos":
		return runChaos(ctx, rest, stdout, stderr)
	case "resume":
		return runResume(ctx, rest, stdout, stderr)
	case "flood":
		return runFlood(ctx, rest, stdout, stderr)
	case floodWorkerMode: // the flood's attacking side, in a process of its own (see flood.go)
		return runFloodWorker(ctx, rest, stdout)
	case "oversize":
		return runOversize(ctx, rest, stdout, stderr)
	case "poison":
		return runPoison(ctx, rest, stdout, stderr)
	case "replayburst":
		return runReplayBurst(ctx, rest, stdout, stderr)
	case "compare":
		return runCompare(ctx, rest, stdout, stderr)
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "report":
		return runReport(ctx, rest, stdout, stderr)
	case "chart":
		return runChart(ctx, rest, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown mode %q\n\n%s", mode, usage)
	return errUsage
}
