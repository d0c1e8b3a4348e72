package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
)

func TestHealthEndpoints(t *testing.T) {
	kafkaUp := func(context.Context) (map[string]any, error) {
		return map[string]any{"brokers": []string{"127.0.0.1:9092"}}, nil
	}
	kafkaDown := func(context.Context) (map[string]any, error) {
		return nil, errors.New("kafka unavailable: dial tcp 127.0.0.1:9092: connection refused")
	}
	tests := []struct {
		name     string
		kafka    health.Check
		shutdown bool
		path     string
		status   int
		want     string
	}{
		{name: "health, up", kafka: kafkaUp, path: "/health", status: http.StatusOK,
			want: `{"status":"ok","info":{"kafka":{"status":"up","brokers":["127.0.0.1:9092"]}},"error":{},"details":{"kafka":{"status":"up","brokers":["127.0.0.1:9092"]}}}`},
		{name: "health, down", kafka: kafkaDown, path: "/health", status: http.StatusServiceUnavailable,
			want: `{"status":"error","info":{},"error":{"kafka":{"status":"down","message":"kafka unavailable: dial tcp 127.0.0.1:9092: connection refused"}},"details":{"kafka":{"status":"down","message":"kafka unavailable: dial tcp 127.0.0.1:9092: connection refused"}}}`},
		{name: "health, check hangs", kafka: nil, path: "/health", status: http.StatusServiceUnavailable,
			want: `{"status":"error","info":{},"error":{"kafka":{"status":"down","message":"timed out after 50ms"}},"details":{"kafka":{"status":"down","message":"timed out after 50ms"}}}`},
		{name: "ready", kafka: kafkaUp, path: "/health/ready", status: http.StatusOK,
			want: `{"status":"ok","info":{"kafka":{"status":"up","brokers":["127.0.0.1:9092"]}},"error":{},"details":{"kafka":{"status":"up","brokers":["127.0.0.1:9092"]}}}`},
		{name: "ready, kafka down", kafka: kafkaDown, path: "/health/ready", status: http.StatusServiceUnavailable,
			want: `{"status":"error","info":{},"error":{"kafka":{"status":"down","message":"kafka unavailable: dial tcp 127.0.0.1:9092: connection refused"}},"details":{"kafka":{"status":"down","message":"kafka unavailable: dial tcp 127.0.0.1:9092: connection refused"}}}`},
		{name: "ready, draining", kafka: kafkaUp, shutdown: true, path: "/health/ready", status: http.StatusServiceUnavailable,
			want: `{"status":"error","info":{},"error":{"shutdown":{"status":"down","message":"shutting down"}},"details":{"shutdown":{"status":"down","message":"shutting down"}}}`},
		{name: "live", kafka: kafkaDown, path: "/health/live", status: http.StatusOK,
			want: `{"status":"ok","info":{},"error":{},"details":{}}`},
		{name: "live, draining", kafka: kafkaDown, shutdown: true, path: "/health/live", status: http.StatusOK,
			want: `{"status":"ok","info":{},"error":{},"details":{}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checker := health.New(50 * time.Millisecond)
			check := tc.kafka
			if check == nil {
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				check = func(context.Context) (map[string]any, error) { <-release; return nil, nil }
			}
			checker.Require("kafka", check)
			if tc.shutdown {
				checker.SetShuttingDown()
			}
			s := newServer(t, func(_ *config.Config, d *httpapi.Deps) { d.Health = checker })
			r := httptest.NewRequest(http.MethodGet, tc.path, nil) // no API key needed
			w := s.serve(r)
			if w.Code != tc.status {
				t.Errorf("status = %d, want %d", w.Code, tc.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if !jsonEqual(t, w.Body.Bytes(), tc.want) {
				t.Errorf("body = %s\nwant   %s", w.Body, tc.want)
			}
		})
	}
}
