package socketio

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// debianPython is the interpreter whose dist-packages hold Debian's python3-socketio (a pyenv or
// venv python3 earlier on PATH would not see them).
const debianPython = "/usr/bin/python3"

// requirePythonSocketIO returns debianPython, or skips the test (fails it when REQUIRE_INTEROP=1,
// as CI sets) when it cannot import socketio and websocket (python3-socketio, python3-websocket).
func requirePythonSocketIO(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import socketio, websocket, requests").CombinedOutput()
	if err != nil {
		msg := "the Python interop test needs " + debianPython + " with python3-socketio and python3-websocket (apt-get install python3-socketio python3-websocket): " + err.Error() + ": " + string(out)
		if os.Getenv("REQUIRE_INTEROP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return debianPython
}

// pyEnv is a server for the Python client: a hub with a cursor codec and a replayer behind the
// handler, on a listener whose connections /control/drop closes all at once (a network drop:
// no Close frame, no close packet), and a control server on another listener.
type pyEnv struct {
	t       *testing.T
	hub     *realtime.Hub
	h       *Handler
	replay  *memReplayer
	sio     *httptest.Server
	control *httptest.Server

	mu     sync.Mutex
	offset int64
	conns  map[net.Conn]bool
}

func newPyEnv(t *testing.T) *pyEnv {
	rep := &memReplayer{}
	hub := realtime.NewHub(realtime.HubConfig{Replayer: rep})
	codec, err := realtime.NewCursorCodec("socketio-test-cluster", testTopics)
	if err != nil {
		t.Fatal(err)
	}
	hub.SetCursorCodec(codec)
	hub.Assigned(map[string]map[int32]int64{notification.TopicConcepts: {0: 0}})
	e := &pyEnv{t: t, hub: hub, replay: rep, conns: map[net.Conn]bool{}}
	e.h = NewHandler(hub, Config{
		Verifier:     auth.NewVerifier(testSecret),
		PingInterval: 500 * time.Millisecond,
		PongTimeout:  5 * time.Second,
	})
	e.sio = httptest.NewUnstartedServer(e.h)
	e.sio.Config.ConnState = func(c net.Conn, s http.ConnState) {
		e.mu.Lock()
		defer e.mu.Unlock()
		switch s {
		case http.StateNew:
			e.conns[c] = true
		case http.StateClosed:
			delete(e.conns, c)
		}
	}
	e.sio.Start()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /control/token", handleToken)
	mux.HandleFunc("POST /control/publish", e.handlePublish)
	mux.HandleFunc("POST /control/drop", e.handleDrop)
	e.control = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Shutdown(ctx)
		e.h.Shutdown(ctx)
		e.drop() // hijacked WebSockets are not the server's to close
		e.sio.Close()
		e.control.Close()
	})
	return e
}

// handlePublish publishes {"userIds", "data"} as a concept-mastered event; answers {"id"}.
func (e *pyEnv) handlePublish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.UserIDs) == 0 {
		http.Error(w, "bad publish request", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	ev := &notification.Event{
		Name: notification.EventConceptMastered, Topic: notification.TopicConcepts, Offset: e.offset,
		Time: time.Now(), UserIDs: req.UserIDs, Data: req.Data,
	}
	e.offset++
	e.mu.Unlock()
	e.replay.add(ev)
	json.NewEncoder(w).Encode(map[string]string{"id": e.hub.Publish(ev).ID()})
}

// handleDrop closes every TCP connection of the Socket.IO server, WebSockets included.
func (e *pyEnv) handleDrop(w http.ResponseWriter, r *http.Request) { e.drop() }

func (e *pyEnv) drop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.conns {
		c.Close()
		delete(e.conns, c)
	}
}

// TestPythonSocketIOClientResumesFromItsCursorAndIDs runs test/interop/python/resume_client.py
// (python-socketio's threaded Client, Debian's python3-socketio) on each transport: a one-argument
// handler `def on_cm(data)` gets exactly each payload (auth cursorArg false), its `cursor` handler
// the opening cursor, then each event's {"id"}; after a network drop the client resumes with
// auth cursor "<last cursor>~<IDs since>": the events published while it was away come, none
// twice, then a cursor past them; whoami is acknowledged; the disconnect leaves no session behind.
func TestPythonSocketIOClientResumesFromItsCursorAndIDs(t *testing.T) {
	python := requirePythonSocketIO(t)
	script := filepath.Join(interopDir, "python", "resume_client.py")
	for _, mode := range []string{"polling", "websocket", "upgrade"} {
		t.Run(mode, func(t *testing.T) {
			e := newPyEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, script, mode)
			cmd.Env = append(os.Environ(), "SIO_URL="+e.sio.URL, "SIO_CONTROL_URL="+e.control.URL)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || strings.Contains(stderr.String(), "Traceback") {
				t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", script, mode, err, out, stderr.String())
			}
			var r struct {
				Received    []int
				Cursors     []string
				IDs         []string
				ResumedWith string `json:"resumed_with"`
				Published   []string
				Connects    int
				Transport   string
				Whoami      map[string]string
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			got := slices.Clone(r.Received)
			slices.Sort(got) // the threaded client may run two handlers out of order
			if !slices.Equal(got, []int{1, 2, 3, 4}) {
				t.Errorf("received %v, want 1, 2, 3, 4 once each", r.Received)
			}
			for i, id := range r.Published {
				if !slices.Contains(r.IDs, id) {
					t.Errorf("event %d's ID %s never came in a cursor event (got %q)", i+1, id, r.IDs)
				}
			}
			// The opening cursor and event 1's ID, or a cursor a ping brought after event 1.
			cursor, ids, _ := strings.Cut(r.ResumedWith, "~")
			if !slices.Contains(r.Cursors, cursor) || ids != "" && !slices.Contains(r.Published, ids) {
				t.Errorf("resumed with %q, want a cursor it got (%q) and the IDs since", r.ResumedWith, r.Cursors)
			}
			for _, c := range r.Cursors {
				if _, err := e.hub.Codec().Decode(c); err != nil {
					t.Errorf("cursor %q: %v", c, err)
				}
			}
			wantTransport := map[string]string{"polling": "polling", "websocket": "websocket", "upgrade": "websocket"}[mode]
			if r.Connects != 2 || r.Transport != wantTransport || r.Whoami["userId"] != "py-"+mode {
				t.Errorf("connects %d (want 2), transport %q (want %q), whoami %v", r.Connects, r.Transport, wantTransport, r.Whoami)
			}
			if n := value(e.h.m.connects.WithLabelValues("recovered")); n != 1 {
				t.Errorf("recovered connects = %v, want 1 (the resume by auth cursor)", n)
			}
			for _, reason := range []string{"socketio", "engineio", "heartbeat"} {
				if n := value(e.h.m.protocolErrors.WithLabelValues(reason)); n != 0 {
					t.Errorf("%v protocol errors (%s)", n, reason)
				}
			}
			// The clean disconnect ends the last session at once; the session the drop left on
			// polling ends when its client misses a pong.
			waitFor(t, "no hub connection left", func() bool { return e.hub.Connections() == 0 })
		})
	}
}
