package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// stack is the system under test: one node, and the broker it consumes from. An owned stack
// was started by this tool (broker and node are its children); otherwise only the addresses of
// a running node are known (-target).
type stack struct {
	url       string // http://127.0.0.1:port
	brokers   []string
	secret    []byte       // REALTIME_JWT_SECRET (HS256 tokens only)
	signer    *tokenSigner // signs client tokens (tokens); an owned stack's closes with it
	apiKey    string
	debugAddr string // host:port of pprof, or ""
	nodePID   int    // 0 when unknown

	owned   bool
	bin     string
	dir     string // temp dir: binary, logs
	node    *child
	broker  *child
	nodeEnv []string
	logName string // the node's log file in dir; "" is node.log
	stderr  io.Writer
}

// binary is the service binary, built once per invocation.
type binary struct {
	path string
	dir  string // temp dir to remove, or ""
}

// buildBinary builds ./cmd/realtime-service with the extra go build flags into a temp dir: from
// the working tree of the module at root, or from git revision rev of it (exported with git
// archive, so uncommitted changes are left out). A prebuilt path is used as it is.
func buildBinary(ctx context.Context, root, path, rev string, stderr io.Writer, flags ...string) (*binary, error) {
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		return &binary{path: abs}, nil
	}
	dir, err := os.MkdirTemp("", "rtbench-bin-")
	if err != nil {
		return nil, err
	}
	src := root
	if rev != "" {
		src = filepath.Join(dir, "src")
		if err := os.Mkdir(src, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		export := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", root, rev, src)
		export.Stderr = stderr
		if err := export.Run(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("export revision %s: %w", rev, err)
		}
	}
	out := filepath.Join(dir, "realtime-service")
	args := append(append([]string{"build"}, flags...), "-o", out, "./cmd/realtime-service")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("go build ./cmd/realtime-service: %w", err)
	}
	return &binary{path: out, dir: dir}, nil
}

func (b *binary) remove() {
	if b != nil && b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// startStack starts a broker and a node (owned), or describes the -target node.
func startStack(ctx context.Context, c *common, bin *binary, stderr io.Writer) (*stack, error) {
	if c.target != "" {
		s := &stack{
			url:       strings.TrimRight(c.target, "/"),
			secret:    []byte(c.secret),
			signer:    &tokenSigner{alg: "HS256", method: jwt.SigningMethodHS256, key: []byte(c.secret)},
			apiKey:    c.apiKey,
			debugAddr: c.debugAddr,
			nodePID:   c.pid,
			stderr:    stderr,
		}
		if c.brokers != "" {
			s.brokers = strings.Split(c.brokers, ",")
		}
		if err := waitReady(ctx, s.url, 10*time.Second); err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := startBroker(ctx, c, bin, stderr)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	brokerAddr := s.brokers[0]
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.debugAddr, err = freeAddr()
	if err != nil {
		return nil, err
	}
	s.url = "http://" + httpAddr
	s.secret = []byte(randomHex(24))
	s.apiKey = "bench-" + randomHex(16)
	tokenAlg := c.tokenAlg
	if tokenAlg == "" {
		tokenAlg = "HS256"
	}
	if s.signer, err = newTokenSigner(tokenAlg, s.secret); err != nil {
		return nil, err
	}
	s.nodeEnv = append(os.Environ(),
		"KAFKA_BROKERS="+brokerAddr,
		"HTTP_ADDR="+httpAddr,
		"DEBUG_ADDR="+s.debugAddr,
		"REALTIME_API_KEYS="+s.apiKey,
		"KAFKA_NODE_ID=bench-"+randomHex(4), // a new group: the node starts at the end of each partition
		"LOG_LEVEL=warn",
	)
	s.nodeEnv = append(s.nodeEnv, s.signer.env()...)
	s.nodeEnv = append(s.nodeEnv, c.env...)
	if err := s.startNode(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// startBroker starts an owned stack's broker alone (`realtime-service broker`, kfake, with -partitions
// partitions per topic) on a free loopback port, and waits until it serves the notification
// topics. startStack then starts a node on it; compare starts the other server on it instead.
func startBroker(ctx context.Context, c *common, bin *binary, stderr io.Writer) (*stack, error) {
	dir, err := os.MkdirTemp("", "rtbench-run-")
	if err != nil {
		return nil, err
	}
	s := &stack{owned: true, bin: bin.path, dir: dir, stderr: stderr}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	brokerAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	brokerEnv := append(os.Environ(),
		"KAFKA_EMBEDDED_ADDR="+brokerAddr,
		"KAFKA_NODE_ID=bench-broker",
		"LOG_LEVEL=warn",
	)
	if c.partitions > 0 {
		brokerEnv = append(brokerEnv, "KAFKA_EMBEDDED_PARTITIONS="+strconv.Itoa(c.partitions))
	}
	s.broker, err = startChild("broker", s.bin, []string{"broker"}, brokerEnv, filepath.Join(dir, "broker.log"))
	if err != nil {
		return nil, err
	}
	s.brokers = []string{brokerAddr}
	if err := waitBroker(ctx, s.brokers, s.broker, 30*time.Second); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// startNode starts the node and waits until /health/ready answers 200.
func (s *stack) startNode(ctx context.Context) error {
	return s.startNodeThen(ctx, nil)
}

// startNodeThen starts the node, calls started (if not nil) with its process ID, then waits
// until /health/ready answers 200.
func (s *stack) startNodeThen(ctx context.Context, started func(pid int)) error {
	var err error
	logName := s.logName
	if logName == "" {
		logName = "node.log"
	}
	s.node, err = startChild("node", s.bin, []string{"serve"}, s.nodeEnv, filepath.Join(s.dir, logName))
	if err != nil {
		return err
	}
	s.nodePID = s.node.cmd.Process.Pid
	if started != nil {
		started(s.nodePID)
	}
	if err := waitReadyChild(ctx, s.url, s.node, 60*time.Second); err != nil {
		return err
	}
	return nil
}

// restartNode starts the node again (after stopNode or killNode) with the same environment,
// polling /health/ready every poll until it answers 200, so that the caller learns it is ready
// within poll.
func (s *stack) restartNode(ctx context.Context, poll time.Duration) error {
	logName := s.logName
	if logName == "" {
		logName = "node.log"
	}
	var err error
	s.node, err = startChild("node", s.bin, []string{"serve"}, s.nodeEnv, filepath.Join(s.dir, logName))
	if err != nil {
		return err
	}
	s.nodePID = s.node.cmd.Process.Pid
	return waitReadyPoll(ctx, s.url, s.node, 60*time.Second, poll)
}

// stopNode stops the node gracefully (SIGTERM; SIGKILL after grace), waits for it, and returns
// the CPU time it used over its life, in clock ticks.
func (s *stack) stopNode(grace time.Duration) uint64 {
	if s.node == nil {
		return 0
	}
	s.node.stop(grace)
	n := s.node
	s.node = nil
	if ps := n.cmd.ProcessState; ps != nil {
		return uint64((ps.UserTime() + ps.SystemTime()) * clockTicks / time.Second)
	}
	return 0
}

// killNode kills the node with SIGKILL (no shutdown: no final commit, no close frames), waits
// for it, and returns the CPU time it used over its life, in clock ticks.
func (s *stack) killNode() uint64 {
	if s.node == nil {
		return 0
	}
	n := s.node
	s.node = nil
	n.stopped.Do(func() {
		n.cmd.Process.Kill()
		<-n.done
	})
	if ps := n.cmd.ProcessState; ps != nil {
		return uint64((ps.UserTime() + ps.SystemTime()) * clockTicks / time.Second)
	}
	return 0
}

// sibling returns a second node of an owned stack, not started: the same broker, binary,
// secrets and extra environment, its own HTTP and debug addresses, KAFKA_NODE_ID nodeID (its own
// consumer group) and log file. Start it with startNode; stop it with stopNode before the
// stack closes (the stack's close does not know it).
func (s *stack) sibling(nodeID, logName string) (*stack, error) {
	if !s.owned {
		return nil, errors.New("a second node needs an owned stack (no -target)")
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	debugAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	o := &stack{
		url: "http://" + httpAddr, brokers: s.brokers, secret: s.secret, signer: s.signer, apiKey: s.apiKey,
		debugAddr: debugAddr, bin: s.bin, dir: s.dir, logName: logName, stderr: s.stderr,
	}
	for _, kv := range s.nodeEnv {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HTTP_ADDR":
			kv = "HTTP_ADDR=" + httpAddr
		case "DEBUG_ADDR":
			kv = "DEBUG_ADDR=" + debugAddr
		case "KAFKA_NODE_ID":
			kv = "KAFKA_NODE_ID=" + nodeID
		}
		o.nodeEnv = append(o.nodeEnv, kv)
	}
	return o, nil
}

// close stops what the stack owns: the node first (it flushes and leaves its group), then the
// broker and the JWK Set server; then it removes the temp dir.
func (s *stack) close() {
	if !s.owned {
		return
	}
	s.stopNode(20 * time.Second)
	if s.broker != nil {
		s.broker.stop(10 * time.Second)
		s.broker = nil
	}
	s.signer.close()
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// pids names the processes whose CPU time and RSS are recorded.
func (s *stack) pids() (node, broker int) {
	node = s.nodePID
	if s.broker != nil {
		broker = s.broker.cmd.Process.Pid
	}
	return node, broker
}

// wsURL is the node's base URL with the ws scheme.
func (s *stack) wsURL() string { return "ws" + strings.TrimPrefix(s.url, "http") }

// child is a process this tool started and must stop.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
	stopped sync.Once
}

// startChild starts bin with args and env, output to logPath. The child is in its own process
// group (Ctrl-C reaches only this tool, which stops it in order) and is killed by the kernel if
// this tool dies first (Pdeathsig). Pdeathsig fires when the creating thread exits, so the
// goroutine that starts the child keeps its thread locked until the child is gone.
func startChild(name, bin string, args, env []string, logPath string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, logPath: logPath, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine, after the child
		err := c.cmd.Start()
		started <- err
		if err != nil {
			logf.Close()
			return
		}
		c.err = c.cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return c, nil
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits.
func (c *child) stop(grace time.Duration) {
	c.stopped.Do(func() {
		if c.exited() {
			return
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(grace):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// logTail returns the last lines of the child's output.
func (c *child) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

func (c *child) diedErr() error {
	return fmt.Errorf("%s exited (%v); its log ends:\n%s", c.name, c.err, c.logTail())
}

// waitBroker waits until the broker answers metadata and the notification topics exist.
func waitBroker(ctx context.Context, brokers []string, ch *child, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		if ch != nil && ch.exited() {
			return ch.diedErr()
		}
		topics, err := adm.ListTopics(ctx, topicConcepts, topicSessions)
		if err == nil && topics.Has(topicConcepts) && topics.Has(topicSessions) &&
			topics[topicConcepts].Err == nil && topics[topicSessions].Err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %v not ready after %v (last error: %v)", brokers, limit, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReady polls GET /health/ready until it answers 200.
func waitReady(ctx context.Context, url string, limit time.Duration) error {
	return waitReadyChild(ctx, url, nil, limit)
}

func waitReadyChild(ctx context.Context, url string, ch *child, limit time.Duration) error {
	return waitReadyPoll(ctx, url, ch, limit, 25*time.Millisecond)
}

func waitReadyPoll(ctx context.Context, url string, ch *child, limit, poll time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		if ch != nil && ch.exited() {
			return ch.diedErr()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			if ch != nil {
				return fmt.Errorf("node %s not ready after %v (last: %s); its log ends:\n%s", url, limit, last, ch.logTail())
			}
			return fmt.Errorf("node %s not ready after %v (last: %s)", url, limit, last)
		case <-time.After(poll):
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// moduleRoot is the directory of the go.mod of the module this tool is part of.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the realtime-service module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// tokens signs one client token per user, valid for ttl, that the node accepts (-token-alg).
func (s *stack) tokens(users []string, ttl time.Duration) ([]string, error) {
	return s.signer.tokens(users, ttl)
}
