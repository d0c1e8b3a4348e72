package main

import (
	"bufio"
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
	"strings"
)

// runChart draws SVG charts from the JSON lines the other modes append (bench/results.jsonl):
//
//	latency.svg   p50 and p99 against records/s (mode latency), a line per transport
//	fanout.svg    deliveries/s and p50/p99 against the offered deliveries/s (mode fanout)
//	memory.svg    RSS per connection against connections (mode idle), a line per transport
//	versus-centrifugo.svg  realtime-service beside Centrifugo (-centrifugo, a JSON file)
//
// A point is the median of its runs, with their range (min–max) as a whisker; noisy runs are
// left out when at least one run of the point was quiet. Only one commit is drawn: -commit, or
// for each chart the commit of its mode's last line.
func runChart(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	in := fs.String("in", "bench/results.jsonl", "the JSON lines file (relative to the module root)")
	out := fs.String("out", "bench/charts", "directory the SVG files are written to (relative to the module root)")
	commit := fs.String("commit", "", "draw only runs of this commit (default: each chart's latest)")
	versus := fs.String("centrifugo", "docs/benchmarks/centrifugo.json", "Centrifugo's figures for versus-centrifugo.svg (relative to the module root); empty skips that chart")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	files, err := writeCharts(abs(*in), abs(*out), abs(*versus), *commit)
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	return err
}

// writeCharts reads the result lines in file in and writes every chart they support into dir;
// it returns the paths written. The error says so when in holds nothing to draw.
func writeCharts(in, dir, versusPath, commit string) ([]string, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs, err := readChartRuns(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	var vs *versusData
	if versusPath != "" {
		if vs, err = readVersus(versusPath); err != nil {
			return nil, err
		}
	}
	charts, err := buildCharts(runs, vs, commit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, c := range charts {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.svg, 0o644); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// errNothingToChart: the input held no run without error of a mode that has a chart.
var errNothingToChart = errors.New("no results to chart: no latency, fanout or idle run without error (run one, e.g. go run ./bench latency, or pass -in)")

// chartRun is the part of a result line the charts read.
type chartRun struct {
	Time     string          `json:"time"`
	Mode     string          `json:"mode"`
	Revision revision        `json:"revision"`
	Machine  machineInfo     `json:"machine"`
	Load     *loadReport     `json:"load"`
	Error    string          `json:"error"`
	Result   json.RawMessage `json:"result"`
}

func (r chartRun) commit() string {
	if r.Revision.Dirty {
		return r.Revision.Commit + "+dirty"
	}
	return r.Revision.Commit
}

func (r chartRun) noisy() bool { return r.Load != nil && r.Load.Noisy }

// readChartRuns reads JSON lines, keeping runs without error. A line that is not a result (not
// JSON, or without a mode) is an error naming its line number.
func readChartRuns(r io.Reader) ([]chartRun, error) {
	var runs []chartRun
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var run chartRun
		if err := json.Unmarshal([]byte(line), &run); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if run.Mode == "" {
			return nil, fmt.Errorf("line %d: not a result line (no mode)", n)
		}
		if run.Error == "" && len(run.Result) > 0 {
			runs = append(runs, run)
		}
	}
	return runs, sc.Err()
}

// chartFile is one SVG file.
type chartFile struct {
	name string
	svg  []byte
}

// buildCharts draws every chart the runs support, in the order latency, fanout, memory, versus.
func buildCharts(runs []chartRun, vs *versusData, commit string) ([]chartFile, error) {
	lat := pickCommit(runs, "latency", commit)
	fan := pickCommit(runs, "fanout", commit)
	idle := pickCommit(runs, "idle", commit)
	var out []chartFile
	add := func(name string, b []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if b != nil {
			out = append(out, chartFile{name, b})
		}
		return nil
	}
	ld, err := latencyData(lat)
	if err := add("latency.svg", latencyChart(ld, lat), err); err != nil {
		return nil, err
	}
	fd, err := fanoutData(fan)
	if err := add("fanout.svg", fanoutChart(fd, fan), err); err != nil {
		return nil, err
	}
	md, err := memoryData(idle)
	if err := add("memory.svg", memoryChart(md, idle), err); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errNothingToChart
	}
	if vs != nil {
		if b := versusChart(ld, fd, md, vs, slices.Concat(lat, fan, idle)); b != nil {
			out = append(out, chartFile{"versus-centrifugo.svg", b})
		}
	}
	return out, nil
}

// pickCommit returns the runs of mode at commit, or at the commit of mode's last run.
func pickCommit(runs []chartRun, mode, commit string) []chartRun {
	if commit == "" {
		for _, r := range slices.Backward(runs) {
			if r.Mode == mode {
				commit = r.commit()
				break
			}
		}
	}
	var out []chartRun
	for _, r := range runs {
		if r.Mode == mode && (r.commit() == commit || r.Revision.Commit == commit) {
			out = append(out, r)
		}
	}
	return out
}

// sample collects one figure's values over the runs of a point.
type sample struct {
	quiet, noisy []float64
}

func (s *sample) add(v float64, noisy bool) {
	if noisy {
		s.noisy = append(s.noisy, v)
	} else {
		s.quiet = append(s.quiet, v)
	}
}

// point is the median and range of the quiet values, or of all when none was quiet.
func (s *sample) point(x float64) point {
	v := s.quiet
	if len(v) == 0 {
		v = s.noisy
	}
	med, lo, hi := medianRange(v)
	return point{x: x, y: med, lo: lo, hi: hi, runs: len(v)}
}

// xKey identifies a point: its series and its x.
type xKey struct {
	series string
	x      float64
}

// points turns samples keyed by series and x into each series' points, sorted by x.
func points(m map[xKey]*sample) map[string][]point {
	out := map[string][]point{}
	for k, s := range m {
		out[k.series] = append(out[k.series], s.point(k.x))
	}
	for _, p := range out {
		slices.SortFunc(p, func(a, b point) int { return cmpFloat(a.x, b.x) })
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sampleAt(m map[xKey]*sample, k xKey) *sample {
	s := m[k]
	if s == nil {
		s = &sample{}
		m[k] = s
	}
	return s
}

// transports in the order their series are drawn, with their display names.
var transports = []struct{ key, name, color, dash, marker string }{
	{"ws", "WebSocket", colBlue, "", "circle"},
	{"ws-gorilla", "WebSocket (gorilla client)", colSky, "2 3", "circle"},
	{"socketio", "Socket.IO", colPurple, "7 4", "diamond"},
	{"sse", "SSE", colGreen, "3 3", "square"},
}

func transportName(key string) string {
	for _, t := range transports {
		if t.key == key {
			return t.name
		}
	}
	return key
}

// presentTransports lists the transports that have points in m (keys transport+suffix): the
// known ones in drawing order, then the others sorted.
func presentTransports(m map[string][]point, suffix string) []string {
	var known, other []string
	for _, t := range transports {
		if len(m[t.key+suffix]) > 0 {
			known = append(known, t.key)
		}
	}
	for k, p := range m {
		t, ok := strings.CutSuffix(k, suffix)
		if ok && len(p) > 0 && !strings.Contains(t, "/") && !slices.Contains(known, t) && !slices.Contains(other, t) {
			other = append(other, t)
		}
	}
	slices.Sort(other)
	return append(known, other...)
}

func transportStyle(key string) (color, dash, marker string) {
	for _, t := range transports {
		if t.key == key {
			return t.color, t.dash, t.marker
		}
	}
	return colMuted, "1 2", "circle"
}

// latencyPoints: for each transport ("ws/p50", "ws/p99"), milliseconds against records/s.
type latencyPoints map[string][]point

func latencyData(runs []chartRun) (latencyPoints, error) {
	m := map[xKey]*sample{}
	for _, r := range runs {
		var res deliveryResult
		if err := json.Unmarshal(r.Result, &res); err != nil {
			return nil, fmt.Errorf("latency run of %s: %w", r.Time, err)
		}
		if res.Rate <= 0 || res.Latency.Count == 0 {
			continue
		}
		sampleAt(m, xKey{res.Transport + "/p50", res.Rate}).add(res.Latency.P50, r.noisy())
		sampleAt(m, xKey{res.Transport + "/p99", res.Rate}).add(res.Latency.P99, r.noisy())
	}
	return points(m), nil
}

// fanoutPoints: for each transport ("ws/delivered", "ws/p50", "ws/p99"), against the offered
// deliveries/s (records/s × recipients per record).
type fanoutPoints map[string][]point

func fanoutData(runs []chartRun) (fanoutPoints, error) {
	m := map[xKey]*sample{}
	for _, r := range runs {
		var res deliveryResult
		if err := json.Unmarshal(r.Result, &res); err != nil {
			return nil, fmt.Errorf("fanout run of %s: %w", r.Time, err)
		}
		if res.Rate <= 0 || res.Fanout <= 0 {
			continue
		}
		x := res.Rate * float64(res.Fanout)
		sampleAt(m, xKey{res.Transport + "/delivered", x}).add(res.DeliveriesPerSec, r.noisy())
		sampleAt(m, xKey{res.Transport + "/p50", x}).add(res.Latency.P50, r.noisy())
		sampleAt(m, xKey{res.Transport + "/p99", x}).add(res.Latency.P99, r.noisy())
	}
	return points(m), nil
}

// memoryPoints: for each transport, RSS per connection in KB against connections held.
type memoryPoints map[string][]point

func memoryData(runs []chartRun) (memoryPoints, error) {
	m := map[xKey]*sample{}
	for _, r := range runs {
		var res idleResult
		if err := json.Unmarshal(r.Result, &res); err != nil {
			return nil, fmt.Errorf("idle run of %s: %w", r.Time, err)
		}
		for _, lv := range res.Levels {
			if lv.Skipped != "" || lv.Held == 0 || lv.RSSPerConn <= 0 {
				continue
			}
			sampleAt(m, xKey{res.Transport, float64(lv.Target)}).add(lv.RSSPerConn/1024, r.noisy())
		}
	}
	return points(m), nil
}

// caption describes what was measured: the commit, the machine, how many runs make a point
// and how loaded the machine was.
func caption(runs []chartRun, pts ...map[string][]point) []string {
	if len(runs) == 0 {
		return nil
	}
	r := runs[len(runs)-1]
	m := r.Machine
	day := r.Time
	if len(day) >= 10 {
		day = day[:10]
	}
	line1 := fmt.Sprintf("realtime-service %s, measured %s on %d vCPUs %s, %.1f GiB, Linux %s, %s; broker, node and load tool on the same machine, loopback.",
		r.commit(), day, m.CPUs, m.Model, float64(m.MemoryMB)/1024, m.Kernel, m.GoVersion)
	lo, hi := math.MaxInt, 0
	for _, p := range pts {
		for _, s := range p {
			for _, pt := range s {
				lo, hi = min(lo, pt.runs), max(hi, pt.runs)
			}
		}
	}
	n := fmt.Sprint(lo)
	if hi != lo {
		n = fmt.Sprintf("%d–%d", lo, hi)
	}
	noisy := 0
	other := 0.0
	for _, r := range runs {
		if r.noisy() {
			noisy++
		}
		if r.Load != nil {
			other = math.Max(other, r.Load.OtherCores)
		}
	}
	line2 := fmt.Sprintf("Points: median of %s runs, whiskers min–max.", n)
	if hi == 1 {
		line2 = "Points: one run each."
	}
	if noisy > 0 {
		were := "were"
		if noisy == 1 {
			were = "was"
		}
		line2 += fmt.Sprintf(" %d of %d runs %s noisy (other processes used up to %.2f cores; threshold %.2f): the machine was shared with other jobs.",
			noisy, len(runs), were, other, noisyCores)
	} else {
		line2 += fmt.Sprintf(" All %d runs quiet (other processes under %.2f cores).", len(runs), noisyCores)
	}
	return []string{line1, line2}
}

// describe lists a chart's points in words for its <desc>.
func describe(head string, names map[string]string, pts map[string][]point, unit string, xfmt func(float64) string) string {
	var b strings.Builder
	b.WriteString(head)
	for _, k := range slices.Sorted(mapsKeys(pts)) {
		name := names[k]
		if name == "" {
			continue
		}
		fmt.Fprintf(&b, " %s:", name)
		for i, p := range pts[k] {
			sep := ","
			if i == len(pts[k])-1 {
				sep = "."
			}
			fmt.Fprintf(&b, " %s %s at %s%s", valueLabel(p.y), unit, xfmt(p.x), sep)
		}
	}
	return b.String()
}

func mapsKeys(m map[string][]point) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func xValues(pts ...[]point) []float64 {
	var v []float64
	for _, p := range pts {
		for _, q := range p {
			if !slices.Contains(v, q.x) {
				v = append(v, q.x)
			}
		}
	}
	slices.Sort(v)
	return v
}

func yValues(pts ...[]point) []float64 {
	var v []float64
	for _, p := range pts {
		for _, q := range p {
			v = append(v, q.y, q.lo, q.hi)
		}
	}
	return v
}

// The line charts' layout, pixels: width, the bottom of the plot areas, and the first caption
// line's baseline below it (under the x axis' ticks and title).
const (
	chartWidth = 760.0
	plotBottom = 400.0
	captionTop = 68.0
)

// latencyChart: p50 and p99 (ms, log scale) against records/s (log scale); colour gives the
// percentile, dashes and markers the transport. nil when there is no point.
func latencyChart(d latencyPoints, runs []chartRun) []byte {
	ts := presentTransports(d, "/p50")
	if len(ts) == 0 {
		return nil
	}
	var all [][]point
	var srs []series
	var legend []legendItem
	names := map[string]string{}
	for _, pc := range []struct{ q, color string }{{"p50", colBlue}, {"p99", colRed}} {
		for _, t := range ts {
			_, dash, mk := transportStyle(t)
			name := pc.q
			if len(ts) > 1 || t != "ws" {
				name += ", " + transportName(t)
			}
			key := t + "/" + pc.q
			names[key] = name
			srs = append(srs, series{name: name, color: pc.color, dash: dash, marker: mk, points: d[key]})
			legend = append(legend, legendItem{name: name, color: pc.color, dash: dash, marker: mk})
			all = append(all, d[key])
		}
	}
	users := ""
	if u := firstDelivery(runs); u.Users > 0 {
		users = fmt.Sprintf("%s users, one connection each; every record names one user", thousands(float64(u.Users)))
	}
	title := "Delivery latency against rate"
	sub := "Produce to Kafka → frame received by the client; " + users
	if len(ts) == 1 {
		sub += " (" + transportName(ts[0]) + ")"
	}
	desc := describe(sub+".", names, d, "ms", func(x float64) string { return thousands(x) + " records/s" })
	capLines := wrap(caption(runs, d), chartWidth-48, 11)
	s := newSVG(chartWidth, plotBottom+captionTop+captionHeight(len(capLines)), title, desc)
	drawHeader(s, chartWidth, title, sub)
	drawLegend(s, 88, 78, chartWidth-110, legend)
	xs := xValues(all...)
	p := newPanel(88, 104, chartWidth-120, plotBottom-104, xs, yValues(all...), true, true, xs)
	p.xLabel = "records/s produced (log scale)"
	p.yLabel = "latency, ms (log scale)"
	p.drawAxes(s)
	for _, sr := range srs {
		p.drawSeries(s, sr)
	}
	drawCaption(s, plotBottom+captionTop, capLines)
	return s.bytes()
}

func firstDelivery(runs []chartRun) deliveryResult {
	for _, r := range runs {
		var res deliveryResult
		if json.Unmarshal(r.Result, &res) == nil && res.Users > 0 {
			return res
		}
	}
	return deliveryResult{}
}

// fanoutChart: two panels against the offered deliveries/s: deliveries/s achieved (with the
// offered rate as a dashed diagonal), and p50/p99 latency.
func fanoutChart(d fanoutPoints, runs []chartRun) []byte {
	ts := presentTransports(d, "/delivered")
	if len(ts) == 0 {
		return nil
	}
	u := firstDelivery(runs)
	title := "Fan-out: deliveries/s and latency against the offered rate"
	sub := fmt.Sprintf("%s users, one connection each; every record names %s of them", thousands(float64(u.Users)), thousands(float64(u.Fanout)))
	names := map[string]string{}
	var legend []legendItem
	var left, right []series
	var lp, rp [][]point
	for _, t := range ts {
		_, dash, mk := transportStyle(t)
		tn := transportName(t)
		names[t+"/delivered"] = "delivered, " + tn
		names[t+"/p50"] = "p50, " + tn
		names[t+"/p99"] = "p99, " + tn
		left = append(left, series{name: names[t+"/delivered"], color: colGreen, dash: dash, marker: mk, points: d[t+"/delivered"]})
		right = append(right,
			series{name: names[t+"/p50"], color: colBlue, dash: dash, marker: mk, points: d[t+"/p50"]},
			series{name: names[t+"/p99"], color: colRed, dash: dash, marker: mk, points: d[t+"/p99"]})
		lp = append(lp, d[t+"/delivered"])
		rp = append(rp, d[t+"/p50"], d[t+"/p99"])
		legend = append(legend,
			legendItem{name: names[t+"/delivered"], color: colGreen, dash: dash, marker: mk},
			legendItem{name: names[t+"/p50"], color: colBlue, dash: dash, marker: mk},
			legendItem{name: names[t+"/p99"], color: colRed, dash: dash, marker: mk})
	}
	legend = append(legend, legendItem{name: "offered", color: colMuted, dash: "5 4"})
	delivered := map[string][]point{}
	lat := map[string][]point{}
	for k, v := range d {
		if strings.HasSuffix(k, "/delivered") {
			delivered[k] = v
		} else {
			lat[k] = v
		}
	}
	xf := func(x float64) string { return thousands(x) + " offered deliveries/s" }
	desc := describe(sub+".", names, delivered, "deliveries/s", xf) + describe("", names, lat, "ms", xf)
	capLines := wrap(caption(runs, d), chartWidth-48, 11)
	s := newSVG(chartWidth, plotBottom+captionTop+captionHeight(len(capLines)), title, desc)
	drawHeader(s, chartWidth, title, sub)
	drawLegend(s, 88, 78, chartWidth-110, legend)

	xs := xValues(append(lp, rp...)...)
	top, h := 132.0, plotBottom-132
	pw := (chartWidth - 88 - 30 - 80) / 2
	ticks := append([]float64{0}, xs...)
	lpnl := newPanel(88, top, pw, h, ticks, append(yValues(lp...), xs...), false, false, ticks)
	lpnl.title = "Deliveries/s achieved"
	lpnl.xLabel = "offered deliveries/s"
	lpnl.yLabel = "deliveries/s"
	lpnl.drawAxes(s)
	x0, x1 := 0.0, xs[len(xs)-1]
	s.el("line", "x1", num(lpnl.xs.at(x0)), "y1", num(lpnl.ys.at(x0)), "x2", num(lpnl.xs.at(x1)), "y2", num(lpnl.ys.at(x1)),
		"stroke", colMuted, "stroke-width", "1.2", "stroke-dasharray", "5 4")
	for _, sr := range left {
		lpnl.drawSeries(s, sr)
	}
	rpnl := newPanel(88+pw+80, top, pw, h, ticks, yValues(rp...), false, false, ticks)
	rpnl.title = "Latency, produce → received"
	rpnl.xLabel = "offered deliveries/s"
	rpnl.yLabel = "latency, ms"
	rpnl.drawAxes(s)
	for _, sr := range right {
		rpnl.drawSeries(s, sr)
	}
	drawCaption(s, plotBottom+captionTop, capLines)
	return s.bytes()
}

// memoryChart: the node's RSS per connection (KB) against idle connections held (log scale),
// a line per transport, each point labelled.
func memoryChart(d memoryPoints, runs []chartRun) []byte {
	ts := presentTransports(d, "")
	if len(ts) == 0 {
		return nil
	}
	names := map[string]string{}
	var legend []legendItem
	var srs []series
	var all [][]point
	for _, t := range ts {
		color, dash, mk := transportStyle(t)
		names[t] = transportName(t)
		srs = append(srs, series{name: names[t], color: color, dash: dash, marker: mk, points: d[t], labels: true, unit: "KB"})
		legend = append(legend, legendItem{name: names[t], color: color, dash: dash, marker: mk})
		all = append(all, d[t])
	}
	title := "Memory per idle connection"
	sub := "The node's RSS growth over its empty state (after a forced GC), divided by the connections it holds"
	desc := describe(sub+".", names, d, "KB per connection", func(x float64) string { return thousands(x) + " connections" })
	capLines := wrap(caption(runs, d), chartWidth-48, 11)
	s := newSVG(chartWidth, plotBottom+captionTop+captionHeight(len(capLines)), title, desc)
	drawHeader(s, chartWidth, title, sub)
	drawLegend(s, 88, 78, chartWidth-110, legend)
	xs := xValues(all...)
	p := newPanel(88, 104, chartWidth-120, plotBottom-104, xs, append(yValues(all...), 0), true, false, xs)
	p.xLabel = "idle connections held (log scale)"
	p.yLabel = "RSS per connection, KB"
	p.drawAxes(s)
	for _, sr := range srs {
		p.drawSeries(s, sr)
	}
	drawCaption(s, plotBottom+captionTop, capLines)
	return s.bytes()
}
