package realtime

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/admission"
)

// openRawSSE sends a GET for the stream on a plain TCP connection (proto: "HTTP/1.1" or
// "HTTP/1.0", plus whatever extra the client sends after its request) and returns the parsed
// response; the connection is closed when the test ends.
func openRawSSE(t *testing.T, srv *httptest.Server, proto, extra string) (net.Conn, *http.Response) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET / "+proto+"\r\nHost: x\r\n\r\n"+extra); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return nc, resp
}

// readUntil reads the stream's lines until one contains want; it fails if the stream ends first.
func readUntil(t *testing.T, rd *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before %q: %v", want, err)
		}
		if strings.Contains(line, want) {
			return
		}
	}
}

// TestSSEOverHTTP11IsAChunkedStreamThatEndsCleanly: on HTTP/1.1 the stream is taken over from
// net/http; its headers stay those of net/http's answer, what the client sends after its
// request is ignored, and at shutdown the disconnect frame is followed by the last chunk
// (RFC 9112 §7.1), so the body ends without error, and the connection is closed.
func TestSSEOverHTTP11IsAChunkedStreamThatEndsCleanly(t *testing.T) {
	adm := admission.New(admission.Config{})
	h := newResumeHub(t, nil)
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{Admission: adm, PingInterval: 20 * time.Millisecond})))
	defer srv.Close()
	nc, resp := openRawSSE(t, srv, "HTTP/1.1", "garbage a client should not send\r\n")
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, transfer coding %v: want 200, chunked", resp.StatusCode, resp.TransferEncoding)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	readUntil(t, rd, "retry: 2000")
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	h.Publish(event("concept-notifications", 0, 5, "alice"))
	readUntil(t, rd, `"id":"concept-notifications:0:5"`)
	readUntil(t, rd, ": ping") // the keepalive timer

	go h.Shutdown(t.Context())
	readUntil(t, rd, `"code":1001`)
	if rest, err := io.ReadAll(rd); err != nil {
		t.Fatalf("body ended with %v after %q: want the last chunk", err, rest)
	}
	if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d bytes, %v after the last chunk: want end of stream", n, err)
	}
	nc.Close() // as a client does: the server's reader ends
	waitFor(t, "the ticket released", func() bool { return adm.Connections() == 0 })
}

// TestSSEClientCloseEndsTheHijackedStream: the reader notices a client that goes away at once
// (not at the next heartbeat), and the connection, its ticket and its goroutine go with it.
func TestSSEClientCloseEndsTheHijackedStream(t *testing.T) {
	adm := admission.New(admission.Config{})
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{Admission: adm, PingInterval: time.Hour})))
	defer srv.Close()
	nc, resp := openRawSSE(t, srv, "HTTP/1.1", "")
	readUntil(t, bufio.NewReader(resp.Body), "retry: 2000")
	waitFor(t, "registration", func() bool { return h.Connections() == 1 && adm.Connections() == 1 })
	nc.Close()
	waitFor(t, "the stream closed", func() bool { return h.Connections() == 0 && adm.Connections() == 0 })
	if n := h.m.disconnectCount("client_gone"); n != 1 {
		t.Errorf("client-gone disconnects = %d, want 1", n)
	}
}

// TestSSEIdleStreamHoldsOneGoroutine: an idle HTTP/1.1 stream costs one goroutine, its reader:
// neither the handler nor net/http's connection goroutine and background read stay.
func TestSSEIdleStreamHoldsOneGoroutine(t *testing.T) {
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{PingInterval: time.Hour})))
	defer srv.Close()
	const n = 20
	before := runtime.NumGoroutine()
	for range n {
		_, resp := openRawSSE(t, srv, "HTTP/1.1", "")
		readUntil(t, bufio.NewReader(resp.Body), "retry: 2000")
	}
	waitFor(t, "registration", func() bool { return h.Connections() == n })
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine()-before > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d idle streams, want at most one each", runtime.NumGoroutine()-before, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSSEOverHTTP10IsServedByTheHandler: an HTTP/1.0 client cannot take chunks, so the handler
// serves it as before (a body delimited by the connection's close) and the stream still works.
func TestSSEOverHTTP10IsServedByTheHandler(t *testing.T) {
	h := newResumeHub(t, nil)
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{PingInterval: time.Hour})))
	defer srv.Close()
	_, resp := openRawSSE(t, srv, "HTTP/1.0", "")
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 0 {
		t.Fatalf("status %d, transfer coding %v: want 200, none", resp.StatusCode, resp.TransferEncoding)
	}
	rd := bufio.NewReader(resp.Body)
	readUntil(t, rd, "retry: 2000")
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	h.Publish(event("concept-notifications", 0, 5, "alice"))
	readUntil(t, rd, `"id":"concept-notifications:0:5"`)
	go h.Shutdown(t.Context())
	readUntil(t, rd, `"code":1001`)
	if _, err := io.ReadAll(rd); err != nil {
		t.Fatalf("body ended with %v", err)
	}
}

// TestSSERequestWithABodyIsRefused: a stream request carrying a body that never ends (chunked,
// unfinished) gets 400 body-not-allowed at once, and holds no admission slot or registration;
// net/http would otherwise read the body before sending the stream's headers, without bound.
func TestSSERequestWithABodyIsRefused(t *testing.T) {
	adm := admission.New(admission.Config{})
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{Admission: adm, PingInterval: time.Hour})))
	defer srv.Close()
	for _, head := range []string{"Transfer-Encoding: chunked\r\n", "Content-Length: 1000000\r\n"} {
		nc, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n"+head+"\r\n5\r\nhello\r\n") // never finished
		rd := bufio.NewReader(nc)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("%q: %v", head, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":"body-not-allowed"`) ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%q: %d %s %q, want 400 problem+json body-not-allowed", head, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if _, err := rd.ReadByte(); err != io.EOF {
			t.Errorf("%q: after the answer: %v, want the connection closed (EOF)", head, err)
		}
		nc.Close()
		if h.Connections() != 0 || adm.Connections() != 0 {
			t.Errorf("%q: connections %d, admission %d, want 0 and 0", head, h.Connections(), adm.Connections())
		}
	}
}
