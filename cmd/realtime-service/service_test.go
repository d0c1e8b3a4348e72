package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/auth"
)

// These tests run the whole service in-process through run(), over real TCP, with the embedded
// broker (or one the test owns), as the README's commands do.

const (
	testSecret = "test-secret-test-secret-test-secret!"
	testAPIKey = "test-api-key-0123456789"
)

// service is one running instance of run().
type service struct {
	t      *testing.T
	URL    string // http://127.0.0.1:port
	Broker string // host:port of the Kafka broker it uses
	Group  string // its consumer group, <KAFKA_GROUP_ID>.<KAFKA_NODE_ID>
	// DLQGroup is the dead-letter duty's group, <KAFKA_GROUP_ID>.dlq, shared by every node.
	DLQGroup string
	Logs     *syncBuffer
	stop     context.CancelFunc
	done     chan error
	stopped  bool
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startService runs the service with env on top of test defaults: an embedded broker on a free
// port (unless env sets KAFKA_BROKERS), a free HTTP port, the test JWT secret and API key. It
// waits until /health/ready answers 200 and stops the service when the test ends, failing the
// test if shutdown is not clean. A port picked free that another process took before the
// service bound it ("address already in use": the machine's other tests dial and listen too) is
// picked again, up to three times.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryStartService(t, env)
		if err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			t.Fatalf("%v\nlogs:\n%s", err, s.Logs)
		}
		t.Logf("attempt %d: %v; picking other ports", attempt, err)
	}
}

func tryStartService(t *testing.T, env map[string]string) (*service, error) {
	t.Helper()
	vars := map[string]string{
		"HTTP_ADDR":             freeAddr(t),
		"KAFKA_EMBEDDED_ADDR":   freeAddr(t),
		"KAFKA_NODE_ID":         "test-" + strings.ReplaceAll(t.Name(), "/", "-"),
		"KAFKA_REQUEST_TIMEOUT": "5000",
		"REALTIME_JWT_SECRET":   testSecret,
		"REALTIME_API_KEYS":     testAPIKey,
		"LOG_LEVEL":             "info",
		"HTTP_SHUTDOWN_TIMEOUT": "5000",
	}
	for k, v := range env {
		vars[k] = v
	}
	if host, port, _ := net.SplitHostPort(vars["HTTP_ADDR"]); host == "0.0.0.0" && port == "0" { // all interfaces, a free port
		vars["HTTP_ADDR"] = "0.0.0.0:" + freePort(t)
	}
	s := &service{t: t, URL: "http://" + vars["HTTP_ADDR"], Logs: &syncBuffer{}, done: make(chan error, 1)}
	if port, ok := strings.CutPrefix(vars["HTTP_ADDR"], "0.0.0.0:"); ok { // all interfaces: ask on loopback
		s.URL = "http://127.0.0.1:" + port
	}
	s.Broker = vars["KAFKA_BROKERS"]
	if s.Broker == "" {
		s.Broker = vars["KAFKA_EMBEDDED_ADDR"]
	}
	s.Group = vars["KAFKA_GROUP_ID"]
	if s.Group == "" {
		s.Group = "realtime-service"
	}
	s.DLQGroup = s.Group + ".dlq"
	s.Group += "." + vars["KAFKA_NODE_ID"]
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	getenv := func(k string) string { return vars[k] }
	go func() { s.done <- run(ctx, []string{"realtime-service"}, getenv, io.Discard, s.Logs) }()
	if err := s.ready(); err != nil {
		cancel()
		return s, err
	}
	t.Cleanup(s.Stop)
	return s, nil
}

func (s *service) waitReady() {
	s.t.Helper()
	if err := s.ready(); err != nil {
		s.t.Fatalf("%v\nlogs:\n%s", err, s.Logs)
	}
}

// ready waits until /health/ready answers 200; the error says why not (run returned, or 30 s).
func (s *service) ready() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.done:
			s.stopped = true
			return fmt.Errorf("service exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("service not ready after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends the shutdown signal's equivalent and requires run to return nil within the
// shutdown timeout plus a margin.
func (s *service) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("run returned %v after shutdown\nlogs:\n%s", err, s.Logs)
		}
	case <-time.After(20 * time.Second):
		s.t.Errorf("run did not return within 20 s of shutdown\nlogs:\n%s", s.Logs)
	}
}

// do sends a request with the test API key and decodes a JSON answer into out (if non-nil).
func (s *service) do(method, path string, body any, out any) *http.Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-API-Key", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp
}

// clientToken signs a client token for user with the test secret.
func clientToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Issue([]byte(testSecret), user, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// interopTool returns the path of an independent client (kcat, node, chromium). When it is
// missing, the test fails if REQUIRE_INTEROP=1 (CI sets it, after installing them) and is
// skipped otherwise, saying how to install it.
func interopTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("REQUIRE_INTEROP") == "1" {
			t.Fatalf("%s is required (REQUIRE_INTEROP=1) but not installed: %s", name, install)
		}
		t.Skipf("%s not installed (%s); CI runs this test with REQUIRE_INTEROP=1", name, install)
	}
	return path
}

// nodeModules returns test/interop's node_modules, failing or skipping like interopTool.
func nodeModules(t *testing.T) string {
	t.Helper()
	interopTool(t, "node", "apt-get install nodejs")
	dir, _ := filepath.Abs(filepath.Join("..", "..", "test", "interop"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		if os.Getenv("REQUIRE_INTEROP") == "1" {
			t.Fatalf("test/interop/node_modules is missing (REQUIRE_INTEROP=1): run npm ci --prefix test/interop")
		}
		t.Skip("test/interop/node_modules is missing: run npm ci --prefix test/interop")
	}
	return dir
}

// runNode runs a node script of test/interop with env, bounded by a minute, and returns stdout.
func runNode(t *testing.T, script string, env map[string]string) string {
	t.Helper()
	return runNodeWithin(t, script, env, time.Minute)
}

// runNodeWithin is runNode bounded by limit, for scripts that run many scenarios in a row.
func runNodeWithin(t *testing.T, script string, env map[string]string, limit time.Duration) string {
	t.Helper()
	dir := nodeModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func itoa(n int32) string   { return strconv.FormatInt(int64(n), 10) }
func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// waitUntil polls cond every 20 ms until it holds, failing the test after 30 s (a bound, not a
// timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitConsuming waits until the service's consumers have fixed where they start: its group and
// the dead-letter duty's have a committed offset on every partition of the notification topics
// (on a first start, the end of each). Every record produced from then on is delivered; one produced earlier may be skipped as
// old history (docs/design.md, "Delivery semantics"). topics default to the two notification topics.
func (s *service) waitConsuming(topics ...string) {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Broker))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if len(topics) == 0 {
		topics = []string{"session-notifications", "concept-notifications"}
	}
	for _, group := range []string{s.Group, s.DLQGroup} {
		waitCommitted(s.t, adm, group, topics)
	}
}

// waitCommitted waits until group has a committed offset on every partition of topics.
func waitCommitted(t *testing.T, adm *kadm.Client, group string, topics []string) {
	t.Helper()
	waitUntil(t, "the consumer group "+group+" to commit its start offsets", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil || ends.Error() != nil {
			return false
		}
		all := true
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup(o.Topic, o.Partition); !ok || c.Err != nil || c.At < 0 {
				all = false
			}
		})
		return all
	})
}

// clientData is what a client receives as an event's data for a record value: the value without
// its recipient list (no member whose name encoding/json would read as userIds).
func clientData(t *testing.T, value string) any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatalf("record value %s: %v", value, err)
	}
	for k := range v {
		if strings.EqualFold(k, "userIds") {
			delete(v, k)
		}
	}
	return v
}
