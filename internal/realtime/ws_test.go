package realtime

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/realtime-service/realtime-service/internal/admission"
)

// TestWebSocketOversizeMessageGetsA1009CloseFrame: a client that sends 1 MB on a fresh /v1/ws
// reads a close frame with 1009, and its write is not reset: the server drains what the client
// sent before it closes the socket, since closing with unread input makes the kernel answer with
// a reset, which fails the client's write (browsers then report 1006, abnormal closure) and can
// destroy the close frame before the client reads it. Linux keeps what was received readable
// after a reset, so the failed write is what shows the reset here.
func TestWebSocketOversizeMessageGetsA1009CloseFrame(t *testing.T) {
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{})))
	defer srv.Close()
	for i := range 5 { // a race between the reset and the client's read: try it several times
		ws := dialWS(t, srv, "")
		ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), 1<<20)); err != nil {
			t.Fatalf("attempt %d: write: %v, want the server to read (and discard) it all", i, err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("attempt %d: read %v, want a close frame with 1009", i, err)
		}
		ws.Close()
	}
	waitFor(t, "every connection closed", func() bool { return h.Connections() == 0 })
}

// TestWebSocketClosingClientCannotHoldTheSocket: once the server closed a connection, a client
// that ignores the close frame and keeps sending pings no longer extends the read deadline: the
// socket is closed within CloseLinger and its admission slot released.
func TestWebSocketClosingClientCannotHoldTheSocket(t *testing.T) {
	adm := admission.New(admission.Config{})
	h := NewHub(HubConfig{})
	srv := httptest.NewServer(asUser("alice", NewWebSocketHandler(h, EndpointConfig{Admission: adm})))
	defer srv.Close()
	ws := dialWS(t, srv, "") // never reads
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
				return // the server closed the socket
			}
		}
	}()
	defer func() { close(stop); <-pinged }()
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket closed despite the pings", func() bool { return adm.Connections() == 0 })
}

// TestSSEStalledClientIsBoundedByTheWriteTimeout: a client that stops reading its stream holds
// it no longer than a write can block (REALTIME_WRITE_TIMEOUT), even when its queue has room.
func TestSSEStalledClientIsBoundedByTheWriteTimeout(t *testing.T) {
	adm := admission.New(admission.Config{})
	h := NewHub(HubConfig{SendQueueBytes: 1 << 30}) // the queue never overflows: the write timeout acts
	srv := httptest.NewServer(asUser("alice", NewSSEHandler(h, EndpointConfig{Admission: adm, WriteTimeout: 50 * time.Millisecond})))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() }) // never read before
	waitFor(t, "registration", func() bool { return h.Connections() == 1 })
	big := event("concept-notifications", 0, 0, "alice")
	big.Data = []byte(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	for i := range 512 { // 32 MB: more than the socket buffers of both ends hold
		big.Offset = int64(i)
		h.Publish(big)
		if h.Connections() == 0 {
			break
		}
	}
	waitFor(t, "the stalled stream closed", func() bool { return h.Connections() == 0 && adm.Connections() == 0 })
	if n := h.m.disconnectCount("slow"); n != 0 {
		t.Errorf("closed as slow (%d): the queue overflowed, so the write timeout was not what acted", n)
	}
	var d dto.Metric
	h.m.writeTimeouts.Write(&d)
	if n := d.GetCounter().GetValue(); n != 1 {
		t.Errorf("realtime_write_timeouts_total = %v, want 1", n)
	}
}
