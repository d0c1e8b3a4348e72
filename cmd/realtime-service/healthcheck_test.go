package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// The image's HEALTHCHECK command: 0 against a serving node, an error against a port nobody
// serves (the node is gone).
func TestHealthcheckCommand(t *testing.T) {
	s := startService(t, nil)
	addr := strings.TrimPrefix(s.URL, "http://")
	_, port, _ := strings.Cut(addr, ":")
	for _, httpAddr := range []string{addr, ":" + port, "0.0.0.0:" + port} {
		var out bytes.Buffer
		env := map[string]string{"HTTP_ADDR": httpAddr}
		err := run(context.Background(), []string{"realtime-service", "healthcheck"}, func(k string) string { return env[k] }, &out, io.Discard)
		if err != nil || !strings.Contains(out.String(), "200") {
			t.Errorf("healthcheck with HTTP_ADDR=%s: %v, output %q; want nil and 200", httpAddr, err, out.String())
		}
	}
	env := map[string]string{"HTTP_ADDR": freeAddr(t)}
	if err := run(context.Background(), []string{"realtime-service", "healthcheck"}, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil {
		t.Error("healthcheck against a port nobody serves: nil, want an error")
	}
}
