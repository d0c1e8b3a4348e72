package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"
)

// scenario is one run of a mode against a ready stack. It returns the figures for the table
// (in display order), the full result for the JSON line, and the machine load during the
// measurement.
type scenario func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error)

// repeat runs sc c.runs times, each on a fresh owned stack (or against -target), within the time
// bound: c.timeout, or perRun (plus -wait-quiet) per run and a minute for building when it is zero. It prints each
// run's table, appends its JSON line and, after several runs, prints medians and ranges.
func repeat(ctx context.Context, mode string, args []string, c *common, perRun time.Duration, stdout, stderr io.Writer, sc scenario) error {
	bound := c.timeout
	if bound <= 0 {
		bound = time.Minute + time.Duration(c.runs+c.rerunNoisy)*(perRun+c.quiet)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, bound, fmt.Errorf("time bound of %v reached (-timeout)", bound))
	defer cancel()

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	sess := newSession(mode, args, c, root, stdout)
	var bin *binary
	if c.target == "" {
		if bin, err = buildBinary(ctx, root, c.bin, c.rev, stderr); err != nil {
			return err
		}
		defer bin.remove()
	}
	if c.selfProfile != "" {
		f, err := os.Create(c.selfProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	var errs []error
	clean, noisy := 0, 0
	for i := 1; clean < c.runs && i <= c.runs+c.rerunNoisy; i++ {
		if ctx.Err() != nil {
			errs = append(errs, context.Cause(ctx))
			break
		}
		figs, result, load, err := runOnce(ctx, c, bin, stderr, sc, i)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
			}
			errs = append(errs, fmt.Errorf("run %d: %w", i, err))
			fmt.Fprintf(stderr, "run %d failed: %v\n", i, err)
		}
		if rerr := sess.record(i, c.runs, figs, result, load, err); rerr != nil {
			fmt.Fprintf(stderr, "results: %v\n", rerr)
		}
		switch {
		case err != nil:
		case load != nil && load.Noisy && noisy < c.rerunNoisy:
			noisy++
			fmt.Fprintf(stderr, "run %d was noisy (other processes used %.2f cores): running another (%d of -rerun-noisy %d)\n", i, load.OtherCores, noisy, c.rerunNoisy)
		default:
			clean++
		}
	}
	sess.summarize()
	if sess.out != "" {
		fmt.Fprintf(stdout, "\nresults appended to %s\n", sess.out)
	}
	if c.chart != "" {
		dir := c.chart
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		errs = append(errs, chartAfterRuns(sess.out, dir, root, stdout))
	}
	return errors.Join(errs...)
}

func runOnce(ctx context.Context, c *common, bin *binary, stderr io.Writer, sc scenario, i int) ([]figure, any, *loadReport, error) {
	if c.quiet > 0 {
		waitQuiet(ctx, c.quiet, stderr)
	}
	st, err := startStack(ctx, c, bin, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	defer st.close()
	return sc(ctx, st, i)
}

// monitor starts the load monitor over the stack's processes and this tool.
func monitor(st *stack) *loadMonitor {
	node, broker := st.pids()
	return startLoadMonitor(map[string]int{"server": node, "broker": broker, "tool": os.Getpid()})
}

// quietCores is the machine's busy CPU under which waitQuiet starts a run.
const quietCores = 0.15

// waitQuiet waits until the machine's busy CPU over 3 s is under quietCores, or limit passes.
func waitQuiet(ctx context.Context, limit time.Duration, stderr io.Writer) {
	deadline := time.Now().Add(limit)
	waited := false
	for {
		a := readCPUStat()
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
		busy := float64(readCPUStat().busy-a.busy) / clockTicks / 3
		if busy < quietCores {
			if waited {
				fmt.Fprintf(stderr, "machine quiet (%.2f busy cores); starting\n", busy)
			}
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "machine still busy (%.2f cores) after %v; starting anyway\n", busy, limit)
			return
		}
		if !waited {
			fmt.Fprintf(stderr, "waiting for the machine to be quiet (%.2f busy cores)...\n", busy)
			waited = true
		}
	}
}

// chartAfterRuns draws the charts of the results file into dir (-chart), with Centrifugo's
// figures when the repository has them. A mode without charts writes none and says so.
func chartAfterRuns(results, dir, root string, stdout io.Writer) error {
	versus := filepath.Join(root, "docs/benchmarks/centrifugo.json")
	if _, err := os.Stat(versus); err != nil {
		versus = ""
	}
	files, err := writeCharts(results, dir, versus, "")
	if errors.Is(err, errNothingToChart) {
		fmt.Fprintf(stdout, "no charts: %v\n", err)
		return nil
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "chart: %s\n", f)
	}
	return err
}
