package kafka

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCheckPasses(t *testing.T) {
	cfg := testConfig(t)
	b := startBroker(t, cfg)
	for run := range 2 { // the second run finds the test topic already there
		var out bytes.Buffer
		if !Check(context.Background(), cfg, []string{b.Addr()}, &out) {
			t.Fatalf("run %d: Check failed:\n%s", run, out.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		steps := []string{"connect", "topic", "produce", "consume", "list"}
		if len(lines) != len(steps) {
			t.Fatalf("run %d: got %d lines, want %d:\n%s", run, len(lines), len(steps), out.String())
		}
		for i, step := range steps {
			if !strings.HasPrefix(lines[i], "PASS  "+step) || !strings.HasSuffix(lines[i], " ms)") {
				t.Errorf("run %d line %d: %q, want PASS  %s ... (N ms)", run, i, lines[i], step)
			}
		}
		if !strings.Contains(lines[0], b.Addr()) || !strings.Contains(lines[0], "cluster realtime-service-") {
			t.Errorf("connect line %q: want the address and the cluster ID", lines[0])
		}
	}
}

func TestCheckClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testConfig(t)
	cfg.RequestTimeout = time.Second
	var out bytes.Buffer
	if Check(context.Background(), cfg, []string{addr}, &out) {
		t.Fatalf("Check passed against a closed port:\n%s", out.String())
	}
	s := out.String()
	for _, want := range []string{"FAIL  connect", addr, "KAFKA_BROKERS", "advertised", "KAFKA_SASL_MECHANISM", "KAFKA_TLS"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\nPASS") || strings.HasPrefix(s, "PASS") {
		t.Errorf("no step can pass:\n%s", s)
	}
}
