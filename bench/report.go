package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// figure is one number a run produced, named as in BENCHMARKS.md.
type figure struct {
	Name  string
	Unit  string
	Value float64
}

// machineInfo identifies the machine a run was measured on.
type machineInfo struct {
	CPUs      int    `json:"nproc"`
	Model     string `json:"cpu_model"`
	MemoryMB  int64  `json:"memory_mb"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

func readMachine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.Model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryMB = kb >> 10
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		m.Kernel = string(b)
	}
	return m
}

// revision is the commit measured, and whether the service's sources differ from it.
type revision struct {
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`            // uncommitted changes under cmd/, internal/, go.mod, go.sum
	Binary string `json:"binary,omitempty"` // -bin: a prebuilt binary; the commit is then the tree's
}

// readRevision describes what the service was built from: git revision rev (-rev), or the
// working tree at root (its HEAD, and whether the service's sources have uncommitted changes).
func readRevision(root string, c *common) revision {
	var r revision
	ref := "HEAD"
	if c.rev != "" {
		ref = c.rev
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", ref).Output(); err == nil {
		r.Commit = strings.TrimSpace(string(out))
	}
	if c.rev != "" {
		return r
	}
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "cmd", "internal", "go.mod", "go.sum").Output(); err == nil {
		r.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
	r.Binary = c.bin
	return r
}

// runRecord is the JSON line appended per run.
type runRecord struct {
	Time     string             `json:"time"`
	Mode     string             `json:"mode"`
	Args     []string           `json:"args"`
	Series   string             `json:"series"` // shared by the runs of one invocation
	Run      int                `json:"run"`
	Runs     int                `json:"runs"`
	Revision revision           `json:"revision"`
	Machine  machineInfo        `json:"machine"`
	Target   string             `json:"target"` // "owned" or the -target URL
	Note     string             `json:"note,omitempty"`
	Figures  map[string]float64 `json:"figures"`
	Result   any                `json:"result"`
	Load     *loadReport        `json:"load"`
	Error    string             `json:"error,omitempty"`
}

// session is one invocation: its identity, the machine, the results file, and the runs so far.
type session struct {
	mode    string
	args    []string
	series  string
	root    string
	out     string
	note    string
	target  string
	machine machineInfo
	rev     revision
	stdout  io.Writer
	runs    [][]figure
	noisy   []bool
}

func newSession(mode string, args []string, c *common, root string, stdout io.Writer) *session {
	s := &session{
		mode:    mode,
		args:    args,
		series:  time.Now().UTC().Format("20060102T150405Z") + "-" + randomHex(2),
		root:    root,
		note:    c.note,
		target:  "owned",
		machine: readMachine(),
		rev:     readRevision(root, c),
		stdout:  stdout,
	}
	if c.out != "" {
		s.out = c.out
		if !filepath.IsAbs(s.out) {
			s.out = filepath.Join(root, s.out)
		}
	}
	if c.target != "" {
		s.target = c.target
	}
	return s
}

// record prints run i's table and appends its JSON line.
func (s *session) record(i, n int, figs []figure, result any, load *loadReport, runErr error) error {
	rec := runRecord{
		Time:     time.Now().UTC().Format(time.RFC3339),
		Mode:     s.mode,
		Args:     s.args,
		Series:   s.series,
		Run:      i,
		Runs:     n,
		Revision: s.rev,
		Machine:  s.machine,
		Target:   s.target,
		Note:     s.note,
		Figures:  map[string]float64{},
		Result:   result,
		Load:     load,
	}
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	for _, f := range figs {
		rec.Figures[f.Name] = f.Value
	}
	title := fmt.Sprintf("%s run %d/%d  commit %s", s.mode, i, n, s.rev.Commit)
	if s.rev.Dirty {
		title += " (+uncommitted changes)"
	}
	printFigures(s.stdout, title, figs, load)
	if figs != nil {
		s.runs = append(s.runs, figs)
		s.noisy = append(s.noisy, load != nil && load.Noisy)
	}
	if s.out == "" {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}

// summarize prints the median and range of every figure over the runs, when there were several.
// Noisy runs are left out when at least one run was quiet.
func (s *session) summarize() {
	var runs [][]figure
	noisy := 0
	for i, r := range s.runs {
		if s.noisy[i] {
			noisy++
			continue
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		runs = s.runs
	} else if noisy > 0 {
		fmt.Fprintf(s.stdout, "\n(%d noisy runs left out of the summary)\n", noisy)
	}
	if len(runs) < 2 {
		return
	}
	fmt.Fprintf(s.stdout, "\n== %s: %d runs, median (min-max)  commit %s  %s, %d CPUs\n",
		s.mode, len(runs), s.rev.Commit, s.machine.Model, s.machine.CPUs)
	tw := tabwriter.NewWriter(s.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tmedian\tmin\tmax\tunit\truns\n")
	for j, f := range runs[0] {
		var vals []float64
		for _, r := range runs {
			if j < len(r) && r[j].Name == f.Name {
				vals = append(vals, r[j].Value)
			}
		}
		med, lo, hi := medianRange(vals)
		per := make([]string, len(vals))
		for k, v := range vals {
			per[k] = fmtNum(v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, fmtNum(med), fmtNum(lo), fmtNum(hi), f.Unit, strings.Join(per, " "))
	}
	tw.Flush()
	if noisy > 0 && len(runs) == len(s.runs) {
		fmt.Fprintf(s.stdout, "warning: all %d runs were noisy (other processes used more than %.2f cores); rerun them\n", noisy, noisyCores)
	}
}

func medianRange(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

func printFigures(w io.Writer, title string, figs []figure, load *loadReport) {
	fmt.Fprintf(w, "\n-- %s\n", title)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, f := range figs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, fmtNum(f.Value), f.Unit)
	}
	tw.Flush()
	if load != nil {
		noisy := ""
		if load.Noisy {
			noisy = "  NOISY: rerun"
		}
		var parts []string
		for _, r := range []string{"server", "broker", "tool"} {
			if c, ok := load.Cores[r]; ok {
				parts = append(parts, fmt.Sprintf("%s %.2f", r, c))
			}
		}
		for _, r := range slices.Sorted(maps.Keys(load.Cores)) {
			if r != "server" && r != "broker" && r != "tool" {
				parts = append(parts, fmt.Sprintf("%s %.2f", r, load.Cores[r]))
			}
		}
		roles := strings.Join(parts, ", ")
		fmt.Fprintf(w, "machine load: loadavg %.2f (max %.2f); busy %.2f cores: %s, irq %.2f, other %.2f%s\n",
			load.LoadAvg1, load.LoadAvg1Max, load.MachineCores, roles, load.IRQCores, load.OtherCores, noisy)
	}
}

// fmtNum prints a figure with precision that fits its size.
func fmtNum(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case v == float64(int64(v)) && a < 1e15:
		return strconv.FormatInt(int64(v), 10)
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
