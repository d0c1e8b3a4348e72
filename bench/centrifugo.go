package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
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
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file is compare's Centrifugo side (see compare.go): a Centrifugo binary the user names
// (-centrifugo or CENTRIFUGO_BIN; this tool installs nothing) run against the same embedded
// broker as realtime-service, with the configuration centrifugoConfig writes at run time, and a
// client for its JSON protocol over WebSocket. How Centrifugo is set up is in BENCHMARKS.md,
// "Side by side with Centrifugo".

// centrifugoTopic is the topic Centrifugo's Kafka consumer reads: its records are server API
// commands, not notification records, so it cannot share concept-notifications. The broker
// creates it with as many partitions as concept-notifications.
const centrifugoTopic = "centrifugo-commands"

// centrifugoSystem runs a Centrifugo binary.
type centrifugoSystem struct {
	path    string // the binary, absolute
	version string // "Centrifugo v6.9.1", from `centrifugo version`
}

// newCentrifugoSystem checks that path is a Centrifugo binary that runs, and names it by its
// module version (`go install` leaves `centrifugo version` at v0.0.0).
func newCentrifugoSystem(ctx context.Context, path string) (*centrifugoSystem, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, abs, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "Centrifugo") {
		return nil, fmt.Errorf("%s version: %q, %v: not a Centrifugo binary (build it with go install github.com/centrifugal/centrifugo/v6@v6.9.1)", abs, out, err)
	}
	// "Centrifugo v6.9.1 (Go version: go1.25.0)"
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " (")
	if bi, err := buildinfo.ReadFile(abs); err == nil && strings.HasPrefix(bi.Main.Version, "v") {
		v = "Centrifugo " + bi.Main.Version
	}
	return &centrifugoSystem{path: abs, version: v}, nil
}

func (cs *centrifugoSystem) name() string { return cs.version }
func (cs *centrifugoSystem) key() string  { return "centrifugo" }

// start starts a fresh broker, creates centrifugoTopic on it, and starts Centrifugo with a
// configuration written into the run's directory, on a free loopback port; it returns when
// /health answers 200. The stack's node is Centrifugo: close stops it, then the broker.
func (cs *centrifugoSystem) start(ctx context.Context, c *common, bin *binary, stderr io.Writer) (*compareTarget, error) {
	st, err := startBroker(ctx, c, bin, stderr)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.close()
		}
	}()
	if err := createLikeConcepts(ctx, st.brokers, centrifugoTopic); err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	st.url = "http://" + httpAddr
	st.secret = []byte(randomHex(24))
	if st.signer, err = newTokenSigner("HS256", st.secret); err != nil {
		return nil, err
	}
	cfg, err := centrifugoConfig(httpAddr, st.brokers, string(st.secret), "bench-"+randomHex(16))
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(st.dir, "centrifugo.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	if st.node, err = startChild("centrifugo", cs.path, []string{"-c", cfgPath}, os.Environ(), filepath.Join(st.dir, "centrifugo.log")); err != nil {
		return nil, err
	}
	st.nodePID = st.node.cmd.Process.Pid
	if err := waitHealth(ctx, st.url+"/health", st.node, 60*time.Second); err != nil {
		return nil, err
	}
	ok = true
	return &compareTarget{st: st, topic: centrifugoTopic, envelope: centrifugoEnvelope, dial: dialCentrifugo}, nil
}

// centrifugoConfig is Centrifugo's configuration (v6 layout) for one run: HTTP on addr, memory
// engine, HS256 client tokens with secret, every client subscribed to its personal channel
// user:#<sub> on connect, and its Kafka consumer (`kafka` type) reading centrifugoTopic, whose
// records are server API commands (publish, broadcast). Usage statistics are off: it must not
// call out.
func centrifugoConfig(addr string, brokers []string, secret, apiKey string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"http_server": map[string]any{"address": host, "port": p},
		"log":         map[string]any{"level": "warn"},
		"usage_stats": map[string]any{"disabled": true},
		"health":      map[string]any{"enabled": true},
		"engine":      map[string]any{"type": "memory"},
		"http_api":    map[string]any{"key": apiKey},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": secret},
			"allowed_origins": []string{"http://127.0.0.1"},
			"subscribe_to_user_personal_channel": map[string]any{
				"enabled":                    true,
				"personal_channel_namespace": "user",
			},
		},
		"channel": map[string]any{
			"namespaces": []any{map[string]any{"name": "user", "allow_user_limited_channels": true}},
		},
		"consumers": []any{map[string]any{
			"name":    "bench",
			"enabled": true,
			"type":    "kafka",
			"kafka": map[string]any{
				"brokers":        brokers,
				"topics":         []string{centrifugoTopic},
				"consumer_group": "bench-" + randomHex(4),
			},
		}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// createLikeConcepts creates topic with as many partitions as concept-notifications has, so
// that both servers consume the same layout.
func createLikeConcepts(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, topicConcepts)
	if err != nil {
		return err
	}
	parts := int32(len(td[topicConcepts].Partitions))
	if parts == 0 {
		return fmt.Errorf("%s has no partitions", topicConcepts)
	}
	resp, err := adm.CreateTopic(ctx, parts, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// waitHealth polls url until it answers 200 or ch exits.
func waitHealth(ctx context.Context, url string, ch *child, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if ch.exited() {
			return ch.diedErr()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v; its log ends:\n%s", url, limit, ch.logTail())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// centrifugoEnvelope wraps a record value for users as the server API command Centrifugo's
// consumer applies: publish to user:#<id> for one user, broadcast to each user's personal
// channel for several. The value becomes the publication's data, which clients receive as is.
func centrifugoEnvelope(users []string) (pre, post []byte) {
	if len(users) == 1 {
		pre = []byte(`{"method":"publish","payload":{"channel":`)
		pre = strconv.AppendQuote(pre, "user:#"+users[0])
	} else {
		pre = []byte(`{"method":"broadcast","payload":{"channels":[`)
		for i, u := range users {
			if i > 0 {
				pre = append(pre, ',')
			}
			pre = strconv.AppendQuote(pre, "user:#"+u)
		}
		pre = append(pre, ']')
	}
	return append(pre, `,"data":`...), []byte(`}}`)
}

// dialCentrifugo opens /connection/websocket with gorilla/websocket (as the tool's ws-gorilla
// client does for realtime-service), sends the connect command with token and waits for its
// reply. Centrifugo's JSON protocol: one command or reply per line, several lines per WebSocket
// message; an empty object is a ping, answered with an empty object.
func dialCentrifugo(ctx context.Context, d *dialer, token string) (frameConn, error) {
	wd := d.wsDialer()
	c, resp, err := wd.DialContext(ctx, wsBase(d.base)+"/connection/websocket", nil)
	if err != nil {
		return nil, handshakeErr(err, resp)
	}
	connect, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]string{"token": token}})
	c.SetWriteDeadline(time.Now().Add(d.timeout))
	if err := c.WriteMessage(websocket.TextMessage, connect); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	c.SetReadDeadline(time.Now().Add(d.timeout))
	_, msg, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect reply: %w", err)
	}
	c.SetReadDeadline(time.Time{})
	reply, rest, _ := bytes.Cut(msg, []byte{'\n'})
	var r struct {
		ID      int             `json:"id"`
		Connect json.RawMessage `json:"connect"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect reply %q: %w", reply, err)
	}
	if r.Error != nil || r.ID != 1 || r.Connect == nil {
		c.Close()
		if r.Error != nil {
			return nil, fmt.Errorf("connect: error %d %s", r.Error.Code, r.Error.Message)
		}
		return nil, fmt.Errorf("connect: unexpected reply %q", reply)
	}
	return &centrifugoConn{c: c, pending: bytes.Clone(rest)}, nil
}

// centrifugoConn is one Centrifugo client connection.
type centrifugoConn struct {
	c       *websocket.Conn
	pending []byte // lines that came with the connect reply
	once    sync.Once
}

var centrifugoPing = []byte("{}")

// read calls onFrame with each line of each message (a push, or a reply) and answers pings.
func (cc *centrifugoConn) read(onFrame func([]byte)) error {
	lines := func(b []byte) error {
		for len(b) > 0 {
			var line []byte
			line, b, _ = bytes.Cut(b, []byte{'\n'})
			if bytes.Equal(line, centrifugoPing) {
				if err := cc.c.WriteMessage(websocket.TextMessage, centrifugoPing); err != nil {
					return err
				}
				continue
			}
			if len(line) > 0 {
				onFrame(line)
			}
		}
		return nil
	}
	if err := lines(cc.pending); err != nil {
		return err
	}
	cc.pending = nil
	var buf []byte // allocated on the first message: idle connections hold none
	for {
		_, r, err := cc.c.NextReader()
		if err != nil {
			return err
		}
		if buf, err = readAll(buf[:0], r); err != nil {
			return err
		}
		if err := lines(buf); err != nil {
			return err
		}
	}
}

func (cc *centrifugoConn) close() { cc.once.Do(func() { cc.c.Close() }) }

var errNoCentrifugo = errors.New("no Centrifugo binary: pass -centrifugo PATH or set CENTRIFUGO_BIN (build it with GOBIN=DIR go install github.com/centrifugal/centrifugo/v6@v6.9.1)")
