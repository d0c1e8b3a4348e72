package main

import (
	"testing"
	"time"
)

// TestAttackModes runs the attack modes at tiny sizes against the real service (built and
// started as child processes, as `go run ./bench` does), so that they keep working; it checks
// that each run accounts for everything it sent, not the figures (those come from full runs).
func TestAttackModes(t *testing.T) {
	ctx, log, bin := buildForTest(t, 3*time.Minute, false)
	st, err := startStack(ctx, &common{transport: "ws", runs: 1, env: listFlag{"REALTIME_HISTORY_SIZE=10"}}, bin, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()

	t.Run("flood", func(t *testing.T) {
		cfg := defaultFlood()
		cfg.handshakes, cfg.duration, cfg.addresses, cfg.workers, cfg.perConn = 200, time.Second, 20, 8, 10
		cfg.baseline, cfg.settle = 500*time.Millisecond, 100*time.Millisecond
		_, result, _, err := floodRun(ctx, st, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		res := result.(floodResult)
		answered := res.Status["200"] + res.Status["429"] + res.Status["503"]
		if res.Handshakes != 200 || answered != 200 {
			t.Errorf("%d handshakes sent, %d answered 200, 429 or 503 (%v); want 200 and 200", res.Handshakes, answered, res.Status)
		}
		if res.Victim.Missing != 0 || res.Victim.Produced[phaseNames[phaseAttack]] == 0 {
			t.Errorf("the victim missed %d records, %d produced during the flood; want none missed, some produced", res.Victim.Missing, res.Victim.Produced[phaseNames[phaseAttack]])
		}
		if res.RSSPeak <= 0 {
			t.Errorf("no RSS peak measured")
		}
	})
	for _, transport := range []string{"websocket", "polling"} {
		t.Run("oversize/"+transport, func(t *testing.T) {
			cfg := defaultOversize()
			cfg.conns, cfg.transport, cfg.perAddress, cfg.settle = 10, transport, 5, 0
			_, result, _, err := oversizeRun(ctx, st, cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			res := result.(oversizeResult)
			var accepted, outcomes int64
			for k, n := range res.Handshakes {
				if k == "101" || k == "200" {
					accepted += n
				}
			}
			for _, n := range res.Outcomes {
				outcomes += n
			}
			if accepted != 10 || outcomes != 10 {
				t.Errorf("%d of 10 handshakes accepted (%v), %d outcomes (%v); want 10 and 10", accepted, res.Handshakes, outcomes, res.Outcomes)
			}
		})
	}
	t.Run("poison", func(t *testing.T) {
		cfg := defaultPoison()
		cfg.poison, cfg.batch, cfg.baseline, cfg.after, cfg.limit = 200, 50, 500*time.Millisecond, 200*time.Millisecond, 30*time.Second
		_, result, _, err := poisonRun(ctx, st, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		res := result.(poisonResult)
		if res.DLQDelta != 200 || res.Victim.Missing != 0 {
			t.Errorf("dead-letter topic grew by %d, %d valid records missing; want 200 and 0", res.DLQDelta, res.Victim.Missing)
		}
	})
	t.Run("replayburst", func(t *testing.T) {
		cfg := defaultReplayBurst()
		cfg.resumes, cfg.missedA, cfg.missedB, cfg.noise, cfg.iterations, cfg.timeout = 5, 30, 20, 100, 1, 30*time.Second
		_, result, _, err := replayBurstRun(ctx, st, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		res := result.(replayBurstResult)
		if res.Iterations != 1 || len(res.AFailed) > 0 || res.Replays["kafka"] != 7 || len(res.Resyncs) > 0 {
			t.Errorf("%d iterations, A failed %v, replays %v, resyncs %v; want 1, none, 7 from kafka, none", res.Iterations, res.AFailed, res.Replays, res.Resyncs)
		}
	})
}
