package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/health"
)

func up(details map[string]any) health.Check {
	return func(context.Context) (map[string]any, error) { return details, nil }
}

func down(details map[string]any, msg string) health.Check {
	return func(context.Context) (map[string]any, error) { return details, errors.New(msg) }
}

// hang returns a check that ignores its context and blocks until the test ends.
func hang(t *testing.T) health.Check {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(context.Context) (map[string]any, error) {
		<-release
		return nil, nil
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, c *health.Checker)
		want  string // Result as JSON (map keys sorted)
	}{
		{
			name:  "no checks",
			setup: func(*testing.T, *health.Checker) {},
			want:  `{"status":"ok","info":{},"error":{},"details":{}}`,
		},
		{
			name: "all up with details",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", up(map[string]any{"brokers": 3}))
				c.Add("hub", up(nil))
			},
			want: `{"status":"ok",` +
				`"info":{"hub":{"status":"up"},"kafka":{"brokers":3,"status":"up"}},` +
				`"error":{},` +
				`"details":{"hub":{"status":"up"},"kafka":{"brokers":3,"status":"up"}}}`,
		},
		{
			name: "one down",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", down(map[string]any{"broker": "k1:9092"}, "dial tcp: connection refused"))
				c.Add("hub", up(nil))
			},
			want: `{"status":"error",` +
				`"info":{"hub":{"status":"up"}},` +
				`"error":{"kafka":{"broker":"k1:9092","message":"dial tcp: connection refused","status":"down"}},` +
				`"details":{"hub":{"status":"up"},"kafka":{"broker":"k1:9092","message":"dial tcp: connection refused","status":"down"}}}`,
		},
		{
			name: "an informational check down still makes /health an error",
			setup: func(t *testing.T, c *health.Checker) {
				c.Add("hub", down(nil, "no consumer"))
			},
			want: `{"status":"error","info":{},"error":{"hub":{"message":"no consumer","status":"down"}},"details":{"hub":{"message":"no consumer","status":"down"}}}`,
		},
		{
			name: "hanging check times out",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", hang(t))
				c.Add("hub", up(nil))
			},
			want: `{"status":"error",` +
				`"info":{"hub":{"status":"up"}},` +
				`"error":{"kafka":{"message":"timed out after 200ms","status":"down"}},` +
				`"details":{"hub":{"status":"up"},"kafka":{"message":"timed out after 200ms","status":"down"}}}`,
		},
		{
			name: "panicking check is down",
			setup: func(t *testing.T, c *health.Checker) {
				c.Add("bad", func(context.Context) (map[string]any, error) { panic("boom") })
			},
			want: `{"status":"error","info":{},"error":{"bad":{"message":"check panicked: boom","status":"down"}},"details":{"bad":{"message":"check panicked: boom","status":"down"}}}`,
		},
		{
			name: "degraded: listed under info with its message, overall ok",
			setup: func(t *testing.T, c *health.Checker) {
				c.Add("jwks", func(context.Context) (map[string]any, error) {
					return map[string]any{"keys": 2}, health.Degraded(errors.New("connection refused"))
				})
			},
			want: `{"status":"ok","info":{"jwks":{"keys":2,"message":"connection refused","status":"degraded"}},"error":{},"details":{"jwks":{"keys":2,"message":"connection refused","status":"degraded"}}}`,
		},
		{
			name: "reserved detail keys are overwritten",
			setup: func(t *testing.T, c *health.Checker) {
				c.Add("x", up(map[string]any{"status": "fine", "message": "ignored"}))
			},
			want: `{"status":"ok","info":{"x":{"status":"up"}},"error":{},"details":{"x":{"status":"up"}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := health.New(200 * time.Millisecond)
			tc.setup(t, c)
			got := c.Check(context.Background())
			if s := toJSON(t, got); s != tc.want {
				t.Errorf("Check:\n got %s\nwant %s", s, tc.want)
			}
			if got.OK() != (got.Status == health.StatusOK) {
				t.Errorf("OK() = %v with status %q", got.OK(), got.Status)
			}
		})
	}
}

func TestCheckDoesNotChangeDetails(t *testing.T) {
	details := map[string]any{"brokers": 1}
	c := health.New(time.Second)
	c.Add("kafka", up(details))
	c.Check(context.Background())
	if len(details) != 1 {
		t.Errorf("check's details were changed: %v", details)
	}
}

func TestChecksRunConcurrently(t *testing.T) {
	// Each check waits for the other to start: run one after the other, both would time out.
	a, b := make(chan struct{}), make(chan struct{})
	wait := func(mine, other chan struct{}) health.Check {
		return func(ctx context.Context) (map[string]any, error) {
			close(mine)
			select {
			case <-other:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	c := health.New(10 * time.Second)
	c.Add("a", wait(a, b))
	c.Add("b", wait(b, a))
	if r := c.Check(context.Background()); !r.OK() {
		t.Errorf("Check = %s, want both up", toJSON(t, r))
	}
}

func TestHangingCheckRunsOnce(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	c := health.New(10 * time.Millisecond)
	c.Require("kafka", func(context.Context) (map[string]any, error) {
		calls.Add(1)
		<-release // ignores its context
		return nil, nil
	})
	for range 3 {
		if r := c.Check(context.Background()); r.OK() {
			t.Fatalf("Check = %s, want kafka down", toJSON(t, r))
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a hanging check was started %d times, want 1 (later probes join the run in flight)", n)
	}
	close(release)
}

func TestCallerContextCancelled(t *testing.T) {
	c := health.New(time.Minute)
	c.Add("kafka", hang(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := c.Check(ctx)
	msg, _ := r.Error["kafka"]["message"].(string)
	if want := "not completed: context canceled"; msg != want {
		t.Errorf("message = %q, want %q", msg, want)
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, c *health.Checker)
		shutdown bool
		want     string
	}{
		{
			name: "required up, informational down: ready, only required reported",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", up(nil))
				c.Add("hub", down(nil, "x"))
			},
			want: `{"status":"ok","info":{"kafka":{"status":"up"}},"error":{},"details":{"kafka":{"status":"up"}}}`,
		},
		{
			name: "required down: not ready",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", down(nil, "unreachable"))
			},
			want: `{"status":"error","info":{},"error":{"kafka":{"message":"unreachable","status":"down"}},"details":{"kafka":{"message":"unreachable","status":"down"}}}`,
		},
		{
			name: "required check degraded: ready",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("jwks", func(context.Context) (map[string]any, error) {
					return nil, health.Degraded(fmt.Errorf("fetch: %w", errors.New("timeout")))
				})
			},
			want: `{"status":"ok","info":{"jwks":{"message":"fetch: timeout","status":"degraded"}},"error":{},"details":{"jwks":{"message":"fetch: timeout","status":"degraded"}}}`,
		},
		{
			name: "required check hangs: not ready",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", hang(t))
			},
			want: `{"status":"error","info":{},"error":{"kafka":{"message":"timed out after 200ms","status":"down"}},"details":{"kafka":{"message":"timed out after 200ms","status":"down"}}}`,
		},
		{
			name: "shutting down: not ready, checks not run",
			setup: func(t *testing.T, c *health.Checker) {
				c.Require("kafka", func(context.Context) (map[string]any, error) {
					t.Error("a check ran while shutting down")
					return nil, nil
				})
			},
			shutdown: true,
			want:     `{"status":"error","info":{},"error":{"shutdown":{"message":"shutting down","status":"down"}},"details":{"shutdown":{"message":"shutting down","status":"down"}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := health.New(200 * time.Millisecond)
			tc.setup(t, c)
			if tc.shutdown {
				c.SetShuttingDown()
			}
			if got := toJSON(t, c.Ready(context.Background())); got != tc.want {
				t.Errorf("Ready:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLive(t *testing.T) {
	c := health.New(0)
	c.Require("kafka", down(nil, "unreachable"))
	c.SetShuttingDown()
	if !c.ShuttingDown() {
		t.Error("ShuttingDown() = false after SetShuttingDown")
	}
	want := `{"status":"ok","info":{},"error":{},"details":{}}`
	if got := toJSON(t, c.Live()); got != want {
		t.Errorf("Live = %s, want %s", got, want)
	}
}

func TestAddPanics(t *testing.T) {
	tests := []struct {
		name  string
		check string
		fn    health.Check
	}{
		{"empty name", "", up(nil)},
		{"reserved name", health.ShutdownCheck, up(nil)},
		{"nil check", "x", nil},
		{"duplicate", "kafka", up(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := health.New(0)
			c.Add("kafka", up(nil))
			defer func() {
				if recover() == nil {
					t.Error("Add did not panic")
				}
			}()
			c.Add(tc.check, tc.fn)
		})
	}
}

func TestDegradedNil(t *testing.T) {
	if health.Degraded(nil) != nil {
		t.Error("Degraded(nil) is not nil: a healthy check would be reported degraded")
	}
}
