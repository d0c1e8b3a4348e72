package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// svg is an SVG 1.1 document under construction (https://www.w3.org/TR/SVG11/): elements are
// appended as text, every attribute value and text node escaped. It starts with <title> and
// <desc>, referenced by aria-labelledby, so that screen readers and text browsers get the
// chart's name and its figures in words.
type svg struct {
	b strings.Builder
}

// chartFont is the font stack of every text; sizes are in pixels.
const chartFont = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

// Colours: the Okabe–Ito palette, told apart with the common forms of colour blindness.
const (
	colBlue   = "#0072B2"
	colOrange = "#E69F00"
	colGreen  = "#009E73"
	colRed    = "#D55E00"
	colPurple = "#CC79A7"
	colSky    = "#56B4E9"
	colInk    = "#222222"
	colMuted  = "#555555"
	colGrid   = "#E6E6E6"
)

func newSVG(width, height float64, title, desc string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" role="img" aria-labelledby="chart-title chart-desc" font-family="%s">`+"\n",
		num(width), num(height), num(width), num(height), esc(chartFont))
	fmt.Fprintf(&s.b, "<title id=\"chart-title\">%s</title>\n<desc id=\"chart-desc\">%s</desc>\n", esc(title), esc(desc))
	s.el("rect", "x", "0", "y", "0", "width", num(width), "height", num(height), "fill", "#FFFFFF")
	return s
}

// el appends an empty element; attrs are name, value pairs.
func (s *svg) el(name string, attrs ...string) {
	s.b.WriteString("<" + name)
	s.attrs(attrs)
	s.b.WriteString("/>\n")
}

// text appends a <text> element holding t.
func (s *svg) text(x, y float64, t string, attrs ...string) {
	s.b.WriteString("<text")
	s.attrs(append([]string{"x", num(x), "y", num(y)}, attrs...))
	s.b.WriteString(">" + esc(t) + "</text>\n")
}

// open starts a group <g>; close ends it.
func (s *svg) open(attrs ...string) {
	s.b.WriteString("<g")
	s.attrs(attrs)
	s.b.WriteString(">\n")
}

func (s *svg) close() { s.b.WriteString("</g>\n") }

func (s *svg) attrs(attrs []string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		s.b.WriteString(" " + attrs[i] + `="` + esc(attrs[i+1]) + `"`)
	}
}

func (s *svg) bytes() []byte {
	return []byte(s.b.String() + "</svg>\n")
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// num prints a coordinate with at most two decimals.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// textWidth estimates the width of t at font size px (the average glyph of a sans-serif font
// is about 0.5 em wide).
func textWidth(t string, px float64) float64 {
	return float64(len([]rune(t))) * px * 0.5
}

// scale maps data values in [lo, hi] to pixels in [a, b], linearly or logarithmically.
type scale struct {
	lo, hi float64
	a, b   float64
	log    bool
}

func (s scale) at(v float64) float64 {
	if s.log {
		v, lo, hi := math.Log10(math.Max(v, 1e-12)), math.Log10(s.lo), math.Log10(s.hi)
		return s.a + (v-lo)/(hi-lo)*(s.b-s.a)
	}
	if s.hi == s.lo {
		return (s.a + s.b) / 2
	}
	return s.a + (v-s.lo)/(s.hi-s.lo)*(s.b-s.a)
}

// linearTicks returns about n round ticks (1, 2 or 5 × 10^k apart) from 0 or below lo to at
// least hi, and the domain they span.
func linearTicks(lo, hi float64, n int, fromZero bool) (ticks []float64, dlo, dhi float64) {
	if fromZero {
		lo = math.Min(0, lo)
	}
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	dlo = math.Floor(lo/step) * step
	dhi = math.Ceil(hi/step) * step
	for v := dlo; v <= dhi+step/2; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, dlo, dhi
}

// logTicks returns the 1, 2, 5 × 10^k values around [lo, hi] (lo > 0) and the domain from the
// largest of them at or under lo to the smallest at or over hi. Past four decades only the
// powers of ten are ticks.
func logTicks(lo, hi float64) (ticks []float64, dlo, dhi float64) {
	var all []float64
	for e := math.Floor(math.Log10(lo)) - 1; e <= math.Ceil(math.Log10(hi))+1; e++ {
		for _, m := range []float64{1, 2, 5} {
			all = append(all, m*math.Pow(10, e))
		}
	}
	dlo, dhi = all[0], all[len(all)-1]
	for _, v := range all {
		if v <= lo*1.0000001 {
			dlo = v
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		if all[i] >= hi/1.0000001 {
			dhi = all[i]
		}
	}
	decades := math.Log10(dhi / dlo)
	for _, v := range all {
		if v < dlo/1.0000001 || v > dhi*1.0000001 {
			continue
		}
		if decades > 4 && math.Abs(math.Log10(v)-math.Round(math.Log10(v))) > 1e-9 {
			continue
		}
		ticks = append(ticks, v)
	}
	return ticks, dlo, dhi
}

// tickLabel prints an axis value: 1,000 up to 99,999, then 250k and 1M; decimals only when
// needed.
func tickLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZeros(strconv.FormatFloat(v/1e6, 'f', 2, 64)) + "M"
	case a >= 1e5:
		return trimZeros(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	case a >= 1000:
		return thousands(v)
	case a == 0:
		return "0"
	case a >= 1:
		return trimZeros(strconv.FormatFloat(v, 'f', 2, 64))
	default:
		return trimZeros(strconv.FormatFloat(v, 'f', 3, 64))
	}
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// thousands prints v rounded to an integer with commas: 998,456.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(math.Abs(v))), 10)
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// valueLabel prints a measured value with three significant digits (thousands with commas).
func valueLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return thousands(v)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// panel is one plot area with its axes.
type panel struct {
	x, y, w, h     float64 // plot area, pixels
	xs, ys         scale
	xTicks, yTicks []float64
	xLabel, yLabel string
	title          string // above the plot area; optional
}

// newPanel makes a panel at (x, y) of size w × h. xlog and ylog choose log scales; xTicks, when
// given, are the x ticks (the measured x values) and the x domain is padded around them.
func newPanel(x, y, w, h float64, xv, yv []float64, xlog, ylog bool, xTicks []float64) *panel {
	p := &panel{x: x, y: y, w: w, h: h}
	xlo, xhi := minMax(xv)
	ylo, yhi := minMax(yv)
	switch {
	case xlog:
		p.xs = scale{lo: xlo / 1.35, hi: xhi * 1.35, log: true}
		p.xTicks = xTicks
		if p.xTicks == nil {
			p.xTicks, p.xs.lo, p.xs.hi = logTicks(xlo, xhi)
		}
	default:
		p.xTicks, p.xs.lo, p.xs.hi = linearTicks(xlo, xhi, 5, true)
		if xTicks != nil {
			p.xTicks = xTicks
		}
	}
	if ylog {
		p.yTicks, p.ys.lo, p.ys.hi = logTicks(ylo, yhi)
		p.ys.log = true
	} else {
		p.yTicks, p.ys.lo, p.ys.hi = linearTicks(ylo, yhi*1.05, 5, true)
	}
	p.xs.a, p.xs.b = x, x+w
	p.ys.a, p.ys.b = y+h, y
	return p
}

func minMax(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return 0, 1
	}
	lo, hi = v[0], v[0]
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	if lo == hi {
		if lo == 0 {
			return 0, 1
		}
		lo, hi = lo*0.9, hi*1.1
	}
	return lo, hi
}

// drawAxes draws the grid, the axes, their ticks and their titles.
func (p *panel) drawAxes(s *svg) {
	s.open("class", "axes", "font-size", "11", "fill", colMuted)
	for _, v := range p.yTicks {
		y := p.ys.at(v)
		s.el("line", "x1", num(p.x), "x2", num(p.x+p.w), "y1", num(y), "y2", num(y), "stroke", colGrid)
		s.text(p.x-6, y+4, tickLabel(v), "text-anchor", "end")
	}
	for _, v := range p.xTicks {
		x := p.xs.at(v)
		s.el("line", "x1", num(x), "x2", num(x), "y1", num(p.y), "y2", num(p.y+p.h), "stroke", colGrid)
		s.el("line", "x1", num(x), "x2", num(x), "y1", num(p.y+p.h), "y2", num(p.y+p.h+4), "stroke", colInk)
		s.text(x, p.y+p.h+17, tickLabel(v), "text-anchor", "middle")
	}
	s.el("line", "x1", num(p.x), "x2", num(p.x+p.w), "y1", num(p.y+p.h), "y2", num(p.y+p.h), "stroke", colInk)
	s.el("line", "x1", num(p.x), "x2", num(p.x), "y1", num(p.y), "y2", num(p.y+p.h), "stroke", colInk)
	s.close()
	s.text(p.x+p.w/2, p.y+p.h+36, p.xLabel, "text-anchor", "middle", "font-size", "12", "fill", colInk)
	cy := p.y + p.h/2
	s.text(p.x-48, cy, p.yLabel, "text-anchor", "middle", "font-size", "12", "fill", colInk,
		"transform", fmt.Sprintf("rotate(-90 %s %s)", num(p.x-48), num(cy)))
	if p.title != "" {
		s.text(p.x, p.y-10, p.title, "font-size", "13", "font-weight", "600", "fill", colInk)
	}
}

// point is one measured point: the median y of the runs at x, and their range.
type point struct {
	x, y   float64
	lo, hi float64
	runs   int
}

// series is one line of a line chart.
type series struct {
	name   string
	color  string
	dash   string // stroke-dasharray; "" is solid
	marker string // circle, square, diamond
	points []point
	labels bool // print each point's value beside it
	unit   string
}

// drawSeries draws the line, a whisker for each point's range (min–max over the runs) and the
// markers.
func (p *panel) drawSeries(s *svg, sr series) {
	s.open("class", "series", "data-series", sr.name)
	var pts []string
	for _, pt := range sr.points {
		pts = append(pts, num(p.xs.at(pt.x))+","+num(p.ys.at(pt.y)))
	}
	if len(pts) > 1 {
		attrs := []string{"points", strings.Join(pts, " "), "fill", "none", "stroke", sr.color, "stroke-width", "2", "stroke-linejoin", "round"}
		if sr.dash != "" {
			attrs = append(attrs, "stroke-dasharray", sr.dash)
		}
		s.el("polyline", attrs...)
	}
	for _, pt := range sr.points {
		x := p.xs.at(pt.x)
		if pt.hi > pt.lo {
			y1, y2 := p.ys.at(pt.lo), p.ys.at(pt.hi)
			s.el("line", "x1", num(x), "x2", num(x), "y1", num(y1), "y2", num(y2), "stroke", sr.color, "stroke-width", "1.2")
			s.el("line", "x1", num(x-4), "x2", num(x+4), "y1", num(y1), "y2", num(y1), "stroke", sr.color, "stroke-width", "1.2")
			s.el("line", "x1", num(x-4), "x2", num(x+4), "y1", num(y2), "y2", num(y2), "stroke", sr.color, "stroke-width", "1.2")
		}
	}
	for _, pt := range sr.points {
		x, y := p.xs.at(pt.x), p.ys.at(pt.y)
		marker(s, sr.marker, x, y, sr.color)
		if sr.labels {
			s.text(x+8, y-7, valueLabel(pt.y)+" "+sr.unit, "font-size", "11", "fill", sr.color, "font-weight", "600")
		}
	}
	s.close()
}

func marker(s *svg, kind string, x, y float64, color string) {
	switch kind {
	case "square":
		s.el("rect", "x", num(x-3.5), "y", num(y-3.5), "width", "7", "height", "7", "fill", color, "stroke", "#FFFFFF", "stroke-width", "1")
	case "diamond":
		s.el("polygon", "points", fmt.Sprintf("%s,%s %s,%s %s,%s %s,%s", num(x), num(y-5), num(x+5), num(y), num(x), num(y+5), num(x-5), num(y)),
			"fill", color, "stroke", "#FFFFFF", "stroke-width", "1")
	default:
		s.el("circle", "cx", num(x), "cy", num(y), "r", "4", "fill", color, "stroke", "#FFFFFF", "stroke-width", "1")
	}
}

// legendItem is one entry of a legend: a line sample with its marker, or a filled box.
type legendItem struct {
	name   string
	color  string
	dash   string
	marker string
	box    bool
}

// drawLegend draws the items in rows from (x, y), wrapping at width.
func drawLegend(s *svg, x, y, width float64, items []legendItem) {
	s.open("class", "legend", "font-size", "12", "fill", colInk)
	cx, cy := x, y
	for _, it := range items {
		w := 34 + textWidth(it.name, 12) + 18
		if cx > x && cx+w > x+width {
			cx, cy = x, cy+20
		}
		if it.box {
			s.el("rect", "x", num(cx+6), "y", num(cy-9), "width", "16", "height", "12", "fill", it.color)
		} else {
			attrs := []string{"x1", num(cx), "x2", num(cx + 28), "y1", num(cy - 4), "y2", num(cy - 4), "stroke", it.color, "stroke-width", "2"}
			if it.dash != "" {
				attrs = append(attrs, "stroke-dasharray", it.dash)
			}
			s.el("line", attrs...)
			if it.marker != "" {
				marker(s, it.marker, cx+14, cy-4, it.color)
			}
		}
		tx := cx + 34
		if it.box {
			tx = cx + 28
		}
		s.text(tx, cy, it.name)
		cx += w
	}
	s.close()
}

// drawHeader draws the chart's title and subtitle; drawCaption its caption lines at the bottom.
func drawHeader(s *svg, width float64, title, subtitle string) {
	s.text(24, 30, title, "font-size", "18", "font-weight", "700", "fill", colInk)
	if subtitle != "" {
		s.text(24, 50, subtitle, "font-size", "12.5", "fill", colMuted)
	}
}

// drawCaption draws caption lines from baseline y down, 15 px apart.
func drawCaption(s *svg, y float64, lines []string) {
	s.open("class", "caption", "font-size", "11", "fill", colMuted)
	for _, l := range lines {
		s.text(24, y, l)
		y += 15
	}
	s.close()
}

// captionHeight is the height drawCaption needs for n lines, with the bottom margin.
func captionHeight(n int) float64 { return 15*float64(n-1) + 16 }

// wrap breaks each paragraph into lines of at most width pixels at font size px.
func wrap(paragraphs []string, width, px float64) []string {
	var out []string
	for _, p := range paragraphs {
		line := ""
		for _, w := range strings.Fields(p) {
			if line != "" && textWidth(line+" "+w, px) > width {
				out = append(out, line)
				line = w
				continue
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}
