package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	client "github.com/realtime-service/realtime-service/clients/go"
)

const (
	testSecret = "go-client-test-secret-0123456789abcdef"
	testAPIKey = "go-client-test-api-key-0123456789"
)

// buildService builds the service binary once per test run into a temporary directory.
func buildService(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "realtime-service")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/realtime-service").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuf is a process's output, kept for failure messages (the last 20,000 bytes).
type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	if len(s.b) > 20000 {
		s.b = s.b[len(s.b)-20000:]
	}
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// proc is a child process of the service binary.
type proc struct {
	cmd    *exec.Cmd
	log    *syncBuf
	exited chan struct{}
}

func startProc(t *testing.T, bin string, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), log: &syncBuf{}, exited: make(chan struct{})}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LOG_LEVEL=warn"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	return p
}

// stop sends SIGTERM (a graceful shutdown: 1001 and a final cursor) and waits, SIGKILL after 20 s.
func (p *proc) stop() error {
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("exited: %v", p.cmd.ProcessState)
		}
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("no exit 20 s after SIGTERM")
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("exit: %v", p.cmd.ProcessState)
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startBroker runs `realtime-service broker`, the embedded Kafka broker alone, so that service
// nodes can stop and start while Kafka keeps the records.
func startBroker(t *testing.T, bin string) string {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, bin, map[string]string{"KAFKA_EMBEDDED_ADDR": addr, "LOG_LEVEL": "info"}, "broker")
	t.Cleanup(func() { p.stop() })
	waitFor(t, "the broker", time.Minute, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("broker exited: %s", p.log)
		default:
		}
		return strings.Contains(p.log.String(), "embedded broker running")
	})
	return addr
}

// node is a service node on a broker, on the same loopback port across restarts.
type node struct {
	t       *testing.T
	bin, id string
	broker  string
	port    int
	url     string
	p       *proc
}

func newNode(t *testing.T, bin, broker, id string) *node {
	n := &node{t: t, bin: bin, id: id, broker: broker, port: freePort(t)}
	n.url = fmt.Sprintf("http://127.0.0.1:%d", n.port)
	t.Cleanup(func() { n.p.stop() })
	return n.start()
}

func (n *node) start() *node {
	n.p = startProc(n.t, n.bin, map[string]string{
		"HTTP_ADDR":             fmt.Sprintf("127.0.0.1:%d", n.port),
		"KAFKA_BROKERS":         n.broker,
		"KAFKA_NODE_ID":         n.id,
		"KAFKA_REQUEST_TIMEOUT": "5000",
		"REALTIME_JWT_SECRET":   testSecret,
		"REALTIME_API_KEYS":     testAPIKey,
		"HTTP_SHUTDOWN_TIMEOUT": "5000",
	}, "serve")
	waitFor(n.t, "node "+n.id+" ready", 90*time.Second, func() bool {
		select {
		case <-n.p.exited:
			n.t.Fatalf("node %s exited: %s", n.id, n.p.log)
		default:
		}
		r, err := http.Get(n.url + "/health/ready")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return n
}

func (n *node) stop() {
	if err := n.p.stop(); err != nil {
		n.t.Fatalf("node %s: %v\n%s", n.id, err, n.p.log)
	}
}

// proxy is a loopback TCP proxy to a port: cut closes every connection through it, as a
// network failure would (the client sees its connection dropped, the server the client gone).
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, port int) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, conns: map[net.Conn]bool{}}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c, port) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "http://" + p.l.Addr().String() }

func (p *proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *proxy) pipe(c net.Conn, port int) {
	defer c.Close()
	up, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return
	}
	defer up.Close()
	p.track(c, true)
	p.track(up, true)
	defer p.track(c, false)
	defer p.track(up, false)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func sign(t *testing.T, user string, ttl time.Duration) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "iat": time.Now().Unix(), "exp": time.Now().Add(ttl).Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkDelivery compares what the application saw with what was sent: every sent ID exactly
// once, and within each partition offsets strictly increasing. It returns the problems found.
func checkDelivery(sent, got []string) []string {
	var problems []string
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	var twice, missing, extra []string
	sentSet := map[string]bool{}
	for _, id := range sent {
		sentSet[id] = true
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range count {
		if n > 1 {
			twice = append(twice, id)
		}
		if !sentSet[id] {
			extra = append(extra, id)
		}
	}
	for _, l := range []struct {
		what string
		ids  []string
	}{{"seen more than once", twice}, {"never seen", missing}, {"not sent", extra}} {
		if len(l.ids) > 0 {
			sort.Strings(l.ids)
			problems = append(problems, fmt.Sprintf("%d IDs %s, e.g. %v", len(l.ids), l.what, l.ids[:min(5, len(l.ids))]))
		}
	}
	last := map[string]int64{}
	for _, id := range got {
		topic, part, off, ok := client.ParseID(id)
		if !ok {
			problems = append(problems, "bad ID "+id)
			continue
		}
		k := topic + ":" + strconv.Itoa(int(part))
		if prev, seen := last[k]; seen && off <= prev {
			problems = append(problems, fmt.Sprintf("%s after offset %d of %s", id, prev, k))
		}
		last[k] = off
	}
	return problems
}

func TestCheckDeliveryCatches(t *testing.T) {
	sent := []string{"t:0:1", "t:0:2", "t:1:1"}
	if p := checkDelivery(sent, []string{"t:0:1", "t:1:1", "t:0:2"}); len(p) != 0 {
		t.Errorf("a good delivery: %v", p)
	}
	for _, got := range [][]string{
		{"t:0:1", "t:0:2"},                   // one missing
		{"t:0:1", "t:0:2", "t:1:1", "t:0:2"}, // one twice
		{"t:0:2", "t:0:1", "t:1:1"},          // out of order
		{"t:0:1", "t:0:2", "t:1:1", "t:9:9"}, // one not sent
	} {
		if p := checkDelivery(sent, got); len(p) == 0 {
			t.Errorf("checkDelivery(%v) found nothing wrong", got)
		}
	}
}

// TestScenarioA is issue 16's scenario (a) with the Go client, test (e): 1,000 notifications to
// one user while the node the client uses is stopped and started twice (100 notifications sent
// through another node while it is down) and the client's TCP connection is cut five times by a
// loopback proxy: OnEvent sees each notification exactly once, in order per partition, with no
// resync. It runs the real service binary against its embedded broker run on its own.
func TestScenarioA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service binary (-short)")
	}
	bin := buildService(t)
	broker := startBroker(t, bin)
	producer := newNode(t, bin, broker, "producer")
	edge := newNode(t, bin, broker, "edge")
	px := startProxy(t, edge.port)

	user := fmt.Sprintf("go-client-%d", time.Now().UnixNano())
	var mu sync.Mutex
	var got, closes []string
	var resyncs []client.Resync
	live := false
	gotCursor := make(chan struct{}, 1)
	rt, err := client.New(context.Background(), client.Options{
		DialOptions: client.DialOptions{URL: px.url()},
		Token:       func(context.Context) (string, error) { return sign(t, user, time.Hour), nil },
		MinDelay:    100 * time.Millisecond, MaxDelay: 2 * time.Second,
		OnEvent: func(e client.Event) {
			mu.Lock()
			got = append(got, e.ID)
			mu.Unlock()
		},
		OnResumeToken: func(string) { // first at the opening cursor
			select {
			case gotCursor <- struct{}{}:
			default:
			}
		},
		OnResync: func(r client.Resync) {
			mu.Lock()
			resyncs = append(resyncs, r)
			mu.Unlock()
		},
		OnState: func(s client.StateChange) {
			mu.Lock()
			defer mu.Unlock()
			switch s.State {
			case client.Connected:
				live = true
			case client.Disconnected, client.Closed:
				if live { // the closes of connections that had opened
					closes = append(closes, fmt.Sprintf("%s %d %s", s.Transport, s.Code, s.Reason))
				}
				live = false
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	select {
	case <-gotCursor: // connected, with its opening cursor
	case <-time.After(30 * time.Second):
		t.Fatal("no cursor 30 s after start")
	}
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	connected := func() bool { return rt.State() == client.Connected }

	api := &client.API{URL: producer.url, Key: testAPIKey}
	plan := map[int]string{100: "cut", 200: "stop", 300: "start", 350: "cut", 450: "cut", 550: "stop", 650: "start", 700: "cut", 800: "cut"}
	const total = 1000
	sent := make([]string, total)
	var restartMs []int64
	var waits sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for i := 0; i < total; i += 25 {
		switch what := plan[i]; what {
		case "cut", "stop":
			waitFor(t, "the client connected before the "+what, time.Minute, connected)
			if what == "cut" {
				px.cut()
			} else {
				edge.stop()
			}
		case "start":
			before := received() // nothing arrives while the node is down
			t0 := time.Now()
			edge.start()
			waits.Go(func() {
				for received() == before && ctx.Err() == nil && time.Since(t0) < time.Minute {
					time.Sleep(5 * time.Millisecond)
				}
				mu.Lock()
				restartMs = append(restartMs, time.Since(t0).Milliseconds())
				mu.Unlock()
			})
		}
		var wg sync.WaitGroup
		errs := make(chan error, 25)
		for j := i; j < min(total, i+25); j++ {
			wg.Go(func() {
				pos, err := api.ConceptMastered(ctx, client.ConceptMastered{
					ConceptID: fmt.Sprintf("c-%d", j), UserIDs: []string{user}, ConceptName: fmt.Sprintf("n%d", j), MasteryLevel: 0.5,
				})
				if err != nil {
					errs <- fmt.Errorf("notification %d: %w", j, err)
				}
				sent[j] = pos.ID
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	waits.Wait()
	waitFor(t, "every notification", time.Minute, func() bool { return received() >= total })
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show up
	rt.Close()

	mu.Lock()
	defer mu.Unlock()
	for _, p := range checkDelivery(sent, got) {
		t.Error(p)
	}
	if len(resyncs) != 0 {
		t.Errorf("resyncs %+v, want every resume honoured", resyncs)
	}
	// Two restarts (1001 from the graceful stop), five cuts (1006), and the Close (1000).
	var codes []string
	for _, c := range closes {
		codes = append(codes, strings.Fields(c)[1])
	}
	slices.Sort(codes)
	if want := []string{"1000", "1001", "1001", "1006", "1006", "1006", "1006", "1006"}; !slices.Equal(codes, want) {
		t.Errorf("close codes %v, want %v:\n%s", codes, want, strings.Join(closes, "\n"))
	}
	t.Logf("closes: %s", strings.Join(closes, "; "))
	t.Logf("ms from a restart's start to the client receiving again: %v", restartMs)
	if t.Failed() {
		t.Logf("edge node log:\n%s", edge.p.log)
	}
}
