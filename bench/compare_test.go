package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestCompare runs compare briefly, as `go run ./bench compare` does, with small numbers: first
// realtime-service against a second realtime-service in the other system's place (CI has no
// Centrifugo), then against Centrifugo when CENTRIFUGO_BIN names its binary. It checks the
// harness, not the figures: every record reaches every user it names on both systems, the idle
// connections are held, each figure has both systems' values and a ratio, and each run has its
// JSON line.
func TestCompare(t *testing.T) {
	// Each system's check is bounded by its -timeout (3 minutes; about 80 s with -race on a busy
	// 2-core machine).
	ctx, log, bin := buildForTest(t, 7*time.Minute, true)

	check := func(t *testing.T, other compareSystem) {
		out := filepath.Join(t.TempDir(), "results.jsonl")
		c := &common{runs: 2, bin: bin.path, out: out, transport: "ws-gorilla", tokenAlg: "HS256", timeout: 3 * time.Minute}
		cc := compareConfig{
			scenarios: []compareScenario{
				{name: "latency-200", title: "10 users, 200 records/s", users: 10, fanout: 1, rate: 200, duration: 2 * time.Second},
				{name: "fanout-20", title: "20 users, each record to 5", users: 20, fanout: 5, rate: 100, duration: 2 * time.Second},
				{name: "idle", title: "50 idle connections", conns: 50},
			},
			drain: 15 * time.Second, drainIdle: 5 * time.Second, settle: 500 * time.Millisecond, parallel: 16,
		}
		var table bytes.Buffer
		outcomes, err := compare(ctx, []string{"-runs", "2"}, c, cc, [2]compareSystem{ourSystem{}, other}, &table, log)
		log.Write(table.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(outcomes) != 3 {
			t.Fatalf("%d outcomes; want 3", len(outcomes))
		}
		for _, o := range outcomes[:2] {
			for _, name := range []string{"lost", "duplicates", "misrouted", "disconnects"} {
				r := o.row(name)
				if r == nil || len(r.values[0]) != 2 || len(r.values[1]) != 2 {
					t.Fatalf("%s: figure %q: %+v; want 2 values per system", o.scenario.name, name, r)
				}
				for j, vs := range r.values {
					for _, v := range vs {
						if v != 0 {
							t.Errorf("%s, system %d: %s %v; want 0", o.scenario.name, j, name, v)
						}
					}
				}
			}
			if r := o.row("p99"); r == nil || len(r.ratios()) != 2 || slices.Contains(r.values[1], 0) {
				t.Errorf("%s: p99 %+v; want both systems' values and 2 ratios", o.scenario.name, r)
			}
		}
		idle := outcomes[2]
		if r := idle.row("connections held"); r == nil || !slices.Equal(r.values[0], []float64{50, 50}) || !slices.Equal(r.values[1], []float64{50, 50}) {
			t.Errorf("idle: connections held %+v; want 50 in every run", r)
		}
		if r := idle.row("RSS per connection"); r == nil || len(r.values[0]) != 2 || len(r.values[1]) != 2 {
			t.Errorf("idle: RSS per connection %+v; want 2 values per system", r)
		}
		for _, want := range []string{"== compare latency-200", "ratio ours/theirs", other.name()} {
			if !strings.Contains(table.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		// One JSON line per run: 3 scenarios x 2 systems x 2 runs, grouped by -scenario and -system.
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		groups := map[string]int{}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var rec runRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Mode != "compare" || rec.Error != "" || len(rec.Figures) == 0 {
				t.Errorf("JSON line: mode %q, error %q, %d figures", rec.Mode, rec.Error, len(rec.Figures))
			}
			groups[strings.Join(scenarioArgs(rec.Args), " ")]++
		}
		if len(groups) != 6 {
			t.Errorf("JSON lines in %d groups %v; want 6 (3 scenarios x 2 systems) of 2 runs", len(groups), groups)
		}
		for k, n := range groups {
			if n != 2 {
				t.Errorf("group %q has %d runs; want 2", k, n)
			}
		}
	}

	t.Run("self", func(t *testing.T) {
		check(t, ourSystem{label: "realtime-service as the other"})
	})
	t.Run("centrifugo", func(t *testing.T) {
		path := os.Getenv("CENTRIFUGO_BIN")
		if path == "" {
			t.Skip("CENTRIFUGO_BIN is unset: the harness ran against realtime-service only; set it to a Centrifugo binary (go install github.com/centrifugal/centrifugo/v6@v6.9.1) to compare with it")
		}
		cs, err := newCentrifugoSystem(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		check(t, cs)
	})
}

// TestCentrifugoEnvelope checks that a wrapped record is the server API command Centrifugo's
// consumer applies, with the value as the publication's data.
func TestCentrifugoEnvelope(t *testing.T) {
	value := []byte(`{"bench":"r.1.2","userIds":["a"]}`)
	for _, tc := range []struct {
		users  []string
		method string
		want   string
	}{
		{[]string{"u1"}, "publish", `{"channel":"user:#u1","data":{"bench":"r.1.2","userIds":["a"]}}`},
		{[]string{"u1", "u\"2"}, "broadcast", `{"channels":["user:#u1","user:#u\"2"],"data":{"bench":"r.1.2","userIds":["a"]}}`},
	} {
		pre, post := centrifugoEnvelope(tc.users)
		rec := append(append(append([]byte(nil), pre...), value...), post...)
		var cmd struct {
			Method  string          `json:"method"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(rec, &cmd); err != nil {
			t.Fatalf("%s: %v", rec, err)
		}
		if cmd.Method != tc.method || string(cmd.Payload) != tc.want {
			t.Errorf("%v: method %q payload %s; want %q %s", tc.users, cmd.Method, cmd.Payload, tc.method, tc.want)
		}
	}
}

// TestCentrifugoConn runs the Centrifugo client against a fake server speaking its JSON
// protocol: the connect command carries the token, lines of one message are frames of their
// own, a ping ({}) is answered, and a connect error fails the dial.
func TestCentrifugoConn(t *testing.T) {
	pong := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/connection/websocket" {
			http.NotFound(w, r)
			return
		}
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		var cmd struct {
			ID      int               `json:"id"`
			Connect map[string]string `json:"connect"`
		}
		json.Unmarshal(msg, &cmd)
		if cmd.Connect["token"] != "good" {
			c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"error":{"code":109,"message":"token expired"}}`))
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{"client":"x"}}`+"\n"+`{"push":{"pub":{"data":{"n":1}}}}`))
		c.WriteMessage(websocket.TextMessage, []byte(`{"push":{"pub":{"data":{"n":2}}}}`+"\n"+`{"push":{"pub":{"data":{"n":3}}}}`))
		c.WriteMessage(websocket.TextMessage, []byte(`{}`))
		_, msg, err = c.ReadMessage()
		if err == nil {
			pong <- string(msg)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := newDialer("ws-gorilla", srv.URL, 1024)

	if _, err := dialCentrifugo(ctx, d, "bad"); err == nil || !strings.Contains(err.Error(), "token expired") {
		t.Errorf("dial with a refused token: %v; want the connect error", err)
	}
	fc, err := dialCentrifugo(ctx, d, "good")
	if err != nil {
		t.Fatal(err)
	}
	defer fc.close()
	var frames []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		fc.read(func(b []byte) { frames = append(frames, string(b)) })
	}()
	select {
	case p := <-pong:
		if p != "{}" {
			t.Errorf("ping answered with %q; want {}", p)
		}
	case <-ctx.Done():
		t.Fatal("the ping was not answered")
	}
	fc.close()
	<-done
	want := []string{`{"push":{"pub":{"data":{"n":1}}}}`, `{"push":{"pub":{"data":{"n":2}}}}`, `{"push":{"pub":{"data":{"n":3}}}}`}
	if !slices.Equal(frames, want) {
		t.Errorf("frames %q; want %q", frames, want)
	}
}
