package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// idleLevel is the node's cost at one connection count.
type idleLevel struct {
	Target       int       `json:"target"`
	Held         int       `json:"held"`    // connections the node reports after settling
	Dropped      int       `json:"dropped"` // client connections that ended during the hold
	DialFailures int       `json:"dial_failures"`
	Stats        nodeStats `json:"stats"`
	RSSPerConn   float64   `json:"rss_per_conn_bytes"`
	HeapPerConn  float64   `json:"heap_per_conn_bytes"`
	StackPerConn float64   `json:"stack_per_conn_bytes"`
	GoroutinesPC float64   `json:"goroutines_per_conn"`
	ToolRSS      int64     `json:"tool_rss_bytes"`
	Skipped      string    `json:"skipped,omitempty"`
}

type idleResult struct {
	Transport     string      `json:"transport"`
	Base          nodeStats   `json:"base"`
	Levels        []idleLevel `json:"levels"`
	NodeFileLimit string      `json:"node_file_limit"`
	ToolFileLimit int         `json:"tool_file_limit"`
}

func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	levels := intList{1000, 10000}
	fs.Var(&levels, "conns", "connection counts to measure, ascending, comma-separated (each level adds connections to the previous)")
	settle := fs.Duration("settle", 5*time.Second, "wait this long after a forced GC before measuring")
	hold := fs.Duration("hold", 10*time.Second, "hold each level this long and count connections that drop")
	readBuf := fs.Int("read-buffer", 1024, "client read buffer per connection, bytes")
	parallel := fs.Int("dial-parallel", 256, "connections opened concurrently")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	slices.Sort(levels)
	top := levels[len(levels)-1]
	perRun := time.Duration(len(levels))*(2**settle+*hold+30*time.Second) + time.Duration(top/1000)*time.Second + time.Minute
	return repeat(ctx, "idle", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return idleRun(ctx, st, &c, levels, *settle, *hold, *readBuf, *parallel, run, stderr)
	})
}

// idleClient is a connection that only reads (answering pings) and counts what it gets.
type idleClient struct {
	fc      frameConn
	closing atomic.Bool
	ended   atomic.Bool
	done    chan struct{}
}

func idleRun(ctx context.Context, st *stack, c *common, levels []int, settle, hold time.Duration, readBuf, parallel, run int, stderr io.Writer) ([]figure, any, *loadReport, error) {
	res := idleResult{Transport: c.transport, ToolFileLimit: fileLimit(), NodeFileLimit: "?"}
	if st.nodePID > 0 {
		res.NodeFileLimit = procFileLimit(st.nodePID)
	}
	limit := res.ToolFileLimit
	if n, err := strconv.Atoi(strings.Split(res.NodeFileLimit, "/")[0]); err == nil && n < limit {
		limit = n
	}
	const reserve = 100 // listeners, broker connections, the debug and metrics requests

	mon := monitor(st)
	measure := func() (nodeStats, error) {
		forceGC(ctx, st)
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return nodeStats{}, context.Cause(ctx)
		}
		return scrapeMetrics(ctx, st)
	}
	base, err := measure()
	if err != nil {
		return nil, nil, mon.stop(), err
	}
	res.Base = base

	var mu sync.Mutex
	var clients []*idleClient
	defer func() {
		for _, cl := range clients {
			cl.closing.Store(true)
			cl.fc.close()
		}
		for _, cl := range clients {
			<-cl.done
		}
	}()
	d := newDialer(c.transport, st.url, readBuf)
	var figs []figure
	var runErr error
	for _, n := range levels {
		lv := idleLevel{Target: n}
		if n > limit-reserve {
			lv.Skipped = fmt.Sprintf("%d connections need %d file descriptors in the node and in this tool; RLIMIT_NOFILE is %d (hard limit; raising it needs CAP_SYS_RESOURCE)", n, n, limit)
			fmt.Fprintf(stderr, "idle: skipping %d: %s\n", n, lv.Skipped)
			res.Levels = append(res.Levels, lv)
			figs = append(figs, figure{fmt.Sprintf("held @%d", n), "conns", 0})
			continue
		}
		users := make([]string, n-len(clients))
		for i := range users {
			users[i] = "idle" + strconv.Itoa(len(clients)+i)
		}
		toks, err := st.tokens(users, 2*time.Hour)
		if err != nil {
			return nil, nil, mon.stop(), err
		}
		failed, err := connectAll(ctx, d, toks, parallel, func(i int, fc frameConn) {
			cl := &idleClient{fc: fc, done: make(chan struct{})}
			mu.Lock()
			clients = append(clients, cl)
			mu.Unlock()
			go func() {
				defer close(cl.done)
				fc.read(func([]byte) {})
				if !cl.closing.Load() {
					cl.ended.Store(true)
				}
			}()
		})
		lv.DialFailures = failed
		if err != nil {
			fmt.Fprintf(stderr, "idle: %d connections failed at level %d: %v\n", failed, n, err)
			runErr = errors.Join(runErr, err)
		}
		// Wait until the node has registered them all (the handler returns before the hub
		// knows the connection only by microseconds, but check).
		waitUntil(ctx, 30*time.Second, func() bool {
			s, err := scrapeMetrics(ctx, st)
			return err == nil && int(s.Connections) >= len(clients)
		})
		s, err := measure()
		if err != nil {
			return nil, nil, mon.stop(), err
		}
		select {
		case <-time.After(hold):
		case <-ctx.Done():
			return nil, nil, mon.stop(), context.Cause(ctx)
		}
		after, err := scrapeMetrics(ctx, st)
		if err != nil {
			return nil, nil, mon.stop(), err
		}
		for _, cl := range clients {
			if cl.ended.Load() {
				lv.Dropped++
			}
		}
		lv.Held = int(after.Connections)
		lv.Stats = s
		held := float64(s.Connections)
		if held > 0 {
			lv.RSSPerConn = float64(s.RSS-base.RSS) / held
			lv.HeapPerConn = (s.HeapInuse - base.HeapInuse) / held
			lv.StackPerConn = (s.StackInuse - base.StackInuse) / held
			lv.GoroutinesPC = (s.Goroutines - base.Goroutines) / held
		}
		lv.ToolRSS, _ = procRSS(os.Getpid())
		res.Levels = append(res.Levels, lv)
		figs = append(figs,
			figure{fmt.Sprintf("held @%d", n), "conns", float64(lv.Held)},
			figure{fmt.Sprintf("RSS/conn @%d", n), "KB", lv.RSSPerConn / 1024},
			figure{fmt.Sprintf("heap/conn @%d", n), "KB", lv.HeapPerConn / 1024},
			figure{fmt.Sprintf("stack/conn @%d", n), "KB", lv.StackPerConn / 1024},
			figure{fmt.Sprintf("goroutines/conn @%d", n), "", lv.GoroutinesPC},
			figure{fmt.Sprintf("server RSS @%d", n), "MB", float64(s.RSS) / (1 << 20)},
			figure{fmt.Sprintf("dropped @%d", n), "conns", float64(lv.Dropped)},
		)
	}
	if err := heapProfile(ctx, st, profilePath(c.heapProfile, run)); err != nil {
		fmt.Fprintf(stderr, "heap profile: %v\n", err)
	}
	figs = append([]figure{{"server RSS @0", "MB", float64(base.RSS) / (1 << 20)}}, figs...)
	return figs, res, mon.stop(), runErr
}

// waitUntil polls cond every 100 ms until it holds or limit passes.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
