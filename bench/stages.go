package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stageNames are the label values of the node's realtime_stage_seconds histogram, in the order
// a record goes through them (internal/stage; docs/operations.md, "What the metrics mean").
var stageNames = []string{"produce_fetch", "fetch_decode", "decode_publish", "publish_enqueue", "enqueue_write"}

// stageHist is one stage's cumulative Prometheus histogram: bucket upper bounds (seconds,
// ascending, +Inf last) with their cumulative counts.
type stageHist struct {
	le    []float64
	cum   []float64
	count float64
	sum   float64
}

// stageSummary is one stage over a run: how many records (or timed deliveries) went through
// it, and its quantiles and mean in milliseconds.
type stageSummary struct {
	Count float64 `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Mean  float64 `json:"mean_ms"`
}

// scrapeStages reads realtime_stage_seconds from the node's /metrics, by stage; empty when the
// node has none (an older build, or another server).
func scrapeStages(ctx context.Context, s *stack) (map[string]*stageHist, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]*stageHist{}
	get := func(labels string) *stageHist {
		_, v, _ := strings.Cut(labels, `stage="`)
		v, _, _ = strings.Cut(v, `"`)
		h := out[v]
		if h == nil {
			h = &stageHist{}
			out[v] = h
		}
		return h
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "realtime_stage_seconds") {
			continue
		}
		name, value, ok := splitSample(line)
		if !ok {
			continue
		}
		base, labels, _ := strings.Cut(name, "{")
		switch base {
		case "realtime_stage_seconds_bucket":
			_, le, _ := strings.Cut(labels, `le="`)
			le, _, _ = strings.Cut(le, `"`)
			bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			if err != nil {
				continue
			}
			h := get(labels)
			h.le = append(h.le, bound)
			h.cum = append(h.cum, value)
		case "realtime_stage_seconds_count":
			get(labels).count = value
		case "realtime_stage_seconds_sum":
			get(labels).sum = value
		}
	}
	for _, h := range out {
		sort.Sort(byBound{h})
	}
	return out, sc.Err()
}

type byBound struct{ h *stageHist }

func (b byBound) Len() int           { return len(b.h.le) }
func (b byBound) Less(i, j int) bool { return b.h.le[i] < b.h.le[j] }
func (b byBound) Swap(i, j int) {
	b.h.le[i], b.h.le[j] = b.h.le[j], b.h.le[i]
	b.h.cum[i], b.h.cum[j] = b.h.cum[j], b.h.cum[i]
}

// stagesBetween summarizes what went through each stage between two scrapes (before may be
// nil: since the node started).
func stagesBetween(before, after map[string]*stageHist) map[string]stageSummary {
	out := map[string]stageSummary{}
	for name, a := range after {
		d := &stageHist{le: a.le, cum: append([]float64(nil), a.cum...), count: a.count, sum: a.sum}
		if b := before[name]; b != nil && len(b.cum) == len(d.cum) {
			for i := range d.cum {
				d.cum[i] -= b.cum[i]
			}
			d.count -= b.count
			d.sum -= b.sum
		}
		if d.count <= 0 {
			continue
		}
		out[name] = stageSummary{
			Count: d.count,
			P50:   d.quantile(0.50) * 1e3,
			P99:   d.quantile(0.99) * 1e3,
			Mean:  d.sum / d.count * 1e3,
		}
	}
	return out
}

// quantile interpolates linearly within the bucket that holds quantile q, as Prometheus's
// histogram_quantile does (the first bucket from 0; a quantile in +Inf is the last finite bound).
func (h *stageHist) quantile(q float64) float64 {
	if len(h.cum) == 0 {
		return math.NaN()
	}
	total := h.cum[len(h.cum)-1]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	for i, c := range h.cum {
		if c < rank {
			continue
		}
		if math.IsInf(h.le[i], 1) {
			if i == 0 {
				return math.NaN()
			}
			return h.le[i-1]
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = h.le[i-1], h.cum[i-1]
		}
		if c == below {
			return h.le[i]
		}
		return lo + (h.le[i]-lo)*(rank-below)/(c-below)
	}
	return h.le[len(h.le)-1]
}

// stageFigures are the table rows of a stage breakdown: p50 and p99 of each stage, in order.
func stageFigures(st map[string]stageSummary) []figure {
	var figs []figure
	for _, name := range stageNames {
		s, ok := st[name]
		if !ok {
			continue
		}
		figs = append(figs,
			figure{"stage " + name + " p50", "ms", s.P50},
			figure{"stage " + name + " p99", "ms", s.P99},
		)
	}
	return figs
}
