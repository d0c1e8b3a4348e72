package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// versusData is another server's figures for the same scenarios (docs/benchmarks/centrifugo.json),
// drawn beside realtime-service's in versus-centrifugo.svg. Each figure is a value, or a range
// (min and max) when only a range was reported; a figure left out was not measured.
type versusData struct {
	Server  string                  `json:"server"`  // name and version, e.g. "Centrifugo v6.9.1"
	Build   string                  `json:"build"`   // how it was built
	Setup   string                  `json:"setup"`   // how it was run and measured
	Source  string                  `json:"source"`  // where the figures were published
	Caption string                  `json:"caption"` // one line for the chart's caption
	Figures map[string]versusFigure `json:"figures"` // by versusKeys
	// Ours, when present, is realtime-service's figures from the same side-by-side runs (go run
	// ./bench compare -versus); the chart draws them instead of the results file's runs.
	Ours map[string]versusFigure `json:"ours,omitempty"`
}

// versusFigure is one figure: Value, or Min and Max when only a range is known.
type versusFigure struct {
	Value float64 `json:"value,omitempty"`
	Min   float64 `json:"min,omitempty"`
	Max   float64 `json:"max,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// versusKeys are the figures a versus file may hold.
var versusKeys = []string{
	"latency_p50_ms_1000",     // p50, ms, 100 users × 1,000 records/s, each record to one user
	"latency_p99_ms_1000",     // p99, ms, the same
	"latency_p50_ms_10000",    // p50, ms, 100 users × 10,000 records/s
	"latency_p99_ms_10000",    // p99, ms, the same
	"fanout_deliveries_per_s", // deliveries/s, 1,000 users, each record to all 1,000
	"idle_kb_per_conn",        // RSS per idle WebSocket connection, KB
}

// readVersus reads and checks a versus file: known keys only, each a value or a range.
func readVersus(path string) (*versusData, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v versusData
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if v.Server == "" {
		return nil, fmt.Errorf("%s: server is empty", path)
	}
	for k, f := range v.Ours {
		if !slices.Contains(versusKeys, k) || f.Value <= 0 && (f.Min <= 0 || f.Max < f.Min) {
			return nil, fmt.Errorf("%s: ours: figure %q: want a known figure with a positive value, or 0 < min <= max", path, k)
		}
	}
	for k, f := range v.Figures {
		switch {
		case !slices.Contains(versusKeys, k):
			return nil, fmt.Errorf("%s: unknown figure %q; want one of %s", path, k, strings.Join(versusKeys, ", "))
		case f.Value <= 0 && (f.Min <= 0 || f.Max < f.Min):
			return nil, fmt.Errorf("%s: figure %q: want a positive value, or 0 < min <= max", path, k)
		}
	}
	return &v, nil
}

// bar is one bar of a group: a measured median with its range, a reported range, or nothing.
type bar struct {
	value, lo, hi float64
	rangeOnly     bool // only lo–hi is known: drawn as a floating box
	missing       bool
}

func ourBar(p *point) bar {
	if p == nil {
		return bar{missing: true}
	}
	return bar{value: p.y, lo: p.lo, hi: p.hi}
}

func theirBar(f versusFigure, ok bool) bar {
	switch {
	case !ok:
		return bar{missing: true}
	case f.Value > 0:
		return bar{value: f.Value, lo: f.Min, hi: f.Max}
	}
	return bar{lo: f.Min, hi: f.Max, rangeOnly: true}
}

func (b bar) top() float64 { return max(b.value, b.hi) }

// barPanel is one metric: groups of two bars (realtime-service, the other server).
type barPanel struct {
	title  string
	unit   string
	groups []string
	bars   [][2]bar
}

func pointAt(pts []point, x float64) *point {
	for i := range pts {
		if pts[i].x == x {
			return &pts[i]
		}
	}
	return nil
}

func last(pts []point) *point {
	if len(pts) == 0 {
		return nil
	}
	return &pts[len(pts)-1]
}

// versusChart draws realtime-service's WebSocket figures beside vs's, a panel per metric.
func versusChart(ld latencyPoints, fd fanoutPoints, md memoryPoints, vs *versusData, runs []chartRun) []byte {
	fig := func(k string) bar { f, ok := vs.Figures[k]; return theirBar(f, ok) }
	fan := last(fd["ws/delivered"])
	mem := pointAt(md["ws"], 10000)
	if mem == nil {
		mem = last(md["ws"])
	}
	// ours is realtime-service's bar for figure k: from the same side-by-side runs when the
	// versus file has them, else the results file's point p.
	ours := func(k string, p *point) bar {
		if f, ok := vs.Ours[k]; ok {
			return theirBar(f, true)
		}
		return ourBar(p)
	}
	if vs.Ours != nil {
		if _, ok := vs.Ours["fanout_deliveries_per_s"]; ok {
			fan = &point{x: 1e6}
		}
		if _, ok := vs.Ours["idle_kb_per_conn"]; ok {
			mem = &point{x: 10000}
		}
	}
	fanGroup, memGroup := "deliveries/s", "RSS per connection"
	if fan != nil {
		fanGroup = fmt.Sprintf("deliveries/s (ours at %s offered)", tickLabel(fan.x))
	}
	if mem != nil {
		memGroup = fmt.Sprintf("RSS per connection (ours at %s)", thousands(mem.x))
	}
	panels := []barPanel{
		{title: "Latency at 1,000 records/s", unit: "ms", groups: []string{"p50", "p99"}, bars: [][2]bar{
			{ours("latency_p50_ms_1000", pointAt(ld["ws/p50"], 1000)), fig("latency_p50_ms_1000")},
			{ours("latency_p99_ms_1000", pointAt(ld["ws/p99"], 1000)), fig("latency_p99_ms_1000")}}},
		{title: "Latency at 10,000 records/s", unit: "ms", groups: []string{"p50", "p99"}, bars: [][2]bar{
			{ours("latency_p50_ms_10000", pointAt(ld["ws/p50"], 10000)), fig("latency_p50_ms_10000")},
			{ours("latency_p99_ms_10000", pointAt(ld["ws/p99"], 10000)), fig("latency_p99_ms_10000")}}},
		{title: "Fan-out, each record to 1,000 users", unit: "deliveries/s", groups: []string{fanGroup}, bars: [][2]bar{
			{ours("fanout_deliveries_per_s", fan), fig("fanout_deliveries_per_s")}}},
		{title: "Memory per idle WebSocket connection", unit: "KB", groups: []string{memGroup}, bars: [][2]bar{
			{ours("idle_kb_per_conn", mem), fig("idle_kb_per_conn")}}},
	}
	measured := false
	for _, p := range panels {
		for _, b := range p.bars {
			measured = measured || !b[0].missing
		}
	}
	if !measured {
		return nil
	}

	const width = 760.0
	pw, ph := 270.0, 150.0
	bottom := 132 + 2*ph + 100
	cap := caption(runs, ld, fd, md)
	if vs.Ours != nil {
		cap = nil // both sides come from the same compare runs, which vs.Caption describes
	}
	if vs.Caption != "" {
		cap = append(cap, vs.Server+": "+vs.Caption)
	}
	capLines := wrap(cap, width-48, 11)
	title := "realtime-service and " + vs.Server + ", side by side"
	sub := "Same scenarios, WebSocket clients; lower is better except for deliveries/s"
	var desc strings.Builder
	desc.WriteString(sub + ".")
	for _, p := range panels {
		for i, g := range p.groups {
			fmt.Fprintf(&desc, " %s, %s: realtime-service %s, %s %s.", p.title, g, barWords(p.bars[i][0], p.unit), vs.Server, barWords(p.bars[i][1], p.unit))
		}
	}
	if vs.Caption != "" {
		desc.WriteString(" " + vs.Caption)
	}
	s := newSVG(width, bottom+48+captionHeight(len(capLines)), title, desc.String())
	drawHeader(s, width, title, sub)
	commit := ""
	if len(runs) > 0 && vs.Ours == nil {
		commit = " " + runs[len(runs)-1].commit()
	}
	drawLegend(s, 88, 78, width-110, []legendItem{
		{name: "realtime-service" + commit + " (median, whisker min–max)", color: colBlue, box: true},
		{name: vs.Server, color: colOrange, box: true},
	})
	for i, p := range panels {
		x := 88 + float64(i%2)*(pw+110)
		y := 132 + float64(i/2)*(ph+100)
		drawBarPanel(s, x, y, pw, ph, p)
	}
	drawCaption(s, bottom+48, capLines)
	return s.bytes()
}

func barWords(b bar, unit string) string {
	switch {
	case b.missing:
		return "not measured"
	case b.rangeOnly:
		return fmt.Sprintf("%s–%s %s (range reported)", trimZeros(valueLabel(b.lo)), trimZeros(valueLabel(b.hi)), unit)
	case b.hi > b.lo:
		return fmt.Sprintf("%s %s (%s–%s)", valueLabel(b.value), unit, valueLabel(b.lo), valueLabel(b.hi))
	}
	return valueLabel(b.value) + " " + unit
}

// drawBarPanel draws one metric's groups of bars on a linear axis from 0.
func drawBarPanel(s *svg, x, y, w, h float64, p barPanel) {
	var ys []float64
	for _, b := range p.bars {
		ys = append(ys, b[0].top(), b[1].top())
	}
	_, hi := minMax(ys)
	ticks, lo, top := linearTicks(0, hi*1.12, 4, true)
	pn := &panel{x: x, y: y, w: w, h: h, ys: scale{lo: lo, hi: top, a: y + h, b: y}, yTicks: ticks,
		yLabel: p.unit, title: p.title}
	pn.drawAxes(s)
	gw := w / float64(len(p.groups))
	bw := min(56, gw*0.3)
	for i, g := range p.groups {
		cx := x + gw*(float64(i)+0.5)
		s.text(cx, y+h+18, g, "text-anchor", "middle", "font-size", "12", "fill", colInk)
		for j, b := range p.bars[i] {
			color := colBlue
			if j == 1 {
				color = colOrange
			}
			bx := cx - bw - 3 + float64(j)*(bw+6)
			mid := bx + bw/2
			base := pn.ys.at(0)
			switch {
			case b.missing:
				s.text(mid, base-20, "not", "text-anchor", "middle", "font-size", "10", "fill", colMuted)
				s.text(mid, base-8, "measured", "text-anchor", "middle", "font-size", "10", "fill", colMuted)
			case b.rangeOnly:
				y1, y2 := pn.ys.at(b.lo), pn.ys.at(b.hi)
				s.el("rect", "x", num(bx), "y", num(y2), "width", num(bw), "height", num(y1-y2),
					"fill", color, "fill-opacity", "0.35", "stroke", color, "stroke-width", "1.5", "stroke-dasharray", "4 3")
				s.text(mid, y2-6, trimZeros(valueLabel(b.lo))+"–"+trimZeros(valueLabel(b.hi)), "text-anchor", "middle", "font-size", "11", "font-weight", "600", "fill", colInk)
			default:
				yv := pn.ys.at(b.value)
				s.el("rect", "x", num(bx), "y", num(yv), "width", num(bw), "height", num(base-yv), "fill", color)
				labelY := yv - 6
				if b.hi > b.lo {
					y1, y2 := pn.ys.at(b.lo), pn.ys.at(b.hi)
					s.el("line", "x1", num(mid), "x2", num(mid), "y1", num(y1), "y2", num(y2), "stroke", colInk, "stroke-width", "1.2")
					s.el("line", "x1", num(mid-4), "x2", num(mid+4), "y1", num(y1), "y2", num(y1), "stroke", colInk, "stroke-width", "1.2")
					s.el("line", "x1", num(mid-4), "x2", num(mid+4), "y1", num(y2), "y2", num(y2), "stroke", colInk, "stroke-width", "1.2")
					labelY = min(labelY, y2-6)
				}
				s.text(mid, labelY, valueLabel(b.value), "text-anchor", "middle", "font-size", "11", "font-weight", "600", "fill", colInk)
			}
		}
	}
}
