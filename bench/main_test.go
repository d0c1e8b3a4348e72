package main

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the tool where a mode re-executes it: the flood's
// attacking side runs as `<executable> flood-worker ...` (see floodInChild).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == floodWorkerMode {
		if err := runFloodWorker(context.Background(), os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench flood-worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
