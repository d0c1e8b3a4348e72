package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// runReport summarizes bench/results.jsonl: for each scenario (mode and arguments, without the
// flags that only say how to repeat or where to write) and commit, the median and range of every
// figure over the runs that were not noisy. It is how BENCHMARKS.md is kept current from runs
// made at different times.
func runReport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "bench/results.jsonl", "the JSON lines file (relative to the module root)")
	mode := fs.String("mode", "", "only this mode")
	commit := fs.String("commit", "", "only runs of this commit")
	noisy := fs.Bool("noisy", false, "include noisy runs")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	path := *in
	if !filepath.IsAbs(path) {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		path = filepath.Join(root, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()

	type group struct {
		key     string
		commit  string
		names   []string
		units   map[string]string
		values  map[string][]float64
		runs    int
		skipped int
	}
	var groups []*group
	byKey := map[string]*group{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var rec struct {
			Mode     string             `json:"mode"`
			Args     []string           `json:"args"`
			Revision revision           `json:"revision"`
			Figures  map[string]float64 `json:"figures"`
			Load     *loadReport        `json:"load"`
			Error    string             `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Error != "" || len(rec.Figures) == 0 {
			continue
		}
		if *mode != "" && rec.Mode != *mode || *commit != "" && rec.Revision.Commit != *commit {
			continue
		}
		c := rec.Revision.Commit
		if rec.Revision.Dirty {
			c += "+dirty"
		}
		key := rec.Mode + " " + strings.Join(scenarioArgs(rec.Args), " ")
		g := byKey[key+"@"+c]
		if g == nil {
			g = &group{key: key, commit: c, units: map[string]string{}, values: map[string][]float64{}}
			byKey[key+"@"+c] = g
			groups = append(groups, g)
		}
		if rec.Load != nil && rec.Load.Noisy && !*noisy {
			g.skipped++
			continue
		}
		g.runs++
		for name, v := range rec.Figures {
			if _, ok := g.values[name]; !ok {
				g.names = append(g.names, name)
			}
			g.values[name] = append(g.values[name], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, g := range groups {
		fmt.Fprintf(stdout, "\n== go run ./bench %s   commit %s: %d quiet runs (%d noisy left out)\n", g.key, g.commit, g.runs, g.skipped)
		if g.runs == 0 {
			continue
		}
		slices.Sort(g.names)
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "figure\tmedian\tmin\tmax\n")
		for _, name := range g.names {
			med, lo, hi := medianRange(g.values[name])
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, fmtNum(med), fmtNum(lo), fmtNum(hi))
		}
		tw.Flush()
	}
	return nil
}

// scenarioArgs drops the flags that do not change what is measured: repetition, waiting, output,
// profiles, the revision (the commit is reported apart) and notes.
func scenarioArgs(args []string) []string {
	drop := map[string]bool{
		"runs": true, "rerun-noisy": true, "wait-quiet": true, "out": true, "chart": true, "note": true, "timeout": true,
		"cpuprofile": true, "heapprofile": true, "selfprofile": true, "rev": true, "bin": true,
	}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		if strings.HasPrefix(a, "-") && drop[name] {
			if !hasValue && i+1 < len(args) {
				i++ // the value is the next argument
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
