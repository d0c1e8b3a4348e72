package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	client "github.com/realtime-service/realtime-service/clients/go"
)

// produceConfig is an HTTP produce run.
type produceConfig struct {
	endpoint string
	conns    int
	duration time.Duration
	warmup   time.Duration
	batch    int
	topic    string
}

type produceResult struct {
	Endpoint    string         `json:"endpoint"`
	Path        string         `json:"path"`
	Conns       int            `json:"conns"`
	Batch       int            `json:"batch"`
	Duration    float64        `json:"duration_s"`
	Requests    int64          `json:"requests"` // answered 201
	Records     int64          `json:"records"`  // acknowledged records in those
	Errors      map[string]int `json:"errors"`   // other answers, by status or error kind
	RequestsPS  float64        `json:"requests_per_s"`
	RecordsPS   float64        `json:"records_per_s"`
	Latency     latencySummary `json:"latency"`
	BrokerDelta int64          `json:"broker_delta"` // growth of the topic's end offsets during the run (warm-up included)
	AckedTotal  int64          `json:"acked_total"`  // records acknowledged during the run, warm-up included
	Server      nodeStats      `json:"server"`
}

func runProduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	var pc produceConfig
	fs.StringVar(&pc.endpoint, "endpoint", "notification", "notification (POST /v1/notifications/concept-mastered), session (…/session-starting-soon), record (POST /v1/topics/{topic}/records, one record) or batch (the same with -batch records)")
	fs.IntVar(&pc.conns, "conns", 64, "concurrent connections, each sending one request at a time")
	fs.DurationVar(&pc.duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&pc.warmup, "warmup", 2*time.Second, "load before measuring, not counted")
	fs.IntVar(&pc.batch, "batch", 1000, "records per request with -endpoint batch (at most 10,000)")
	fs.StringVar(&pc.topic, "topic", topicConcepts, "topic of -endpoint record and batch")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if pc.conns < 1 || pc.batch < 1 || pc.batch > 10000 {
		return errors.New("want -conns >= 1 and 1 <= -batch <= 10000")
	}
	if _, _, err := produceBody(pc, 0); err != nil {
		return err
	}
	perRun := pc.warmup + pc.duration + 2*time.Minute
	return repeat(ctx, "produce", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return produceRun(ctx, st, &c, pc, run, stderr)
	})
}

// produceBody returns the path and a request body for worker w, and how many records it carries.
func produceBody(pc produceConfig, w int) (string, []byte, error) {
	concept := func(key string) string {
		return `{"conceptId":"` + key + `","userIds":["bench-nobody"],"conceptName":"bench","masteryLevel":0.5}`
	}
	key := "c" + strconv.Itoa(w)
	switch pc.endpoint {
	case "notification":
		return "/v1/notifications/concept-mastered", []byte(concept(key)), nil
	case "session":
		return "/v1/notifications/session-starting-soon", []byte(`{"sessionId":"` + key + `","userIds":["bench-nobody"],"message":"bench","scheduledTime":"2030-01-01T10:00:00Z"}`), nil
	case "record":
		return "/v1/topics/" + pc.topic + "/records", []byte(`{"key":"` + key + `","value":` + concept(key) + `}`), nil
	case "batch":
		var b bytes.Buffer
		b.WriteString(`{"records":[`)
		for i := range pc.batch {
			if i > 0 {
				b.WriteByte(',')
			}
			k := "c" + strconv.Itoa(w*pc.batch+i)
			b.WriteString(`{"key":"` + k + `","value":` + concept(k) + `}`)
		}
		b.WriteString(`]}`)
		return "/v1/topics/" + pc.topic + "/records", b.Bytes(), nil
	}
	return "", nil, fmt.Errorf("-endpoint %q: want notification, session, record or batch", pc.endpoint)
}

func (pc produceConfig) recordsPerRequest() int {
	if pc.endpoint == "batch" {
		return pc.batch
	}
	return 1
}

func (pc produceConfig) topicName() string {
	switch pc.endpoint {
	case "notification":
		return topicConcepts
	case "session":
		return topicSessions
	}
	return pc.topic
}

func produceRun(ctx context.Context, st *stack, c *common, pc produceConfig, run int, stderr io.Writer) ([]figure, any, *loadReport, error) {
	path, _, _ := produceBody(pc, 0)
	res := produceResult{Endpoint: pc.endpoint, Path: path, Conns: pc.conns, Batch: pc.recordsPerRequest(), Errors: map[string]int{}}
	var before int64
	var err error
	if len(st.brokers) > 0 {
		if before, err = endOffsets(ctx, st.brokers, pc.topicName()); err != nil {
			return nil, nil, nil, err
		}
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: pc.conns,
		MaxConnsPerHost:     pc.conns,
		DisableCompression:  true,
	}}
	defer hc.CloseIdleConnections()
	api := &client.API{URL: st.url, Key: st.apiKey, HTTPClient: hc}

	type worker struct {
		h       hist
		ok, rec int64
		all     int64 // records acknowledged, warm-up included
		errs    map[string]int
	}
	workers := make([]*worker, pc.conns)
	start := time.Now()
	measureFrom := start.Add(pc.warmup)
	end := measureFrom.Add(pc.duration)
	var mon *loadMonitor
	var profDone <-chan error
	var wg sync.WaitGroup
	for w := range workers {
		wk := &worker{errs: map[string]int{}}
		workers[w] = wk
		_, body, _ := produceBody(pc, w)
		per := int64(pc.recordsPerRequest())
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				// The Go client's API: an error answer is a *client.Problem, counted by status.
				status, err := api.Do(ctx, http.MethodPost, path, body, nil)
				var p *client.Problem
				if errors.As(err, &p) {
					status, err = p.Status, nil
				}
				lat := time.Since(t0)
				if status == http.StatusCreated {
					wk.all += per
				}
				if t0.Before(measureFrom) {
					continue
				}
				switch {
				case err != nil:
					if ctx.Err() == nil {
						wk.errs["error: "+errKind(err)]++
					}
				case status != http.StatusCreated:
					wk.errs[strconv.Itoa(status)]++
				default:
					wk.ok++
					wk.rec += per
					wk.h.record(int64(lat))
				}
			}
		})
	}
	// Start measuring the machine and profiling when the warm-up ends.
	select {
	case <-time.After(time.Until(measureFrom)):
		mon = monitor(st)
		profDone = cpuProfile(ctx, st, pc.duration, profilePath(c.cpuProfile, run))
	case <-ctx.Done():
	}
	wg.Wait()
	window := time.Since(measureFrom)
	if window > pc.duration {
		window = pc.duration // requests in flight at the end are counted; their start was inside it
	}
	var load *loadReport
	if mon != nil {
		load = mon.stop()
		if err := <-profDone; err != nil {
			fmt.Fprintf(stderr, "cpu profile: %v\n", err)
		}
	}
	all := new(hist)
	for _, wk := range workers {
		all.merge(&wk.h)
		res.Requests += wk.ok
		res.Records += wk.rec
		res.AckedTotal += wk.all
		for k, v := range wk.errs {
			res.Errors[k] += v
		}
	}
	res.Duration = window.Seconds()
	res.RequestsPS = float64(res.Requests) / window.Seconds()
	res.RecordsPS = float64(res.Records) / window.Seconds()
	res.Latency = all.summary()
	res.Server, _ = scrapeMetrics(ctx, st)
	if len(st.brokers) > 0 {
		after, err := endOffsets(ctx, st.brokers, pc.topicName())
		if err != nil {
			return nil, nil, load, err
		}
		res.BrokerDelta = after - before
	}
	errs := 0
	for _, v := range res.Errors {
		errs += v
	}
	figs := []figure{
		{"requests/s", "1/s", res.RequestsPS},
		{"records/s", "1/s", res.RecordsPS},
		{"p50", "ms", res.Latency.P50},
		{"p90", "ms", res.Latency.P90},
		{"p99", "ms", res.Latency.P99},
		{"p99.9", "ms", res.Latency.P999},
		{"max", "ms", res.Latency.Max},
		{"errors", "", float64(errs)},
		{"acked - broker delta", "records", float64(res.AckedTotal - res.BrokerDelta)},
	}
	var runErr error
	if ctx.Err() != nil {
		runErr = context.Cause(ctx)
	}
	return figs, res, load, runErr
}

// errKind shortens a client error for the report.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op
	}
	return "other"
}
