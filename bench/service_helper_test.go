package main

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// buildForTest is the start of every test that runs the tool against the real service: it skips
// with -short or without the go command, builds the service binary (with -race when race is set
// and the test binary has it), and returns a context bounded by timeout and the buffer the tool
// writes its output to, logged if the test fails. Cancel, output and the binary are cleaned up
// with the test.
func buildForTest(t *testing.T, timeout time.Duration, race bool) (context.Context, *bytes.Buffer, *binary) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts the service; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	var log bytes.Buffer
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("tool output:\n%s", log.String())
		}
	})
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	if race && raceEnabled {
		flags = append(flags, "-race")
	}
	bin, err := buildBinary(ctx, root, "", "", &log, flags...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bin.remove)
	return ctx, &log, bin
}
