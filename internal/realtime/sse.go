package realtime

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
)

// heartbeat is an SSE comment line: it keeps proxies from timing the stream out and is ignored
// by EventSource (WHATWG HTML, "Server-sent events", lines starting with a colon).
var heartbeat = []byte(": ping\n\n")

// sseOpen is written when the stream opens: it sets the client's reconnection delay to 2 s and
// flushes the headers through any proxy at once.
var sseOpen = []byte("retry: 2000\n: connected\n\n")

// NewSSEHandler serves GET /v1/events as a Server-Sent Events stream (text/event-stream). The
// request must already be authenticated (auth.WithClaims) and its origin checked by the HTTP
// layer. A client resumes with the Last-Event-ID header, which EventSource sends by itself after
// a reconnect, or with ?lastEventId= (for clients that cannot set headers); either holds a resume
// token, "<cursor>" or "<cursor>~<id>,..." (docs/design.md, "Cursor"). Each event is a
// `data: <JSON frame>` block without an id line; cursor frames carry `id: <cursor>`, so the
// browser's Last-Event-ID is always the last cursor; heartbeat comments every PingInterval; a
// final "disconnect" frame (no id line) says why the server ends the stream.
//
// The client sends nothing after its request, so there is no reader to bound; a client that
// stops reading is bounded by WriteTimeout on each write (a heartbeat at the latest, once its
// socket buffers are full) and by the send queue; a dead peer by TCP keepalive (net/http enables
// it on accepted connections).
func NewSSEHandler(h *Hub, cfg EndpointConfig) http.Handler {
	cfg = cfg.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := auth.FromContext(r.Context())
		if !ok {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		ticket, err := admit(cfg.Admission)
		if err != nil {
			writeNodeFull(w, err)
			return
		}
		defer release(ticket) // the handler lasts as long as the stream
		cursor := r.Header.Get("Last-Event-ID")
		if cursor == "" {
			cursor = r.URL.Query().Get("lastEventId")
		}
		hdr := w.Header()
		hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
		hdr.Set("Cache-Control", "no-cache, no-store, no-transform") // no caching, no proxy rewriting
		hdr.Set("X-Accel-Buffering", "no")                           // nginx: do not buffer
		if r.ProtoMajor == 1 {
			hdr.Set("Connection", "keep-alive")
		}
		// The status (200) goes with the first write, sseOpen, or a close frame.
		t := &sseTransport{w: w, rc: http.NewResponseController(w), writeTimeout: cfg.WriteTimeout}
		// Register (held) first, then open the stream, then release the hold: every event
		// published once the client sees the stream open reaches it, and a resume's replay,
		// which may read Kafka, does not keep the client waiting for its response headers
		// (Attach itself returns at once, except on a node still waiting for its partitions).
		// From here on only the connection's writer touches w.
		c, err := h.Attach(r.Context(), ConnOptions{User: claims.UserID, Transport: t, Expires: claims.Expires, Paused: true}, cursor)
		if errors.Is(err, ErrTooManyConnections) {
			writeTooManyConnections(w, h.cfg.MaxConnsPerUser)
			return
		}
		if err != nil {
			t.WriteFrames([][]byte{sseOpen, t.CloseFrame(DisconnectShutdown)})
			return
		}
		if err := t.WriteFrames([][]byte{sseOpen}); err != nil {
			c.Close(DisconnectClientGone)
		}
		c.Resume(nil)
		ticker := time.NewTicker(cfg.PingInterval)
		defer ticker.Stop()
		for {
			select {
			case now := <-ticker.C:
				if !c.ExpireIfDue(now) {
					c.SendCursor()
					c.Send(heartbeat)
				}
			case <-c.Done():
				return
			case <-r.Context().Done():
				c.Close(DisconnectClientGone)
				<-c.Done() // the writer must be done with w before the handler returns
				return
			}
		}
	})
}

// sseTransport writes SSE blocks to the response of a handler that waits for the connection to
// end, so writing from the connection's writer goroutine is safe.
type sseTransport struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	closeOnce    sync.Once
	mu           sync.Mutex // serialises writes: the handler opens the stream, the writer goes on
}

func (t *sseTransport) Format() Format { return FormatSSE }

func (t *sseTransport) WriteFrames(frames [][]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.rc.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
		return err
	}
	for _, f := range frames {
		if _, err := t.w.Write(f); err != nil {
			return err
		}
	}
	return t.rc.Flush()
}

func (t *sseTransport) CloseFrame(d Disconnect) []byte {
	if d == DisconnectClientGone {
		return nil
	}
	return Control{Event: "disconnect", Data: map[string]any{
		"code": d.Code, "reason": d.Reason, "reconnect": d.Reconnect,
	}}.Frame(FormatSSE)
}

// Close makes any blocked write return at once; the handler then returns and net/http closes
// the stream.
func (t *sseTransport) Close() {
	t.closeOnce.Do(func() { t.rc.SetWriteDeadline(time.Now()) })
}
