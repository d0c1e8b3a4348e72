package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

// marker is a handler that answers 200 with its name, standing in for another package's handler.
func marker(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	})
}

// withClients mounts marker handlers for every optional dependency.
func withClients(_ *config.Config, d *httpapi.Deps) {
	d.Users = auth.NewVerifier([]byte(userSecret))
	d.WebSocket = marker("ws")
	d.SSE = marker("sse")
	d.SocketIO = marker("socket.io")
	d.DevToken = marker("dev-token")
	d.Web = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/app.js":
			fmt.Fprint(w, "web "+r.URL.Path)
		default:
			http.NotFound(w, r)
		}
	})
}

func TestClientRoutesNeedNoAPIKey(t *testing.T) {
	tests := []struct {
		method, path, want string
	}{
		{http.MethodGet, "/v1/ws?access_token=" + userToken, "ws"},
		{http.MethodGet, "/v1/events?access_token=" + userToken, "sse"},
		{http.MethodGet, "/socket.io/?EIO=4&transport=polling", "socket.io"},
		{http.MethodPost, "/socket.io/?EIO=4&transport=polling&sid=x", "socket.io"},
		{http.MethodGet, "/v1/dev/token", "dev-token"},
		{http.MethodGet, "/", "web /"},
		{http.MethodGet, "/app.js", "web /app.js"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			s := newServer(t, withClients) // API keys are configured
			w := s.serve(httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != http.StatusOK || w.Body.String() != tc.want {
				t.Errorf("got %d %q, want 200 %q", w.Code, w.Body, tc.want)
			}
		})
	}
}

func TestClientRoutesUnmountedWhenNil(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{"/v1/ws", "/v1/events", "/socket.io/", "/v1/dev/token", "/", "/app.js"} {
		problemOf(t, s.serve(httptest.NewRequest(http.MethodGet, path, nil)), http.StatusNotFound, "not-found")
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		path        string
		web         bool
		status      int
		allow       string
		wantExactly string // the whole body, when set
	}{
		{name: "unknown path", method: http.MethodGet, path: "/v2/nothing", status: http.StatusNotFound,
			wantExactly: `{"type":"/problems/not-found","title":"No such route","status":404,"detail":"No route matches GET /v2/nothing.","instance":"/v2/nothing","code":"not-found","errors":[]}`},
		{name: "unknown path, POST", method: http.MethodPost, path: "/v1/notifications/typo", status: http.StatusNotFound},
		{name: "unknown path, POST, with web", method: http.MethodPost, path: "/v1/notifications/typo", web: true, status: http.StatusNotFound},
		{name: "web's own 404", method: http.MethodGet, path: "/missing.css", web: true, status: http.StatusNotFound},
		{name: "unknown API path with web", method: http.MethodGet, path: "/v1/nothing", web: true, status: http.StatusNotFound},
		{name: "POST to the web root", method: http.MethodPost, path: "/", web: true, status: http.StatusNotFound},
		{name: "GET a POST route", method: http.MethodGet, path: conceptPath, status: http.StatusMethodNotAllowed, allow: "POST"},
		{name: "GET a POST route, with web", method: http.MethodGet, path: conceptPath, web: true, status: http.StatusMethodNotAllowed, allow: "POST"},
		{name: "DELETE topics", method: http.MethodDelete, path: "/v1/topics", status: http.StatusMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "POST health", method: http.MethodPost, path: "/health", status: http.StatusMethodNotAllowed, allow: "GET, HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s *testServer
			if tc.web {
				s = newServer(t, withClients)
			} else {
				s = newServer(t)
			}
			w := s.serve(request(tc.method, tc.path, ""))
			code := "not-found"
			if tc.status == http.StatusMethodNotAllowed {
				code = "method-not-allowed"
			}
			p := problemOf(t, w, tc.status, code)
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if p.Instance != tc.path {
				t.Errorf("instance = %q, want %q", p.Instance, tc.path)
			}
			if tc.wantExactly != "" && strings.TrimSpace(w.Body.String()) != tc.wantExactly {
				t.Errorf("body = %s\nwant   %s", w.Body, tc.wantExactly)
			}
		})
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	s := newServer(t)
	s.kafka.panicOnProduce = true
	p := problemOf(t, s.post(conceptPath, validConcept), http.StatusInternalServerError, "internal-error")
	if strings.Contains(p.Detail, "exploded") {
		t.Errorf("detail %q leaks the panic", p.Detail)
	}
	logs := s.logs.String()
	for _, want := range []string{"panic serving request", "fake kafka exploded", "status=500"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestPanicAfterResponseBegan(t *testing.T) {
	s := newServer(t, func(_ *config.Config, d *httpapi.Deps) {
		d.Users = auth.NewVerifier([]byte(userSecret))
		d.SSE = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			panic("mid-stream")
		})
	})
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("panic = %v, want http.ErrAbortHandler so that net/http drops the connection", p)
		}
		if !strings.Contains(s.logs.String(), "mid-stream") {
			t.Errorf("panic not logged:\n%s", s.logs)
		}
	}()
	s.serve(httptest.NewRequest(http.MethodGet, "/v1/events?access_token="+userToken, nil))
}

func TestRequestLog(t *testing.T) {
	s := newServer(t)
	s.post("/v1/topics/orders/records", `{"value":1}`)
	logs := s.logs.String()
	for _, want := range []string{`msg="http request"`, "method=POST", `route="POST /v1/topics/{topic}/records"`, "path=/v1/topics/orders/records", "status=201", "duration="} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, testKey) {
		t.Error("the API key was logged")
	}
}

// TestRequestLogLevels: a readiness probe answered 503 (a pod that is starting: the consumer has
// no partitions yet) is not an error, so it does not log at ERROR, where every pod start would
// page someone; a handler that fails with a 5xx does.
func TestRequestLogLevels(t *testing.T) {
	s := newServer(t)
	s.health.Require("kafka", func(context.Context) (map[string]any, error) {
		return nil, errors.New("no partitions assigned yet")
	})
	if w := s.serve(httptest.NewRequest(http.MethodGet, "/health/ready", nil)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /health/ready: %d, want 503", w.Code)
	}
	s.kafka.produceErr = func(*kgo.Record) error { return kafka.ErrUnavailable }
	s.post(conceptPath, validConcept) // 503 from Kafka: a real failure
	var probe, produce string
	for _, line := range strings.Split(s.logs.String(), "\n") {
		switch {
		case strings.Contains(line, `route="GET /health/ready"`):
			probe = line
		case strings.Contains(line, `msg="http request"`) && strings.Contains(line, "concept-mastered"):
			produce = line
		}
	}
	if !strings.Contains(probe, "level=DEBUG") || !strings.Contains(probe, "status=503") {
		t.Errorf("the not-ready probe logged %q, want level=DEBUG with status=503", probe)
	}
	if !strings.Contains(produce, "level=ERROR") || !strings.Contains(produce, "status=503") {
		t.Errorf("the failed produce logged %q, want level=ERROR with status=503", produce)
	}
}

// TestRefusalsAndSocketIOPollsLogAtDebug: a flood of refusals at a cap (429, or 503 with
// Retry-After) and Socket.IO's per-poll requests write no line at the default level; a 503
// without Retry-After (a failure) still logs at error.
func TestRefusalsAndSocketIOPollsLogAtDebug(t *testing.T) {
	s := newServer(t, func(_ *config.Config, d *httpapi.Deps) {
		d.SocketIO = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("answer") {
			case "503":
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusServiceUnavailable)
			case "429":
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			case "failure":
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				w.Write([]byte("6"))
			}
		})
	})
	for _, answer := range []string{"503", "429", "poll", "failure"} {
		s.serve(httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling&answer="+answer, nil))
	}
	levels := map[string]string{}
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if !strings.Contains(line, `msg="http request"`) {
			continue
		}
		level, _, _ := strings.Cut(strings.TrimPrefix(line[strings.Index(line, "level="):], "level="), " ")
		status, _, _ := strings.Cut(line[strings.Index(line, "status=")+len("status="):], " ")
		levels[status] += level + " "
	}
	want := map[string]string{"503": "DEBUG ERROR ", "429": "DEBUG ", "200": "DEBUG "}
	for status, l := range want {
		if levels[status] != l {
			t.Errorf("status %s logged at %q, want %q (all: %v)", status, levels[status], l, levels)
		}
	}
}

// TestStreamingHandlers runs a real server: the transports need Flush (SSE) and Hijack
// (WebSocket, as gorilla/websocket asserts w.(http.Hijacker)) through the middleware.
func TestStreamingHandlers(t *testing.T) {
	s := newServer(t, func(_ *config.Config, d *httpapi.Deps) {
		d.Users = auth.NewVerifier([]byte(userSecret))
		d.SSE = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, ok := w.(http.Flusher)
			if !ok {
				http.Error(w, "no flusher", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: one\n\n")
			f.Flush()
		})
		d.WebSocket = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, ok := w.(http.Hijacker)
			if !ok {
				http.Error(w, "no hijacker", http.StatusInternalServerError)
				return
			}
			conn, rw, err := h.Hijack()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer conn.Close()
			fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhello")
			rw.Flush()
		})
	})
	wsDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handler.ServeHTTP(w, r)
		if r.URL.Path == "/v1/ws" {
			close(wsDone) // the request log line is written by now
		}
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v1/events?access_token=" + userToken)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || body != "data: one\n\n" {
		t.Errorf("SSE: %d %q", resp.StatusCode, body)
	}

	conn, err := (&net.Dialer{}).Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /v1/ws?access_token="+userToken+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket: status %d", resp.StatusCode)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "hello" {
		t.Errorf("after the upgrade: %q", rest)
	}
	<-wsDone
	if want := `route="GET /v1/ws" path=/v1/ws status=101`; !strings.Contains(s.logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, s.logs)
	}
}

func TestNewServerNeedsKafkaAndHealth(t *testing.T) {
	for _, d := range []httpapi.Deps{{Health: health.New(0)}, {Kafka: &fakeKafka{}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewServer(%+v) did not panic", d)
				}
			}()
			httpapi.NewServer(nil, testConfig(), d)
		}()
	}
}

func TestUncleanPathsRedirect(t *testing.T) {
	s := newServer(t)
	for path, want := range map[string]string{
		"/v1//topics":     "/v1/topics", // a route
		"/x/../elsewhere": "/elsewhere", // no route: still the ServeMux's redirect, not a problem
	} {
		w := s.serve(request(http.MethodGet, path, ""))
		if w.Code < 300 || w.Code > 399 || w.Header().Get("Location") != want {
			t.Errorf("GET %s: %d Location %q, want a redirect to %s", path, w.Code, w.Header().Get("Location"), want)
		}
	}
}
