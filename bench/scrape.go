package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// nodeStats is what the node says about itself in /metrics, and its RSS from /proc.
type nodeStats struct {
	RSS         int64   `json:"rss_bytes"`         // VmRSS (0 when the pid is unknown)
	HeapInuse   float64 `json:"heap_inuse_bytes"`  // go_memstats_heap_inuse_bytes
	StackInuse  float64 `json:"stack_inuse_bytes"` // go_memstats_stack_inuse_bytes
	Sys         float64 `json:"sys_bytes"`         // go_memstats_sys_bytes
	Goroutines  float64 `json:"goroutines"`        // go_goroutines
	Connections float64 `json:"connections"`       // sum of realtime_connections
	Deliveries  float64 `json:"deliveries"`        // realtime_deliveries_total
	Disconnects float64 `json:"disconnects"`       // sum of realtime_disconnects_total
	Slow        float64 `json:"slow_disconnects"`  // realtime_disconnects_total{reason="slow"}
	ProcessRSS  float64 `json:"process_rss_bytes"` // process_resident_memory_bytes
	// Resyncs counts realtime_resyncs_total by reason: resumes that could not be honoured.
	Resyncs map[string]float64 `json:"resyncs,omitempty"`
	// Replays counts realtime_replays_total by source (memory, kafka): resumes that missed events.
	Replays       map[string]float64 `json:"replays,omitempty"`
	Replayed      float64            `json:"replayed_events,omitempty"` // realtime_replayed_events_total
	Published     float64            `json:"published,omitempty"`       // realtime_events_published_total
	HistoryBytes  float64            `json:"history_bytes,omitempty"`   // realtime_history_bytes (the history's estimate)
	HistoryEvents float64            `json:"history_events,omitempty"`  // realtime_history_events
	HistoryUsers  float64            `json:"history_users,omitempty"`   // realtime_history_users
	// Receipts counts realtime_receipts_produced_total by kind and ReceiptsDropped
	// realtime_receipts_dropped_total (all reasons): with REALTIME_RECEIPTS_TOPIC set, whether
	// every receipt reached Kafka.
	Receipts        map[string]float64 `json:"receipts,omitempty"`
	ReceiptsDropped float64            `json:"receipts_dropped,omitempty"`
}

// scrapeMetrics reads the node's /metrics (Prometheus text format) and its RSS.
func scrapeMetrics(ctx context.Context, s *stack) (nodeStats, error) {
	var st nodeStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := splitSample(line)
		if !ok {
			continue
		}
		base, labels, _ := strings.Cut(name, "{")
		switch base {
		case "go_memstats_heap_inuse_bytes":
			st.HeapInuse = value
		case "go_memstats_stack_inuse_bytes":
			st.StackInuse = value
		case "go_memstats_sys_bytes":
			st.Sys = value
		case "go_goroutines":
			st.Goroutines = value
		case "realtime_connections":
			st.Connections += value
		case "realtime_deliveries_total":
			st.Deliveries = value
		case "realtime_disconnects_total":
			st.Disconnects += value
			if strings.Contains(labels, `reason="slow"`) {
				st.Slow += value
			}
		case "process_resident_memory_bytes":
			st.ProcessRSS = value
		case "realtime_resyncs_total":
			st.Resyncs = addByLabel(st.Resyncs, labels, "reason", value)
		case "realtime_replays_total":
			st.Replays = addByLabel(st.Replays, labels, "source", value)
		case "realtime_replayed_events_total":
			st.Replayed = value
		case "realtime_events_published_total":
			st.Published = value
		case "realtime_history_bytes":
			st.HistoryBytes = value
		case "realtime_history_events":
			st.HistoryEvents = value
		case "realtime_history_users":
			st.HistoryUsers = value
		case "realtime_receipts_produced_total":
			st.Receipts = addByLabel(st.Receipts, labels, "kind", value)
		case "realtime_receipts_dropped_total":
			st.ReceiptsDropped += value
		}
	}
	if s.nodePID > 0 {
		st.RSS, _ = procRSS(s.nodePID)
	} else {
		st.RSS = int64(st.ProcessRSS)
	}
	return st, sc.Err()
}

// splitSample splits "name{labels} value [timestamp]".
func splitSample(line string) (string, float64, bool) {
	i := strings.LastIndexByte(line, '}')
	if i < 0 {
		i = 0
	}
	f := strings.Fields(line[i:])
	name := line[:i]
	if i == 0 {
		if len(f) < 2 {
			return "", 0, false
		}
		name, f = f[0], f[1:]
	} else {
		name += "}"
		f = f[1:]
		if len(f) == 0 {
			return "", 0, false
		}
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return name, v, err == nil
}

// forceGC makes the node collect garbage: GET /debug/pprof/heap?gc=1 runs runtime.GC before it
// writes the profile. Twice, because what sync.Pools hold survives one collection (the victim
// cache). It does nothing without a debug address.
func forceGC(ctx context.Context, s *stack) {
	if s.debugAddr == "" {
		return
	}
	for range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.debugAddr+"/debug/pprof/heap?gc=1", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// cpuProfile takes a CPU profile of the node for d and writes it to path. It runs in the
// background; wait on the returned channel for its error.
func cpuProfile(ctx context.Context, s *stack, d time.Duration, path string) <-chan error {
	errc := make(chan error, 1)
	if path == "" {
		errc <- nil
		return errc
	}
	if s.debugAddr == "" {
		errc <- fmt.Errorf("-cpuprofile needs the node's debug address (-debug-addr with -target)")
		return errc
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	go func() {
		errc <- fetchTo(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.debugAddr, secs), path)
	}()
	return errc
}

// heapProfile writes a heap profile of the node (after a GC) to path.
func heapProfile(ctx context.Context, s *stack, path string) error {
	if path == "" {
		return nil
	}
	if s.debugAddr == "" {
		return fmt.Errorf("-heapprofile needs the node's debug address (-debug-addr with -target)")
	}
	return fetchTo(ctx, "http://"+s.debugAddr+"/debug/pprof/heap?gc=1", path)
}

func fetchTo(ctx context.Context, url, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// addByLabel adds value to m (made if nil) under the value of label in a Prometheus label set
// (`reason="slow",...`).
func addByLabel(m map[string]float64, labels, label string, value float64) map[string]float64 {
	if m == nil {
		m = map[string]float64{}
	}
	_, v, _ := strings.Cut(labels, label+`="`)
	v, _, _ = strings.Cut(v, `"`)
	m[v] += value
	return m
}
