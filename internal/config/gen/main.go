// Command gen writes the variable tables of docs/configuration.md from the lists the code reads:
// config.Variables (the service) and telemetry.Variables (tracing). Each table sits between two
// markers, which gen keeps, with the hand-written text around them:
//
//	<!-- begin generated: config.Variables -->
//	<!-- end generated: config.Variables -->
//
// Run it as `go generate ./internal/config` (or `go run ./internal/config/gen` from the
// repository root). A test of this package fails when the file differs from what gen writes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/telemetry"
)

func main() {
	out := flag.String("o", "docs/configuration.md", "the file to rewrite between its markers")
	flag.Parse()
	if err := rewrite(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := render(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(out, doc) {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}

// row is one variable: name, default ("" = unset), meaning (Markdown).
type row struct{ name, def, meaning string }

// tables returns the generated tables by marker name, in the order they must appear.
func tables() []struct {
	name string
	rows []row
} {
	var cfg, otel []row
	for _, v := range config.Variables() {
		cfg = append(cfg, row{v.Name, v.Default, v.Meaning})
	}
	for _, v := range telemetry.Variables() {
		otel = append(otel, row{v.Name, v.Default, v.Meaning})
	}
	return []struct {
		name string
		rows []row
	}{{"config.Variables", cfg}, {"telemetry.Variables", otel}}
}

// render returns doc with the content between each pair of markers replaced by its table. It
// fails when a pair is missing or out of order, so that a table cannot silently vanish.
func render(doc []byte) ([]byte, error) {
	s := string(doc)
	var b strings.Builder
	for _, t := range tables() {
		begin := "<!-- begin generated: " + t.name + " -->"
		end := "<!-- end generated: " + t.name + " -->"
		before, rest, ok := strings.Cut(s, begin)
		if !ok {
			return nil, fmt.Errorf("no %q marker", begin)
		}
		_, after, ok := strings.Cut(rest, end)
		if !ok {
			return nil, fmt.Errorf("no %q marker after %q", end, begin)
		}
		b.WriteString(before)
		b.WriteString(begin)
		b.WriteString("\n")
		b.WriteString(table(t.rows))
		b.WriteString(end)
		s = after
	}
	b.WriteString(s)
	return []byte(b.String()), nil
}

// table is a Markdown table of rows: the name and a set default in code spans, "unset" for an
// empty default, and "|" escaped in every cell.
func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n| --- | --- | --- |\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, r := range rows {
		def := "unset"
		if r.def != "" {
			def = "`" + r.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.name, cell(def), cell(r.meaning))
	}
	return b.String()
}
