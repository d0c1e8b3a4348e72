package socketio

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// interopDir is test/interop, relative to this package.
var interopDir = filepath.Join("..", "..", "test", "interop")

// requireNode returns the node binary, or skips the test (fails it when REQUIRE_INTEROP=1, as
// CI sets) when node or the pinned npm packages are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(interopDir, "node_modules", "socket.io-client", "package.json"))
	}
	if err != nil {
		msg := "the Node interop suite needs node and test/interop/node_modules: run `npm ci --prefix test/interop` (" + err.Error() + ")"
		if os.Getenv("REQUIRE_INTEROP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// TestConformance runs the Node suite test/interop/socketio/*.test.mjs (node:test, written from
// engine.io-protocol v4 and socket.io-protocol v5, plus unmodified socket.io-client@4 and
// cross-checks against the npm parsers) against a real hub and handler.
func TestConformance(t *testing.T) {
	nodeBin := requireNode(t)
	files, err := filepath.Glob(filepath.Join(interopDir, "socketio", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/interop/socketio/*.test.mjs (%v)", err)
	}
	if run := os.Getenv("SIO_TEST_FILES"); run != "" { // e.g. SIO_TEST_FILES=client to run one file
		files = slices.DeleteFunc(files, func(f string) bool { return !strings.Contains(filepath.Base(f), run) })
	}

	aux := startNode(t, nil) // the node the restart test restarts
	main := startNode(t, func(mux *http.ServeMux, n *node) {
		mux.HandleFunc("POST /control/restart", func(w http.ResponseWriter, r *http.Request) {
			if err := aux.restart(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
		mux.HandleFunc("POST /control/aux/publish", aux.handlePublish)
		mux.HandleFunc("GET /control/encode", handleEncode)
		mux.HandleFunc("POST /control/decode", handleDecode)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// --test-force-exit: a file ends when its tests do, whatever sockets a failed test left open;
	// --test-timeout bounds any single test (none should come near it).
	args := append([]string{"--test", "--test-reporter=spec", "--test-force-exit", "--test-timeout=60000"}, files...)
	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Env = append(os.Environ(),
		"SIO_URL="+main.url(),
		"SIO_AUX_URL="+aux.url(),
		"SIO_ORIGIN="+testOrigin,
		"NODE_PATH="+filepath.Join(interopDir, "node_modules"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("node suite failed: %v", err)
	}
}

// handleEncode serves our encoder's output for the cross-check table (crosscheck.test.mjs
// decodes each with the npm parsers).
func handleEncode(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(crossCheckTable())
}

// handleDecode decodes what the npm encoders produced: {"sio":[...], "eio":[...]} of strings.
func handleDecode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SIO []string `json:"sio"`
		EIO []string `json:"eio"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	json.NewEncoder(w).Encode(decodeForCrossCheck(req.SIO, req.EIO))
}
