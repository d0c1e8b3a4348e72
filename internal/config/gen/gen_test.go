package main

import (
	"os"
	"strings"
	"testing"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/telemetry"
)

const docPath = "../../../docs/configuration.md"

// TestConfigurationDocIsGenerated: docs/configuration.md is exactly what gen writes, so its
// tables name every variable the service reads, with the defaults and meanings of the code, and
// nothing else.
func TestConfigurationDocIsGenerated(t *testing.T) {
	have, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := render(have)
	if err != nil {
		t.Fatalf("docs/configuration.md: %v", err)
	}
	if string(have) == string(want) {
		return
	}
	h, w := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(h) || i < len(w); i++ {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			t.Fatalf("docs/configuration.md differs from the variable lists at line %d:\n have %q\n want %q\nrun `go generate ./internal/config` and commit the file", i+1, hl, wl)
		}
	}
}

// TestRenderKeepsTheHandWrittenText: only the text between the markers changes, every variable
// gets a row, and running it twice changes nothing.
func TestRenderKeepsTheHandWrittenText(t *testing.T) {
	doc := "# Title\n\nabove\n<!-- begin generated: config.Variables -->\nstale | row\n<!-- end generated: config.Variables -->\nbetween\n" +
		"<!-- begin generated: telemetry.Variables -->\n<!-- end generated: telemetry.Variables -->\nbelow\n"
	out, err := render([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, keep := range []string{"# Title\n\nabove\n<!-- begin", "-->\nbetween\n<!-- begin", "telemetry.Variables -->\nbelow\n"} {
		if !strings.Contains(s, keep) {
			t.Errorf("lost %q:\n%s", keep, s)
		}
	}
	if strings.Contains(s, "stale") {
		t.Errorf("the old table is still there:\n%s", s)
	}
	for _, v := range config.Variables() {
		if !strings.Contains(s, "| `"+v.Name+"` |") {
			t.Errorf("no row for %s", v.Name)
		}
	}
	for _, v := range telemetry.Variables() {
		if !strings.Contains(s, "| `"+v.Name+"` |") {
			t.Errorf("no row for %s", v.Name)
		}
	}
	again, err := render(out)
	if err != nil || string(again) != s {
		t.Errorf("a second render changed the file (%v)", err)
	}
}

func TestRenderNeedsEveryMarker(t *testing.T) {
	for _, doc := range []string{
		"no markers at all",
		"<!-- begin generated: config.Variables -->\n<!-- end generated: config.Variables -->\n", // tracing missing
		"<!-- begin generated: config.Variables -->\n<!-- begin generated: telemetry.Variables -->\n<!-- end generated: telemetry.Variables -->\n",
	} {
		if _, err := render([]byte(doc)); err == nil {
			t.Errorf("render(%q) = nil error", doc)
		}
	}
}

func TestTableEscapesPipes(t *testing.T) {
	got := table([]row{{"A", "", "x | y"}, {"B", "1", "z"}})
	want := "| variable | default | meaning |\n| --- | --- | --- |\n| `A` | unset | x \\| y |\n| `B` | `1` | z |\n"
	if got != want {
		t.Errorf("table = %q, want %q", got, want)
	}
}
