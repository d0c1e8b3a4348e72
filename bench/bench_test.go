package main

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestSmoke runs the load tool for a few seconds with small numbers against the real service
// (built and started as child processes, as `go run ./bench` does) and checks only correctness:
// every record reaches every user it names, once, and nobody else. The figures of BENCHMARKS.md
// come from full runs of the same code.
func TestSmoke(t *testing.T) {
	ctx, log, bin := buildForTest(t, 3*time.Minute, true)
	// One broker and node for every case: each run has its own run ID, so frames of an earlier
	// case cannot be counted in a later one.
	st, err := startStack(ctx, &common{transport: "ws", runs: 1}, bin, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()

	for _, tc := range []struct {
		name      string
		transport string
		cfg       deliveryConfig
	}{
		{"latency/ws", "ws", deliveryConfig{users: 10, fanout: 1, rate: 200, duration: 2 * time.Second}},
		{"fanout/ws", "ws", deliveryConfig{users: 20, fanout: 5, rate: 200, duration: 2 * time.Second}},
		{"latency/sse", "sse", deliveryConfig{users: 10, fanout: 1, rate: 200, duration: 2 * time.Second}},
		{"fanout/ws-gorilla", "ws-gorilla", deliveryConfig{users: 20, fanout: 5, rate: 200, duration: 2 * time.Second}},
		{"fanout/socketio", "socketio", deliveryConfig{users: 20, fanout: 5, rate: 200, duration: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &common{transport: tc.transport, runs: 1}
			tc.cfg.drain, tc.cfg.drainIdle = 15*time.Second, 10*time.Second
			tc.cfg.readBuf, tc.cfg.parallel = 4096, 16
			_, result, _, err := deliveryRun(ctx, st, c, tc.cfg, 1, log)
			if err != nil {
				t.Fatal(err)
			}
			res := result.(deliveryResult)
			want := int64(float64(tc.cfg.rate)*tc.cfg.duration.Seconds()) * int64(tc.cfg.fanout)
			if res.Expected != want || res.ProduceErrors != 0 {
				t.Errorf("expected %d deliveries with %d produce errors; want %d and 0", res.Expected, res.ProduceErrors, want)
			}
			if res.Lost != 0 || res.Duplicates != 0 || res.Misrouted != 0 {
				t.Errorf("lost %d, duplicates %d, misrouted %d of %d deliveries; want none", res.Lost, res.Duplicates, res.Misrouted, res.Expected)
			}
			if len(res.Disconnects) > 0 {
				t.Errorf("connections ended early: %v", res.Disconnects)
			}
			t.Logf("%d deliveries, p50 %.2f ms, p99 %.2f ms", res.Received, res.Latency.P50, res.Latency.P99)
		})
	}
}

// TestChaos is the "nothing missed" run of the issue, at its full size: 100 users with two
// clients each spread over two nodes and the three transports (WebSocket ?cursor=, SSE
// Last-Event-ID, Socket.IO recovery), each client resuming with its last cursor and the IDs it got
// after it, 10,000 records naming 1-3 users, every client dropping its connection at random and
// resuming on a random node, one node killed with SIGKILL and restarted. It fails unless every
// client ends with exactly its user's records, none of them twice (the clients send their IDs
// back), nothing misrouted, no resync. Both restart kinds run: the same node ID (its group
// resumes from its commits) and a new one (a replaced pod starting at the end); and the first
// again with 64 partitions per topic (issue 20: cursors as production topics make them), where
// the records must spread over all 64 partitions of their topic.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	bin, err := buildBinary(ctx, root, "", "", &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	defer bin.remove()
	for _, tc := range []struct {
		name       string
		restartAs  string
		partitions int // per topic; 0: the broker's default, 3
		seed       uint64
	}{
		{"restart-as-same", "same", 0, 1},
		{"restart-as-new", "new", 0, 3},
		{"partitions-64", "same", 64, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			defer func() {
				if t.Failed() {
					t.Logf("tool output:\n%s", log.String())
				}
			}()
			cfg := defaultChaos()
			cfg.rate, cfg.restartAs, cfg.drain, cfg.seed = 1000, tc.restartAs, 45*time.Second, tc.seed
			c := &common{transport: "ws", runs: 1, partitions: tc.partitions, env: listFlag{"REALTIME_PING_INTERVAL=1000"}}
			st, err := startStack(ctx, c, bin, &log)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			_, result, _, err := chaosRun(ctx, st, cfg, &log)
			if err != nil {
				t.Fatal(err)
			}
			res := result.(chaosResult)
			if res.Expected == 0 || res.Received != res.Expected || res.Resumes == 0 || res.ResumesOther == 0 {
				t.Fatalf("received %d of %d deliveries over %d resumes (%d on the other node); want all, and resumes on both nodes", res.Received, res.Expected, res.Resumes, res.ResumesOther)
			}
			if want := max(tc.partitions, 3); res.Partitions != want {
				t.Fatalf("the records went to %d partitions of %s; want all %d", res.Partitions, topicConcepts, want)
			}
			t.Logf("%d deliveries to %d clients over %d partitions, %d resumes (%d on the other node), catch-up p99 %.1f ms",
				res.Expected, res.Clients, res.Partitions, res.Resumes, res.ResumesOther, res.CatchUp.P99)
		})
	}
}

// TestResume is a small run of the resume mode, checking only correctness: a client that
// missed 100 records of its user (among records for other users) and resumes with its cursor
// gets exactly those 100, each once, in partition order, then a live one; on a node with the
// default history every replay comes from memory, on one whose REALTIME_HISTORY_SIZE is below
// 100 every replay comes from Kafka (the node's realtime_replays_total says so), over WebSocket
// and SSE. The times of BENCHMARKS.md come from full runs of the same code.
func TestResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	bin, err := buildBinary(ctx, root, "", "", &log, flags...)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	defer bin.remove()
	for _, source := range []string{"memory", "kafka"} {
		t.Run(source, func(t *testing.T) {
			var log bytes.Buffer
			defer func() {
				if t.Failed() {
					t.Logf("tool output:\n%s", log.String())
				}
			}()
			cfg := defaultResume()
			cfg.source, cfg.iterations, cfg.warmup, cfg.noise, cfg.noiseUsers = source, 8, 1, 3, 50
			c := &common{transport: "ws", runs: 1}
			if source == "kafka" {
				c.env = listFlag{"REALTIME_HISTORY_SIZE=" + strconv.Itoa(cfg.kafkaHistory)}
			}
			st, err := startStack(ctx, c, bin, &log)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			for _, transport := range []string{"ws", "sse", "socketio"} {
				_, result, _, err := resumeRun(ctx, st, transport, cfg, &log)
				if err != nil {
					t.Fatalf("%s: %v", transport, err)
				}
				res := result.(resumeResult)
				resumes := float64(cfg.warmup + cfg.iterations)
				if res.Iterations != cfg.iterations || res.Replays[source] != resumes || res.Replayed != resumes*float64(cfg.missed) || len(res.Resyncs) > 0 {
					t.Fatalf("%s: %d resumes measured, replays %v, %v events replayed, resyncs %v; want %d, %v from %s, %v, none",
						transport, res.Iterations, res.Replays, res.Replayed, res.Resyncs, cfg.iterations, resumes, source, resumes*float64(cfg.missed))
				}
				t.Logf("%s from %s: %d resumes of %d missed events, p50 %.2f ms, max %.2f ms", transport, source, res.Iterations, cfg.missed, res.CatchUp.P50, res.CatchUp.Max)
			}
		})
	}
}

// TestHist checks the histogram's bucketing and quantiles against exact values.
func TestHist(t *testing.T) {
	var h hist
	for v := int64(1); v <= 100000; v++ {
		h.record(v * 1000) // 1 µs .. 100 ms
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 50_000_000}, {0.99, 99_000_000}, {0.999, 99_900_000}, {1, 100_000_000}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d > 0.016 || d < -0.016 {
			t.Errorf("quantile(%v) = %d, want %d within 1.6%%", tc.q, got, tc.want)
		}
	}
	for _, v := range []int64{0, 1, 63, 64, 127, 128, 1 << 20, 1<<40 + 5} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if v < 1<<39 {
			if got := histValue(i); float64(got-v) > float64(v)/64+1 || got < v-v/64-1 {
				t.Errorf("histValue(histIndex(%d)) = %d", v, got)
			}
		}
	}
}

// TestPlan checks that each record names exactly fanout users and that named agrees.
func TestPlan(t *testing.T) {
	p := &plan{users: 7, fanout: 3, total: 50}
	for seq := int64(0); seq < p.total; seq++ {
		from, n := p.recipients(seq)
		count := 0
		for u := 0; u < p.users; u++ {
			if p.named(seq, u) {
				count++
				if d := (u - from + p.users) % p.users; d >= n {
					t.Fatalf("seq %d: user %d named but outside [%d, +%d)", seq, u, from, n)
				}
			}
		}
		if count != p.fanout {
			t.Fatalf("seq %d names %d users, want %d", seq, count, p.fanout)
		}
	}
}

// TestReceiver checks the accounting of one connection's frames.
func TestReceiver(t *testing.T) {
	p := &plan{run: "abc", users: 4, fanout: 1, total: 8, base: time.Now()}
	r := newReceiver(p, 1)
	frame := func(s string) []byte {
		return []byte(`{"id":"x","event":"concept-mastered","data":{"bench":"` + s + `","conceptId":"c"}}`)
	}
	r.onFrame(frame("abc.1.5")) // seq 1 -> user 1: delivered
	r.onFrame(frame("abc.1.5")) // duplicate
	r.onFrame(frame("abc.2.5")) // seq 2 -> user 2: misrouted
	r.onFrame(frame("zzz.1.5")) // another run
	r.onFrame(frame("abc.p3"))  // probe
	r.onFrame([]byte(`{"id":"","event":"resync"}`))
	if r.uniq.Load() != 1 || r.dup != 1 || r.misrouted != 1 || r.foreign != 1 || r.control != 1 || !r.probe.Load() {
		t.Errorf("uniq %d dup %d misrouted %d foreign %d control %d probe %v", r.uniq.Load(), r.dup, r.misrouted, r.foreign, r.control, r.probe.Load())
	}
}
