package httpapi

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// boundBody gives a request that has a body (a Content-Length above zero, or a chunked one)
// until timeout (KAFKA_REQUEST_TIMEOUT) to send it. The server has no read timeout, since client
// streams live for hours; without this a request that declares a body and never sends it would
// hold its connection forever, even on a route that never reads the body (an unknown route, a
// 401 for a missing API key): net/http reads up to 256 KiB of an unread body, with no deadline,
// before it answers. Requests without a body get no deadline: one would also end net/http's
// background read of a long-lived stream (SSE, a Socket.IO long poll) and cancel it.
func boundBody(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		}
		next.ServeHTTP(w, r)
	})
}

// logRequests logs one line per request (method, route pattern, path, status, duration) and
// counts it in m. Health and metrics probes, and the status page's poll of GET /v1/status (one a
// second per open page), log at debug level, also when they answer 503 (a node that is starting
// or draining is not ready: that is the probe's answer, not a server error); so do refusals at a
// cap (429, or 503 with Retry-After: a flood of them must not write a line per attempt) and
// Socket.IO's requests (one per long-poll); other server errors, and a probe's 500, log at error
// level; the rest at info. It logs and
// counts also when the handler panics on through it.
func logRequests(log *slog.Logger, m *metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			d := time.Since(start)
			status := sw.status
			if p := recover(); p != nil { // only http.ErrAbortHandler gets past recoverPanics
				if status == 0 {
					status = http.StatusInternalServerError
				}
				defer panic(p)
			} else if status == 0 {
				status = http.StatusOK // what net/http sends for a handler that wrote nothing
			}
			route := r.Pattern // set by the ServeMux on this very request
			if route == "" {
				route = routeUnmatched
			}
			m.observeRequest(route, r.Method, status, d)
			level := slog.LevelInfo
			probe := strings.HasPrefix(route, "GET /health") || route == "GET /metrics" || route == "GET /v1/status"
			switch {
			case probe && status != http.StatusInternalServerError:
				level = slog.LevelDebug
			case shed(status, sw.Header()):
				// A refusal at a cap: cheap by design, counted in /metrics and summed up by its
				// owner (admission logs one line per 10 s), never one line per attempt.
				level = slog.LevelDebug
			case status >= 500:
				level = slog.LevelError
			case route == socketIORoute:
				// A Socket.IO session makes a request per long-poll and per batch of packets:
				// an access line each would be most of the log. Sessions are counted in /metrics.
				level = slog.LevelDebug
			}
			log.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Duration("duration", d))
		}()
		next.ServeHTTP(sw, r)
	})
}

// socketIORoute is the pattern Socket.IO is mounted at (routes.go).
const socketIORoute = "/socket.io/"

// shed reports a deliberate refusal at a cap: 429, or 503 with Retry-After (the node full, too
// many unauthenticated sessions, shutting down), as opposed to a 503 that reports a failure.
func shed(status int, h http.Header) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable && h.Get("Retry-After") != ""
}

// recoverPanics turns a panic into a logged error and a 500 internal-error problem. If the
// response had begun, it aborts it instead (http.ErrAbortHandler), so the client sees a broken
// response rather than a complete-looking one; http.ErrAbortHandler itself passes through.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
				panic(p)
			}
			log.Error("panic serving request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("panic", fmt.Sprint(p)),
				slog.String("stack", string(debug.Stack())))
			if sw.status != 0 {
				panic(http.ErrAbortHandler)
			}
			writeProblem(sw, r, internalProblem())
		}()
		next.ServeHTTP(sw, r)
	})
}

// fallback serves mux, and answers the requests no route matches: GET and HEAD go to web when it
// is set (the route label is "GET /" when web serves the request; its 404 answers become
// not-found problems labelled as unmatched, like every other unknown path), and the rest get
// mux's verdict as a problem: 404 not-found, or 405 method-not-allowed with mux's Allow header.
func fallback(mux *http.ServeMux, web http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r) // a route, or a redirect to one
			return
		}
		verdict := &headerRecorder{header: http.Header{}}
		mux.ServeHTTP(verdict, r)
		switch {
		case verdict.status == http.StatusMethodNotAllowed:
			allow := verdict.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeProblem(w, r, methodNotAllowedProblem(r, allow))
		case verdict.status != http.StatusNotFound: // a redirect to the cleaned path
			for k, v := range verdict.header {
				w.Header()[k] = v
			}
			w.WriteHeader(verdict.status)
		case web != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			r.Pattern = "GET /"
			nf := &notFoundWriter{ResponseWriter: w}
			web.ServeHTTP(nf, r)
			if nf.notFound {
				r.Pattern = "" // not the page's: logRequests labels it unmatched
				writeProblem(w, r, notFoundProblem(r))
			}
		default:
			writeProblem(w, r, notFoundProblem(r))
		}
	})
}

// statusWriter records the status of a response. It passes Flush (SSE) and Hijack (WebSocket)
// through, and unwraps for http.ResponseController. A hijacked connection counts as status 101.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the header is written
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are interim answers
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerRecorder keeps the header and status a handler writes and drops the body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

// notFoundWriter passes a response through unless its status is 404, whose header and body it
// drops so that the caller can answer with a problem instead.
type notFoundWriter struct {
	http.ResponseWriter
	wrote    bool
	notFound bool
}

func (w *notFoundWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code == http.StatusNotFound {
		w.wrote, w.notFound = true, true
		return
	}
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *notFoundWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.notFound {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *notFoundWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
