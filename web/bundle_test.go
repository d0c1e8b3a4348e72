package web

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// clientDir is the JS client's package (clients/js), whose bundle the demo page loads.
const clientDir = "../clients/js"

// bundleCommand returns the esbuild command of clients/js's `npm run build` that writes
// dist/realtime.min.js, as arguments after the program name, with its --outfile replaced by out:
// the test builds the bundle exactly as the package does, whatever flags it gives.
func bundleCommand(t *testing.T, out string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(clientDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct{ Scripts map[string]string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("clients/js/package.json: %v", err)
	}
	for _, step := range strings.Split(pkg.Scripts["build"], "&&") {
		args := strings.Fields(step)
		if len(args) == 0 || args[0] != "esbuild" {
			continue
		}
		if i := slices.Index(args, "--outfile=dist/realtime.min.js"); i > 0 {
			args[i] = "--outfile=" + out
			return args[1:]
		}
	}
	t.Fatalf("clients/js/package.json: no esbuild step writing dist/realtime.min.js in the build script %q", pkg.Scripts["build"])
	return nil
}

// TestClientBundleIsFresh: static/realtime.min.js, the JS client the demo page imports, is byte
// for byte what clients/js's build makes of clients/js/src now; `go generate ./web` refreshes it.
// Like the other tests that need Node (clients/js TestJSClient, the interop tests), it skips
// without node or clients/js/node_modules unless REQUIRE_INTEROP=1, as CI sets.
func TestClientBundleIsFresh(t *testing.T) {
	esbuild := filepath.Join(clientDir, "node_modules", ".bin", "esbuild")
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(esbuild); err != nil || nodeErr != nil {
		msg := "node or clients/js/node_modules is missing: install nodejs and run `npm ci --prefix clients/js` (make interop-deps)"
		if os.Getenv("REQUIRE_INTEROP") == "1" {
			t.Fatalf("%s (REQUIRE_INTEROP=1)", msg)
		}
		t.Skip(msg + "; CI runs this test with REQUIRE_INTEROP=1")
	}
	out := filepath.Join(t.TempDir(), "realtime.min.js")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", "esbuild"), bundleCommand(t, out)...)
	cmd.Dir = clientDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := files.ReadFile("static/realtime.min.js")
	if err != nil {
		t.Fatalf("the embedded files hold no realtime.min.js (run go generate ./web): %v", err)
	}
	if !bytes.Equal(embedded, fresh) {
		t.Errorf("static/realtime.min.js (%d bytes) is not a fresh build of clients/js/src (%d bytes): run go generate ./web and commit the result", len(embedded), len(fresh))
	}
	if !bytes.Contains(fresh, []byte("createClient")) {
		t.Errorf("the fresh bundle does not export createClient:\n%.300s", fresh)
	}
}
