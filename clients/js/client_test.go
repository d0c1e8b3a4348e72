// Package jsclient holds the Go test that runs the TypeScript client's suite (clients/js/test,
// node:test) as part of `go test ./...`, as the interop tests of test/interop run.
package jsclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// maxBundleGzip is the size budget of the minified browser bundle, gzipped, in bytes (issue 16:
// under 6 KB).
const maxBundleGzip = 6 << 10

// requireTool returns the path of name, or skips the test (fails it when REQUIRE_INTEROP=1, as
// CI sets after installing the tools).
func requireTool(t *testing.T, name, install string) string {
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

// TestJSClient builds the client (tsc and esbuild, `npm run build`), checks the bundle's size
// budget, builds the service binary and runs the client's suite against it: scenario (a)
// resume.test.mjs, (b) browser.test.mjs in Chromium, (c) refresh.test.mjs, (d)
// fallback.test.mjs, and unit.test.mjs against a scripted WebSocket. The suite starts the binary's embedded broker on its own
// (`realtime-service broker`) and service nodes on loopback ports, and stops them.
func TestJSClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several service processes and a browser (-short)")
	}
	node := requireTool(t, "node", "apt-get install nodejs")
	npm := requireTool(t, "npm", "apt-get install npm")
	if _, err := os.Stat(filepath.Join("node_modules", "esbuild")); err != nil {
		msg := "clients/js/node_modules is missing: run `npm ci --prefix clients/js` (make interop-deps)"
		if os.Getenv("REQUIRE_INTEROP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}

	run(npm, "run", "build")
	min, err := os.ReadFile(filepath.Join("dist", "realtime.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(min)
	w.Close()
	t.Logf("dist/realtime.min.js: %d bytes, %d gzipped", len(min), gz.Len())
	if gz.Len() >= maxBundleGzip {
		t.Errorf("the minified bundle is %d bytes gzipped, over the %d-byte budget", gz.Len(), maxBundleGzip)
	}

	bin := filepath.Join(t.TempDir(), "realtime-service")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	run(goBin, "build", "-o", bin, "../../cmd/realtime-service")

	// --test-force-exit: a file ends when its tests do; --test-timeout bounds each test file's
	// tests (each sets its own, lower, timeout too).
	files, _ := filepath.Glob(filepath.Join("test", "*.test.mjs"))
	if len(files) < 5 {
		t.Fatalf("test files %v, want the four scenarios and the unit tests", files)
	}
	args := append([]string{"--test", "--test-reporter=spec", "--test-force-exit", "--test-timeout=300000"}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "RT_BIN="+bin)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("client suite failed: %v", err)
	}
}
