package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chartFixture writes result lines as the load tool appends them: latency over WebSocket at
// 1,000 and 10,000 records/s (a noisy run among quiet ones at 1,000), fan-out at 500 and 1,000
// records/s to 1,000 users, idle WebSocket and SSE at 1,000 and 10,000 connections (20,000
// skipped), a failed run and a produce run (no chart). The machine's model has XML's special
// characters, which every SVG must escape.
func chartFixture(t *testing.T) string {
	t.Helper()
	machine := machineInfo{CPUs: 2, Model: "AMD EPYC <fixture & co>", MemoryMB: 24105, Kernel: "6.18", GoVersion: "go1.26"}
	var lines []string
	add := func(mode string, noisy bool, result any, errText string) {
		rec := runRecord{
			Time: "2026-12-03T08:00:00Z", Mode: mode, Revision: revision{Commit: "abc1234"}, Machine: machine,
			Target: "owned", Figures: map[string]float64{"x": 1}, Result: result, Error: errText,
			Load: &loadReport{Noisy: noisy, OtherCores: map[bool]float64{true: 0.9, false: 0.1}[noisy]},
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	lat := func(rate, p50, p99 float64) deliveryResult {
		return deliveryResult{Transport: "ws", Users: 100, Fanout: 1, Rate: rate, Latency: latencySummary{Count: 10, P50: p50, P99: p99}}
	}
	add("latency", false, lat(1000, 0.40, 0.90), "")
	add("latency", false, lat(1000, 0.42, 1.10), "")
	add("latency", true, lat(1000, 9.0, 90), "") // left out: the point has quiet runs
	add("latency", false, lat(10000, 0.80, 7.5), "")
	add("latency", false, lat(10000, 5, 50), "failed") // left out: the run failed
	fan := func(rate, got, p99 float64) deliveryResult {
		r := deliveryResult{Transport: "ws", Users: 1000, Fanout: 1000, Rate: rate, DeliveriesPerSec: got}
		r.Latency = latencySummary{Count: 10, P50: p99 / 3, P99: p99}
		return r
	}
	add("fanout", false, fan(500, 499000, 50), "")
	add("fanout", false, fan(1000, 998000, 110), "")
	idle := func(transport string, kb1, kb10 float64) idleResult {
		return idleResult{Transport: transport, Levels: []idleLevel{
			{Target: 1000, Held: 1000, RSSPerConn: kb1 * 1024},
			{Target: 10000, Held: 10000, RSSPerConn: kb10 * 1024},
			{Target: 20000, Skipped: "file limit"},
		}}
	}
	add("idle", false, idle("ws", 8.4, 7.9), "")
	add("idle", false, idle("sse", 36, 35.1), "")
	add("produce", false, map[string]any{"requests_per_s": 20000}, "")
	path := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const versusFixture = `{
  "server": "Centrifugo v6.9.1",
  "source": "BENCHMARKS.md",
  "caption": "measured earlier",
  "figures": {
    "latency_p99_ms_1000": {"min": 1, "max": 6},
    "fanout_deliveries_per_s": {"value": 60000},
    "idle_kb_per_conn": {"value": 51}
  }
}`

// svgTexts parses an SVG document, failing the test unless it is well-formed XML with an <svg>
// root that starts with <title> and <desc>, and returns its title, its description and all its
// text and attribute values.
func svgTexts(t *testing.T, name string, b []byte) (title, desc, all string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	var stack []string
	var sb strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", name, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 && tok.Name.Local != "svg" {
				t.Fatalf("%s: root element %q, want svg", name, tok.Name.Local)
			}
			stack = append(stack, tok.Name.Local)
			for _, a := range tok.Attr {
				sb.WriteString(a.Value + "\n")
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 2 && stack[1] == "title" {
				title += string(tok)
			}
			if len(stack) == 2 && stack[1] == "desc" {
				desc += string(tok)
			}
			sb.Write(tok)
			sb.WriteString("\n")
		}
	}
	if title == "" || desc == "" {
		t.Errorf("%s: title %q, desc %q: want both", name, title, desc)
	}
	return title, desc, sb.String()
}

// TestCharts builds the charts of a fixture of result lines and checks that each is an SVG
// document with its series, axis titles and figures: medians of the quiet runs, failed runs
// left out.
func TestCharts(t *testing.T) {
	in := chartFixture(t)
	versus := filepath.Join(t.TempDir(), "centrifugo.json")
	if err := os.WriteFile(versus, []byte(versusFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "charts")
	files, err := writeCharts(in, dir, versus, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("wrote %v; want latency, fanout, memory and versus-centrifugo", files)
	}
	for _, tc := range []struct {
		file  string
		title string
		texts []string // in the text or attributes: legend, axis titles, ticks, caption
		desc  []string // in <desc>: the figures in words
	}{
		{"latency.svg", "Delivery latency against rate",
			[]string{"p50", "p99", "records/s produced (log scale)", "latency, ms (log scale)", "1,000", "10,000", "realtime-service abc1234", "AMD EPYC <fixture & co>", "median of 1–2 runs", "1 of 4 runs was noisy"},
			[]string{"p50: 0.410 ms at 1,000 records/s, 0.800 ms at 10,000 records/s.", "p99: 1.00 ms at 1,000 records/s, 7.50 ms at 10,000 records/s."}},
		{"fanout.svg", "Fan-out: deliveries/s and latency against the offered rate",
			[]string{"delivered, WebSocket", "p99, WebSocket", "offered", "offered deliveries/s", "deliveries/s", "latency, ms", "500k", "1M"},
			[]string{"delivered, WebSocket: 499,000 deliveries/s at 500,000 offered deliveries/s, 998,000 deliveries/s at 1,000,000 offered deliveries/s.", "p99, WebSocket: 50.0 ms"}},
		{"memory.svg", "Memory per idle connection",
			[]string{"WebSocket", "SSE", "idle connections held (log scale)", "RSS per connection, KB", "7.90 KB", "35.1 KB"},
			[]string{"WebSocket: 8.40 KB per connection at 1,000 connections, 7.90 KB per connection at 10,000 connections."}},
		{"versus-centrifugo.svg", "realtime-service and Centrifugo v6.9.1, side by side",
			[]string{"Centrifugo v6.9.1", "not", "measured", "1–6", "998,000", "60,000", "7.90", "51.0", "Latency at 10,000 records/s", "measured earlier"},
			[]string{"Latency at 1,000 records/s, p99: realtime-service 1.00 ms (0.900–1.10), Centrifugo v6.9.1 1–6 ms (range reported).", "p50: realtime-service 0.800 ms, Centrifugo v6.9.1 not measured."}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			title, desc, all := svgTexts(t, tc.file, b)
			if title != tc.title {
				t.Errorf("title %q, want %q", title, tc.title)
			}
			for _, s := range tc.texts {
				if !strings.Contains(all, s) {
					t.Errorf("no text %q in %s", s, tc.file)
				}
			}
			for _, s := range tc.desc {
				if !strings.Contains(desc, s) {
					t.Errorf("desc lacks %q:\n%s", s, desc)
				}
			}
		})
	}
}

// TestChartsNothingToDraw: an empty file, or one without a latency, fanout or idle run that
// succeeded, is a clear error; a line that is not a result names its line number.
func TestChartsNothingToDraw(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", errNothingToChart.Error()},
		{"blank lines", "\n\n", errNothingToChart.Error()},
		{"only failures and other modes", `{"mode":"latency","error":"boom","result":{"rate":1000}}` + "\n" + `{"mode":"produce","result":{}}` + "\n", errNothingToChart.Error()},
		{"not JSON", `{"mode":"latency","result":{}}` + "\nnot json\n", "line 2:"},
		{"not a result", `{"figures":{}}` + "\n", "line 1: not a result line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".jsonl")
			if err := os.WriteFile(in, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			files, err := writeCharts(in, filepath.Join(dir, "out"), "", "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if len(files) != 0 {
				t.Errorf("wrote %v; want nothing", files)
			}
		})
	}
}

// TestReadVersus: a versus file names only known figures, each a value or a range.
func TestReadVersus(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"ok", versusFixture, ""},
		{"unknown figure", `{"server":"x","figures":{"p99":{"value":1}}}`, `unknown figure "p99"`},
		{"unknown field", `{"server":"x","figurez":{}}`, "unknown field"},
		{"no value", `{"server":"x","figures":{"idle_kb_per_conn":{"note":"?"}}}`, "want a positive value"},
		{"reversed range", `{"server":"x","figures":{"latency_p99_ms_1000":{"min":6,"max":1}}}`, "want a positive value"},
		{"no server", `{"figures":{}}`, "server is empty"},
		{"ours", `{"server":"x","figures":{},"ours":{"idle_kb_per_conn":{"value":10,"min":9,"max":11}}}`, ""},
		{"ours unknown", `{"server":"x","figures":{},"ours":{"p99":{"value":1}}}`, `ours: figure "p99"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readVersus(p)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestVersusChartOurs: a versus file's ours figures (from go run ./bench compare) are drawn as
// realtime-service's bars, even without runs of the latency, fanout and idle modes.
func TestVersusChartOurs(t *testing.T) {
	vs := &versusData{
		Server:  "Centrifugo v6.9.1",
		Figures: map[string]versusFigure{"latency_p99_ms_1000": {Value: 3.25, Min: 3, Max: 4}},
		Ours:    map[string]versusFigure{"latency_p99_ms_1000": {Value: 7.5, Min: 7, Max: 8}},
	}
	b := versusChart(nil, nil, nil, vs, nil)
	if b == nil {
		t.Fatal("no chart drawn")
	}
	for _, want := range []string{"p99: realtime-service 7.5", "Centrifugo v6.9.1 3.25"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}
