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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what wrk's done() in bench/wrk/concept-mastered.lua prints, plus the broker check.
type wrkResult struct {
	Command       string  `json:"command"`
	Requests      int64   `json:"requests"`
	DurationUS    int64   `json:"duration_us"`
	Bytes         int64   `json:"bytes"`
	ErrorsConnect int64   `json:"errors_connect"`
	ErrorsRead    int64   `json:"errors_read"`
	ErrorsWrite   int64   `json:"errors_write"`
	ErrorsStatus  int64   `json:"errors_status"` // answers other than 2xx/3xx
	ErrorsTimeout int64   `json:"errors_timeout"`
	MeanUS        float64 `json:"mean_us"`
	P50US         int64   `json:"p50_us"`
	P90US         int64   `json:"p90_us"`
	P99US         int64   `json:"p99_us"`
	P999US        int64   `json:"p999_us"`
	MaxUS         int64   `json:"max_us"`
	RequestsPS    float64 `json:"requests_per_s"`
	BrokerDelta   int64   `json:"broker_delta"` // records the topic grew by while wrk ran
}

func runWrk(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wrk", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	conns := fs.Int("conns", 64, "wrk -c: connections")
	threads := fs.Int("threads", 2, "wrk -t: threads")
	duration := fs.Duration("duration", 30*time.Second, "wrk -d")
	wrkBin := fs.String("wrk", "wrk", "the wrk binary (Debian package wrk)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	path, err := exec.LookPath(*wrkBin)
	if err != nil {
		return fmt.Errorf("wrk not found (apt-get install -y wrk): %w", err)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	script := filepath.Join(root, "bench", "wrk", "concept-mastered.lua")
	perRun := *duration + 2*time.Minute
	return repeat(ctx, "wrk", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		url := st.url + "/v1/notifications/concept-mastered"
		wargs := []string{"-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*conns), "-d" + strconv.Itoa(int(duration.Seconds())) + "s", "--latency", "-s", script, url}
		res := wrkResult{Command: "API_KEY=<key> wrk " + strings.Join(wargs, " ")}
		var before int64
		if len(st.brokers) > 0 {
			if before, err = endOffsets(ctx, st.brokers, topicConcepts); err != nil {
				return nil, nil, nil, err
			}
		}
		cmd := exec.CommandContext(ctx, path, wargs...)
		cmd.Env = append(os.Environ(), "API_KEY="+st.apiKey)
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, stderr)
		cmd.Stderr = stderr
		mon := monitor(st)
		profDone := cpuProfile(ctx, st, *duration-time.Second, profilePath(c.cpuProfile, run))
		err := cmd.Start()
		if err == nil {
			mon.started("wrk", cmd.Process.Pid)
			err = cmd.Wait()
		}
		load := mon.stop()
		if perr := <-profDone; perr != nil {
			fmt.Fprintf(stderr, "cpu profile: %v\n", perr)
		}
		if err != nil {
			return nil, res, load, fmt.Errorf("wrk: %w", err)
		}
		found := false
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			if j, ok := strings.CutPrefix(sc.Text(), "WRKJSON "); ok {
				if err := json.Unmarshal([]byte(j), &res); err != nil {
					return nil, res, load, fmt.Errorf("wrk output: %w", err)
				}
				found = true
			}
		}
		if !found {
			return nil, res, load, errors.New("wrk printed no WRKJSON line: is the script's done() running?")
		}
		res.Command = "API_KEY=<key> wrk " + strings.Join(wargs, " ")
		if res.DurationUS > 0 {
			res.RequestsPS = float64(res.Requests) / (float64(res.DurationUS) / 1e6)
		}
		if len(st.brokers) > 0 {
			after, err := endOffsets(ctx, st.brokers, topicConcepts)
			if err != nil {
				return nil, res, load, err
			}
			res.BrokerDelta = after - before
		}
		errs := res.ErrorsConnect + res.ErrorsRead + res.ErrorsWrite + res.ErrorsStatus + res.ErrorsTimeout
		figs := []figure{
			{"requests/s", "1/s", res.RequestsPS},
			{"p50", "ms", float64(res.P50US) / 1000},
			{"p90", "ms", float64(res.P90US) / 1000},
			{"p99", "ms", float64(res.P99US) / 1000},
			{"p99.9", "ms", float64(res.P999US) / 1000},
			{"max", "ms", float64(res.MaxUS) / 1000},
			{"errors", "", float64(errs)},
			{"broker delta - 2xx", "records", float64(res.BrokerDelta - (res.Requests - res.ErrorsStatus))},
		}
		return figs, res, load, nil
	})
}
