package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc (100 on every Linux architecture
// this runs on).
const clockTicks = 100

// procCPU returns the user+system CPU time of pid in clock ticks.
func procCPU(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // f[0] is field 3 (state); utime is field 14, stime 15
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return ut + st, nil
}

// procRSS returns VmRSS of pid in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// procIO returns the read and write system calls pid has made (syscr, syscw of /proc/pid/io;
// writev and sendmsg count as writes) and the bytes it wrote with them (wchar: sockets, pipes
// and files alike).
func procIO(pid int) (reads, writes, wbytes uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			reads, _ = strconv.ParseUint(v, 10, 64)
		} else if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			writes, _ = strconv.ParseUint(v, 10, 64)
		} else if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			wbytes, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return reads, writes, wbytes, nil
}

// procFileLimit returns the soft and hard "Max open files" of pid.
func procFileLimit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0] + "/" + f[1]
			}
		}
	}
	return "?"
}

// cpuStat is the machine-wide CPU time from /proc/stat, in clock ticks.
type cpuStat struct{ busy, softirq uint64 }

func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var v [10]uint64
	for i := 1; i < len(f) && i <= 10; i++ {
		v[i-1], _ = strconv.ParseUint(f[i], 10, 64)
	}
	user, nice, system, irq, softirq, steal := v[0], v[1], v[2], v[5], v[6], v[7]
	return cpuStat{busy: user + nice + system + irq + softirq + steal, softirq: irq + softirq}
}

func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// raiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard limit (Go does so at
// start-up since 1.19; doing it again costs nothing and makes it explicit). The hard limit can be
// raised only with CAP_SYS_RESOURCE, so it bounds how many connections one process can hold.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// fileLimit is this process's soft RLIMIT_NOFILE.
func fileLimit() int {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	return int(l.Cur)
}

// loadMonitor samples the machine and the processes of a run once a second: the load average,
// the CPU time of the server, the broker and this tool, and the machine's total busy time, so
// that the CPU time of everything else (other engineers' tests, builds) can be reported.
type loadMonitor struct {
	mu       sync.Mutex
	start    time.Time
	cpu0     cpuStat
	load0    float64
	loadMax  float64
	roles    map[string]*roleCPU
	rssMax   map[string]int64
	stopc    chan struct{}
	donec    chan struct{}
	finished *loadReport
}

type roleCPU struct {
	pid     int
	first   uint64 // ticks at the first sample of pid
	last    uint64
	retired uint64 // ticks of earlier processes in this role (a restarted node)
	// System calls of pid: reads and writes at the first and the last sample.
	r0, r1, w0, w1 uint64
	b0, b1         uint64 // bytes written (wchar) at the first and the last sample
}

// loadReport is the machine load during a run. Cores are average CPU cores busy.
type loadReport struct {
	Seconds      float64            `json:"seconds"`
	LoadAvg1     float64            `json:"loadavg1_start"`
	LoadAvg1Max  float64            `json:"loadavg1_max"`
	MachineCores float64            `json:"machine_busy_cores"`
	IRQCores     float64            `json:"irq_softirq_cores"`
	Cores        map[string]float64 `json:"cores"` // server, broker, tool
	// ReadsPS and WritesPS are each role's read and write system calls per second (/proc/pid/io).
	ReadsPS  map[string]float64 `json:"read_syscalls_per_s"`
	WritesPS map[string]float64 `json:"write_syscalls_per_s"`
	// WriteBytes is the bytes each role wrote over the window (wchar of /proc/pid/io).
	WriteBytes map[string]float64 `json:"write_bytes"`
	OtherCores float64            `json:"other_cores"`
	RSSMaxMB   map[string]float64 `json:"rss_max_mb"`
	Noisy      bool               `json:"noisy"`
}

// noisyCores is how much CPU outside the run's processes (and interrupts) marks a run as noisy.
const noisyCores = 0.25

func startLoadMonitor(pids map[string]int) *loadMonitor {
	m := &loadMonitor{
		start:  time.Now(),
		cpu0:   readCPUStat(),
		load0:  loadAvg1(),
		roles:  map[string]*roleCPU{},
		rssMax: map[string]int64{},
		stopc:  make(chan struct{}),
		donec:  make(chan struct{}),
	}
	m.loadMax = m.load0
	for role, pid := range pids {
		m.setPID(role, pid)
	}
	go m.loop()
	return m
}

// started tracks pid, a process started during the monitored window, in role, counting all
// of its CPU time since it started; the CPU time of a previous process in that role is kept.
func (m *loadMonitor) started(role string, pid int) {
	m.setPID(role, pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.roles[role]; r != nil && r.pid == pid {
		r.first, r.r0, r.w0, r.b0 = 0, 0, 0, 0
	}
}

// setPID starts tracking pid in role; the CPU time of a previous process in that role is kept.
func (m *loadMonitor) setPID(role string, pid int) {
	if pid <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.roles[role]
	if r == nil {
		r = &roleCPU{}
		m.roles[role] = r
	}
	if r.pid != 0 {
		r.retired += r.last - r.first
	}
	t, _ := procCPU(pid)
	r.pid, r.first, r.last = pid, t, t
	rd, wr, wb, _ := procIO(pid)
	r.r0, r.r1, r.w0, r.w1, r.b0, r.b1 = rd, rd, wr, wr, wb, wb
}

// exited records the CPU time of role's process at its exit (from its rusage, since /proc no
// longer has it), so that what it used after the last sample is not lost.
func (m *loadMonitor) exited(role string, ticks uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.roles[role]; r != nil && ticks >= r.first {
		r.last = ticks
	}
}

func (m *loadMonitor) loop() {
	defer close(m.donec)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-m.stopc:
			m.sample()
			return
		case <-tick.C:
			m.sample()
		}
	}
}

func (m *loadMonitor) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := loadAvg1(); l > m.loadMax {
		m.loadMax = l
	}
	for role, r := range m.roles {
		if t, err := procCPU(r.pid); err == nil && t >= r.first {
			r.last = t
		}
		if rd, wr, wb, err := procIO(r.pid); err == nil && rd >= r.r0 && wr >= r.w0 && wb >= r.b0 {
			r.r1, r.w1, r.b1 = rd, wr, wb
		}
		if rss, err := procRSS(r.pid); err == nil && rss > m.rssMax[role] {
			m.rssMax[role] = rss
		}
	}
}

// stop ends sampling and returns the report (the same one on every call).
func (m *loadMonitor) stop() *loadReport {
	m.mu.Lock()
	if m.finished != nil {
		defer m.mu.Unlock()
		return m.finished
	}
	m.mu.Unlock()
	close(m.stopc)
	<-m.donec
	m.mu.Lock()
	defer m.mu.Unlock()
	secs := time.Since(m.start).Seconds()
	cpu1 := readCPUStat()
	cores := func(ticks uint64) float64 { return float64(ticks) / clockTicks / secs }
	rep := &loadReport{
		Seconds:      secs,
		LoadAvg1:     m.load0,
		LoadAvg1Max:  m.loadMax,
		MachineCores: cores(cpu1.busy - m.cpu0.busy),
		IRQCores:     cores(cpu1.softirq - m.cpu0.softirq),
		Cores:        map[string]float64{},
		ReadsPS:      map[string]float64{},
		WritesPS:     map[string]float64{},
		WriteBytes:   map[string]float64{},
		RSSMaxMB:     map[string]float64{},
	}
	ours := 0.0
	for role, r := range m.roles {
		c := cores(r.retired + r.last - r.first)
		rep.Cores[role] = c
		ours += c
		rep.ReadsPS[role] = float64(r.r1-r.r0) / secs
		rep.WritesPS[role] = float64(r.w1-r.w0) / secs
		rep.WriteBytes[role] = float64(r.b1 - r.b0)
	}
	for role, rss := range m.rssMax {
		rep.RSSMaxMB[role] = float64(rss) / (1 << 20)
	}
	rep.OtherCores = max(0, rep.MachineCores-rep.IRQCores-ours)
	rep.Noisy = rep.OtherCores > noisyCores
	m.finished = rep
	return rep
}
