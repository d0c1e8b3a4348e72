package realtime

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realtime-service/realtime-service/internal/admission"
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
// On HTTP/1.1 the handler writes the response headers through net/http (status 200, chunked
// transfer coding, RFC 9112 §7.1), takes the connection over (http.Hijacker) and returns, as the
// WebSocket handler does: an idle stream then costs one goroutine with a small stack (a reader
// that only waits for the client to close; an SSE client sends nothing after its request, and
// what it sends anyway is discarded), one timer (heartbeats and the token's expiry) and no
// buffers. The stream's events go out as chunks, one per batch; once the last frame is written
// (the disconnect frame) the last chunk ends the body and the connection is closed (half-closed
// first: the client reads to the end). HTTP/1.0, HEAD and HTTP/2 requests (which cannot be taken
// over) are served by the handler itself until the stream ends, as net/http frames them.
//
// A client that stops reading is bounded by WriteTimeout on each write (a heartbeat at the latest,
// once its socket buffers are full) and by the send queue; a dead peer by TCP keepalive (net/http
// enables it on accepted connections).
func NewSSEHandler(h *Hub, cfg EndpointConfig) http.Handler {
	cfg = cfg.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := auth.FromContext(r.Context())
		if !ok {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			// A stream request has no body (WHATWG HTML, "Server-sent events": a GET); one
			// that never ends would hold the connection before its headers go out.
			writeBodyNotAllowed(w)
			return
		}
		ticket, err := admit(cfg.Admission)
		if err != nil {
			writeNodeFull(w, err)
			return
		}
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
		// Register (held) first, then open the stream, then release the hold: every event
		// published once the client sees the stream open reaches it, and a resume's replay,
		// which may read Kafka, does not keep the client waiting for its response headers
		// (Attach itself returns at once, except on a node still waiting for its partitions).
		t := &sseTransport{writeTimeout: cfg.WriteTimeout}
		c, err := h.Attach(r.Context(), ConnOptions{User: claims.UserID, Transport: t, Expires: claims.Expires, Paused: true}, cursor)
		if errors.Is(err, ErrTooManyConnections) {
			release(ticket)
			writeTooManyConnections(w, h.cfg.MaxConnsPerUser)
			return
		}
		if err != nil {
			release(ticket)
			w.Write(sseOpen)
			w.Write(t.CloseFrame(DisconnectShutdown))
			return
		}
		if r.Method == http.MethodGet && r.ProtoMajor == 1 && r.ProtoMinor >= 1 {
			// The status and headers go out now (Hijack flushes them), with the chunked
			// transfer coding, since no Content-Length is set.
			w.WriteHeader(http.StatusOK)
			if nc, brw, err := http.NewResponseController(w).Hijack(); err == nil {
				t.serveConn(c, nc, brw.Reader, ticket, cfg.PingInterval)
				return
			}
		}
		// From here on only the connection's writer touches w (the status, 200, goes with
		// the first write: sseOpen, or a close frame).
		defer release(ticket) // the handler lasts as long as the stream
		if t.open(c, nil, w) {
			c.Resume(nil)
		} else {
			c.Close(DisconnectClientGone) // nothing if it was closed before
		}
		ticker := time.NewTicker(cfg.PingInterval)
		defer ticker.Stop()
		for {
			select {
			case now := <-ticker.C:
				t.tick(c, now)
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

// sseTransport writes SSE blocks either to a connection taken over from net/http (nc: chunked,
// see serveConn) or to the response of a handler that waits for the stream to end (w). Until
// open sets one of them it has nowhere to write (a close at shutdown can come first).
type sseTransport struct {
	writeTimeout time.Duration
	// last is the first byte of the close frame (CloseFrame): on nc the chunk that carries it
	// is followed by the last chunk, which ends the body (RFC 9112 §7.1).
	last atomic.Pointer[byte]

	wmu sync.Mutex // serialises writes: open writes sseOpen, the connection's writer goes on

	mu sync.Mutex // guards the fields below; never held across a write
	// keepalive (nc only) ticks every interval: heartbeats and the token's expiry.
	keepalive *time.Timer
	interval  time.Duration
	nc        net.Conn
	w         http.ResponseWriter
	rc        *http.ResponseController
	// reading: nc's reader goroutine runs and owns closing nc (see serveConn).
	reading bool
	closed  bool
}

// lastChunk ends a chunked body without trailers (RFC 9112 §7.1).
var lastChunk = []byte("0\r\n\r\n")

var crlf = []byte("\r\n")

// chunkBufs holds the buffers chunks are built in, only while one is written; one that grew past
// maxPooledChunk (a batch of large events) is left to the garbage collector.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledChunk = 64 << 10

func (t *sseTransport) Format() Format { return FormatSSE }

// open gives the transport its destination, nc or w, and writes sseOpen there. If the
// connection was closed before (Hub.Shutdown), the close frame follows sseOpen, nc is closed,
// and open reports false; it also reports false when the write fails (the client is gone).
func (t *sseTransport) open(c *Conn, nc net.Conn, w http.ResponseWriter) bool {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.mu.Lock()
	t.nc = nc
	if w != nil {
		t.w, t.rc = w, http.NewResponseController(w)
	}
	closed := t.closed
	t.reading = nc != nil && !closed
	t.mu.Unlock()
	frames := [][]byte{sseOpen}
	if closed {
		if f := t.CloseFrame(c.Reason()); f != nil {
			frames = append(frames, f)
		}
	}
	err := t.writeLocked(frames)
	if closed && nc != nil {
		nc.SetReadDeadline(time.Now().Add(CloseLinger))
		halfClose(nc)
		readToEnd(nc)
		nc.Close()
	}
	return !closed && err == nil
}

// serveConn runs the stream on nc, taken over from net/http once the response headers went out:
// it opens the stream, starts the keepalive timer and the reader, and releases the connection's
// hold. br holds what the client sent after its request, discarded. ticket is released once nc
// is closed.
func (t *sseTransport) serveConn(c *Conn, nc net.Conn, br *bufio.Reader, ticket *admission.Ticket, interval time.Duration) {
	br.Discard(br.Buffered())
	if !t.open(c, nc, nil) {
		t.mu.Lock()
		reading := t.reading
		t.mu.Unlock()
		if !reading { // closed before it opened: open closed nc
			release(ticket)
			return
		}
		c.Close(DisconnectClientGone) // the client is gone: the reader cleans up
	}
	t.mu.Lock()
	if !t.closed {
		t.interval = interval
		t.keepalive = time.AfterFunc(interval, func() { t.tick(c, time.Now()) })
	}
	t.mu.Unlock()
	go t.readLoop(c, nc, ticket)
	c.Resume(nil)
}

// tick is the keepalive: it closes the connection if its token has expired, else queues a
// cursor frame (when events went out since the last one) and a heartbeat, and on nc rearms the
// timer.
func (t *sseTransport) tick(c *Conn, now time.Time) {
	if c.ExpireIfDue(now) {
		return
	}
	c.SendCursor()
	if c.Send(heartbeat) {
		t.mu.Lock()
		if t.keepalive != nil && !t.closed {
			t.keepalive.Reset(t.interval)
		}
		t.mu.Unlock()
	}
}

// readLoop waits for the client to close nc, discarding what it sends, then closes the
// connection (nothing if the server closed it first), waits until its writer is done, closes nc
// and releases ticket. Once the server closes the stream, nc is half-closed with a read
// deadline of CloseLinger (Close), so this waits for the client's end of stream at most that
// long: closing with input unread would reset the connection (RFC 1122 §4.2.2.13) and could
// destroy the final frames before the client reads them.
func (t *sseTransport) readLoop(c *Conn, nc net.Conn, ticket *admission.Ticket) {
	readToEnd(nc)
	c.Close(DisconnectClientGone)
	<-c.Done() // the writer is done: Close has run
	nc.Close()
	release(ticket)
}

// readToEnd reads and discards nc's input until end of stream, an error or the read deadline.
func readToEnd(nc net.Conn) {
	var buf [64]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			return
		}
	}
}

func (t *sseTransport) WriteFrames(frames [][]byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.writeLocked(frames)
}

// writeLocked writes frames to nc as one chunk (one writev), followed by the last chunk when
// the close frame is among them, or to w; t.wmu must be held.
func (t *sseTransport) writeLocked(frames [][]byte) error {
	t.mu.Lock()
	nc, w, rc := t.nc, t.w, t.rc
	t.mu.Unlock()
	switch {
	case nc != nil:
		n := 0
		for _, f := range frames {
			n += len(f)
		}
		if n == 0 {
			return nil // a chunk of size zero would end the body
		}
		// One Write of a pooled buffer: writev would leave every connection holding the
		// array of its largest batch (internal/poll keeps it per socket), an idle one too.
		bp := chunkBufs.Get().(*[]byte)
		b := strconv.AppendInt((*bp)[:0], int64(n), 16)
		b = append(b, crlf...)
		for _, f := range frames {
			b = append(b, f...)
		}
		b = append(b, crlf...)
		if l := frames[len(frames)-1]; len(l) > 0 && &l[0] == t.last.Load() {
			b = append(b, lastChunk...)
		}
		err := nc.SetWriteDeadline(time.Now().Add(t.writeTimeout))
		if err == nil {
			_, err = nc.Write(b)
		}
		if cap(b) <= maxPooledChunk {
			*bp = b
			chunkBufs.Put(bp)
		}
		return err
	case w != nil:
		if err := rc.SetWriteDeadline(time.Now().Add(t.writeTimeout)); err != nil {
			return err
		}
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return err
			}
		}
		return rc.Flush()
	default:
		return errNotOpen
	}
}

func (t *sseTransport) CloseFrame(d Disconnect) []byte {
	if d == DisconnectClientGone {
		return nil
	}
	f := Control{Event: "disconnect", Data: map[string]any{
		"code": d.Code, "reason": d.Reason, "reconnect": d.Reconnect,
	}}.Frame(FormatSSE)
	t.last.Store(&f[0])
	return f
}

// Close makes any blocked write return at once. On nc it stops the keepalive and half-closes
// the connection (the client reads the final frames, then end of stream) with a read deadline
// of CloseLinger: the reader then closes it. With w the handler then returns and net/http ends
// the stream.
func (t *sseTransport) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	if t.keepalive != nil {
		t.keepalive.Stop()
	}
	switch {
	case t.reading:
		t.nc.SetWriteDeadline(time.Now())
		t.nc.SetReadDeadline(time.Now().Add(CloseLinger))
		halfClose(t.nc)
	case t.rc != nil:
		t.rc.SetWriteDeadline(time.Now())
	}
}
