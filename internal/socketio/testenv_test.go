package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// The test environment: a real realtime.Hub behind the Socket.IO handler, a test JWT secret, an
// in-memory replayer (so recovery can replay), and a few /control/ endpoints the Node suite
// drives it with.

var testSecret = []byte("socketio-test-secret-0123456789abcdef")

const testOrigin = "http://allowed.example"

var testTopics = []string{notification.TopicConcepts, notification.TopicSessions}

// memReplayer keeps every published event and serves Hub.Attach's replays from them.
type memReplayer struct {
	mu     sync.Mutex
	events []*notification.Event
}

func (m *memReplayer) add(e *notification.Event) {
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
}

func (m *memReplayer) Replay(_ context.Context, user string, from, to []realtime.Position) ([]*notification.Event, error) {
	offset := func(ps []realtime.Position, e *notification.Event) (int64, bool) {
		i := slices.IndexFunc(ps, func(p realtime.Position) bool { return p.Topic == e.Topic && p.Partition == e.Partition })
		if i < 0 {
			return 0, false
		}
		return ps[i].Offset, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*notification.Event
	for _, e := range m.events {
		lo, _ := offset(from, e)
		hi, ok := offset(to, e)
		if ok && e.Offset >= lo && e.Offset < hi && slices.Contains(e.UserIDs, user) {
			out = append(out, e)
		}
	}
	return out, nil
}

// node is one server: a hub and the Socket.IO handler(s) on one listener. restart replaces
// both, on the same address.
type node struct {
	t    *testing.T
	addr string

	mu      sync.Mutex
	hub     *realtime.Hub
	handler *Handler
	fast    *Handler
	slow    *Handler
	srv     *http.Server
	replay  *memReplayer
	offsets map[string]int64
	extra   func(mux *http.ServeMux, n *node)
}

// testConfig is the handler configuration of the suite: fast pings (the clients answer them),
// a generous pong timeout so that a loaded machine does not drop clients.
func testConfig() Config {
	return Config{
		Verifier:       auth.NewVerifier(testSecret),
		AllowedOrigins: []string{testOrigin},
		PingInterval:   300 * time.Millisecond,
		PongTimeout:    5 * time.Second,
	}
}

// fastConfig pings every 100 ms and gives up after 150 ms without a pong: for ping-timeout tests.
func fastConfig() Config {
	c := testConfig()
	c.PingInterval, c.PongTimeout = 100*time.Millisecond, 150*time.Millisecond
	return c
}

// slowConfig pings once a minute: for tests of long-polling that a ping must not disturb.
func slowConfig() Config {
	c := testConfig()
	c.PingInterval, c.PongTimeout = time.Minute, time.Minute
	return c
}

func startNode(t *testing.T, extra func(mux *http.ServeMux, n *node)) *node {
	t.Helper()
	n := &node{t: t, addr: "127.0.0.1:0", extra: extra}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() error {
	n.mu.Lock()
	addr := n.addr
	n.mu.Unlock()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	codec, err := realtime.NewCursorCodec("socketio-test-cluster", testTopics)
	if err != nil {
		return err
	}
	// The "Kafka log" (offsets and replayer) outlives a restart, as Kafka does.
	n.mu.Lock()
	if n.replay == nil {
		n.replay, n.offsets = &memReplayer{}, map[string]int64{}
	}
	replay := n.replay
	start := map[string]map[int32]int64{}
	for _, topic := range testTopics {
		start[topic] = map[int32]int64{0: n.offsets[topic]}
	}
	n.mu.Unlock()
	hub := realtime.NewHub(realtime.HubConfig{Replayer: replay})
	hub.SetCursorCodec(codec)
	hub.Assigned(start)
	h, fast, slow := NewHandler(hub, testConfig()), NewHandler(hub, fastConfig()), NewHandler(hub, slowConfig())
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", h)
	mux.Handle("/fast/socket.io/", fast)
	mux.Handle("/slow/socket.io/", slow)
	mux.HandleFunc("GET /control/token", handleToken)
	mux.HandleFunc("POST /control/publish", n.handlePublish)
	if n.extra != nil {
		n.extra(mux, n)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.mu.Lock()
	n.addr = ln.Addr().String()
	n.hub, n.handler, n.fast, n.slow, n.srv = hub, h, fast, slow, srv
	n.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

// stop shuts the node down as main would: the hub and the handler close their connections, then
// the server.
func (n *node) stop() {
	n.mu.Lock()
	hub, h, fast, slow, srv := n.hub, n.handler, n.fast, n.slow, n.srv
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hub.Shutdown(ctx)
	h.Shutdown(ctx)
	fast.Shutdown(ctx)
	slow.Shutdown(ctx)
	srv.Shutdown(ctx)
	srv.Close()
}

// restart stops the node and starts a new one (new hub, new sessions) on the same address.
func (n *node) restart() error {
	n.stop()
	var err error
	for range 50 { // the port is ours again as soon as the listener is closed
		if err = n.start(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func (n *node) url() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "http://" + n.addr
}

// handleToken issues a test token: ?user=<id>, &ttl=<seconds> (negative: already expired), and
// &secret=wrong to sign with another secret (a bad signature).
func handleToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ttl := time.Hour
	if s := q.Get("ttl"); s != "" {
		sec, err := strconv.Atoi(s)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ttl = time.Duration(sec) * time.Second
	}
	secret, now := testSecret, time.Now()
	if q.Get("secret") == "wrong" {
		secret = []byte("another-secret-another-secret-0123456789")
	}
	if ttl <= 0 { // issue in the past so that it is expired beyond the verifier's leeway
		now, ttl = now.Add(ttl-time.Minute), time.Minute
	}
	tok, err := auth.Issue(secret, q.Get("user"), ttl, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Write([]byte(tok))
}

type publishRequest struct {
	Topic   string          `json:"topic"`
	Event   string          `json:"event"`
	UserIDs []string        `json:"userIds"`
	Data    json.RawMessage `json:"data"`
}

// handlePublish publishes {"topic"?, "event"?, "userIds", "data"} through the hub, as the Kafka
// consumer would, and answers {"id"}, the event's ID.
func (n *node) handlePublish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.UserIDs) == 0 || !json.Valid(req.Data) {
		http.Error(w, fmt.Sprint("bad publish request: ", err), http.StatusBadRequest)
		return
	}
	ev := n.publish(req)
	json.NewEncoder(w).Encode(map[string]string{"id": ev.ID()})
}

func (n *node) publish(req publishRequest) *realtime.Event {
	if req.Topic == "" {
		req.Topic = notification.TopicConcepts
	}
	if req.Event == "" {
		req.Event = notification.EventConceptMastered
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e := &notification.Event{
		Name: req.Event, Topic: req.Topic, Offset: n.offsets[req.Topic],
		Time: time.Now(), UserIDs: req.UserIDs, Data: req.Data,
	}
	n.offsets[req.Topic]++
	n.replay.add(e)
	return n.hub.Publish(e)
}
