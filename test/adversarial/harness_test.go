package adversarial

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// binPath is the service binary, built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run() // every test skips itself
		}
		dir, err := os.MkdirTemp("", "adversarial-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "realtime-service")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/realtime-service")
		build.Dir = filepath.Join("..", "..")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "go build ./cmd/realtime-service:", err)
			return 1
		}
		return m.Run()
	}())
}

// node is one realtime-service process with its embedded Kafka broker, started for one test.
type node struct {
	url     string // http://127.0.0.1:port
	host    string // 127.0.0.1:port
	kafka   string // the embedded broker's address
	secret  []byte
	apiKey  string
	authTTL time.Duration // REALTIME_AUTH_TIMEOUT

	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// lockedBuffer is the node's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Small caps, so that floods are small and fast.
const (
	maxPending           = 50
	maxPendingPerAddress = 10
)

// startNode starts the service with the embedded broker on free loopback ports, small caps
// and REALTIME_AUTH_TIMEOUT authTimeout, plus env, and waits until /health/ready answers 200.
// The node is stopped when the test ends; its output is logged if the test failed.
func startNode(t *testing.T, authTimeout time.Duration, env ...string) *node {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the service; skipped with -short")
	}
	n := &node{
		secret:  []byte(randomHex(32)),
		apiKey:  "adversarial-" + randomHex(12),
		authTTL: authTimeout,
		out:     &lockedBuffer{},
		done:    make(chan struct{}),
	}
	n.host, n.kafka = freeAddr(t), freeAddr(t)
	n.url = "http://" + n.host
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "KAFKA_") && !strings.HasPrefix(k, "REALTIME_") && !strings.HasPrefix(k, "HTTP_") && k != "LOG_LEVEL" && k != "DEBUG_ADDR" {
			base = append(base, kv)
		}
	}
	n.cmd = exec.Command(binPath, "serve")
	n.cmd.Env = append(base,
		"HTTP_ADDR="+n.host,
		"KAFKA_EMBEDDED_ADDR="+n.kafka,
		"KAFKA_NODE_ID=adversarial",
		"REALTIME_JWT_SECRET="+string(n.secret),
		"REALTIME_API_KEYS="+n.apiKey,
		"REALTIME_MAX_PENDING="+strconv.Itoa(maxPending),
		"REALTIME_MAX_PENDING_PER_ADDRESS="+strconv.Itoa(maxPendingPerAddress),
		"REALTIME_AUTH_TIMEOUT="+strconv.Itoa(int(authTimeout/time.Millisecond)),
	)
	n.cmd.Env = append(n.cmd.Env, env...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			out := n.out.String()
			if len(out) > 8000 {
				out = "...\n" + out[len(out)-8000:]
			}
			t.Logf("node output:\n%s", out)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(n.url + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("the node exited before it was ready:\n%s", n.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node was not ready within 60s:\n%s", n.out.String())
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomHex(n int) string {
	b := make([]byte, n/2+1)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// token is a client token for user: HS256 {sub, exp}.
func (n *node) token(t *testing.T, user string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(n.secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// metrics scrapes /metrics: each sample by its name with labels, as printed.
func (n *node) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// sum adds the samples of metric name, every label set.
func sum(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if base, _, _ := strings.Cut(k, "{"); base == name {
			s += v
		}
	}
	return s
}

// waitNoPreAuth waits until the node holds no Socket.IO session and nothing pending admission:
// within the auth timeout, plus slack for a loaded machine.
func (n *node) waitNoPreAuth(t *testing.T) {
	t.Helper()
	limit := n.authTTL + 3*time.Second
	deadline := time.Now().Add(limit)
	for {
		m := n.metrics(t)
		s, p := sum(m, "realtime_socketio_sessions"), sum(m, "realtime_admission_pending")
		if s == 0 && p == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the attack the node still holds %v Socket.IO sessions and %v pending admissions; want 0 within the auth timeout (%v)", limit, s, p, n.authTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notify produces a concept-mastered notification for users through the API and returns its
// conceptId.
func (n *node) notify(t *testing.T, users ...string) string {
	t.Helper()
	id := "adv-" + randomHex(10)
	body, _ := json.Marshal(map[string]any{"conceptId": id, "userIds": users, "conceptName": "Adversarial", "masteryLevel": 0.5})
	req, _ := http.NewRequest(http.MethodPost, n.url+"/v1/notifications/concept-mastered", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", n.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/notifications/concept-mastered: %s %s", resp.Status, b)
	}
	return id
}

// frame is a /v1/ws event frame.
type frame struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Cursor string          `json:"cursor"`
}

func (f frame) conceptID() string {
	var d struct {
		ConceptID string `json:"conceptId"`
	}
	json.Unmarshal(f.Data, &d)
	return d.ConceptID
}

// client is an authenticated /v1/ws connection.
type client struct {
	c      *websocket.Conn
	frames chan frame
	ended  chan error
}

// dialWS opens /v1/ws for user (from 127.0.0.1), resuming after cursor when it is set.
func (n *node) dialWS(t *testing.T, user, cursor string) (*client, error) {
	u := "ws://" + n.host + "/v1/ws"
	if cursor != "" {
		u += "?cursor=" + url.QueryEscape(cursor)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(u, http.Header{"Authorization": {"Bearer " + n.token(t, user)}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (%s)", err, resp.Status)
		}
		return nil, err
	}
	cl := &client{c: c, frames: make(chan frame, 4096), ended: make(chan error, 1)}
	go func() {
		// What the client holds to resume (docs/design.md, "Cursor"): the last cursor frame's
		// cursor and the IDs of the events after it; each event frame passed on carries that
		// token in Cursor. Cursor frames themselves are not passed on.
		var held string
		var ids []string
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				cl.ended <- err
				close(cl.frames)
				return
			}
			var f frame
			if json.Unmarshal(msg, &f) != nil {
				continue
			}
			switch {
			case f.ID != "":
				ids = append(ids, f.ID)
				f.Cursor = held + "~" + strings.Join(ids, ",")
			case f.Cursor != "":
				held, ids = f.Cursor, nil
			}
			if f.Event != "cursor" {
				cl.frames <- f
			}
		}
	}()
	return cl, nil
}

// victim connects an authenticated user that must keep receiving during an attack.
func (n *node) victim(t *testing.T) (*client, string) {
	t.Helper()
	user := "victim-" + randomHex(6)
	c, err := n.dialWS(t, user, "")
	if err != nil {
		t.Fatalf("the victim's /v1/ws: %v", err)
	}
	t.Cleanup(func() { c.c.Close() })
	n.receives(t, c, user) // its subscription is live
	return c, user
}

// receives sends a notification to user and fails unless c receives it within 10 s (a bound
// for a loaded machine, not a latency target).
func (n *node) receives(t *testing.T, c *client, user string) {
	t.Helper()
	id := n.notify(t, user)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("the authenticated user's connection ended: %v", <-c.ended)
			}
			if f.conceptID() == id {
				return
			}
		case <-timeout:
			t.Fatalf("the authenticated user did not receive notification %s within 10s", id)
		}
	}
}

// handshake sends one Engine.IO polling handshake (no token) from source address ip on a new
// connection and returns the status, the Retry-After header and the body.
func (n *node) handshake(ip net.IP) (int, string, string, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Get(n.url + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), nil
}

// sid is the session ID of an Engine.IO open packet `0{"sid":...}`.
func sid(body string) (string, error) {
	var open struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil || open.SID == "" {
		return "", fmt.Errorf("not an open packet: %.200q", body)
	}
	return open.SID, nil
}

// sioWebSocket opens a Socket.IO WebSocket session without a token and reads its open packet.
func (n *node) sioWebSocket(t *testing.T) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+n.host+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		if resp != nil {
			t.Fatalf("Socket.IO WebSocket: %v (%s)", err, resp.Status)
		}
		t.Fatalf("Socket.IO WebSocket: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, open, err := c.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("Socket.IO WebSocket open packet: %q, %v", open, err)
	}
	return c
}

// produce sends records to topic on the node's embedded broker.
func (n *node) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// endOffsets sums the end offsets of topic's partitions.
func (n *node) endOffsets(t *testing.T, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}

// closeCode is the WebSocket close code err carries, or 1006 when the connection ended without
// a close frame (RFC 6455 §7.1.5).
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
}
