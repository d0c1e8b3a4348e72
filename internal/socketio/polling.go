package socketio

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// Content types of long-polling responses, as the reference server sends them.
const (
	contentTypePayload = "text/plain; charset=UTF-8"
	contentTypeOK      = "text/html"
)

// servePollingHandshake opens a long-polling session (engine.io-protocol v4, "Handshake"): the
// response is the open packet, announcing the WebSocket upgrade.
func (h *Handler) servePollingHandshake(w http.ResponseWriter, s *session) {
	if !h.addSession(s) {
		s.release()
		writeError(w, errShuttingDown)
		return
	}
	writePayload(w, h.cfg.WriteTimeout, [][]byte{h.openPacket(s.id, true)})
}

// poll answers a long-polling GET (engine.io-protocol v4, "Receiving data"): it waits until
// packets are queued, then sends them all as one payload. During an upgrade an empty wait ends
// with a noop packet (engine.io-protocol v4, "Upgrade"); a session the server closes answers a
// close packet, one the client closed with its close packet a noop (what engine.io answers, and
// the protocol's test suite expects). A second concurrent GET breaks the protocol: it gets HTTP
// 400 and the session is closed ("the server MUST return an HTTP 400 error status and close the
// session"). A pending GET that the client aborts closes the session, as engine.io does ("poll
// connection closed prematurely"): the client is gone, or broke the one-GET rule.
func (s *session) poll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.kind != kindPolling {
		s.mu.Unlock()
		writeError(w, errBadRequest) // upgraded: polling requests are refused
		return
	}
	if s.getting {
		s.mu.Unlock()
		s.h.protocolError(s, "duplicate_poll", errors.New("overlapping GET"))
		s.closeWith(websocket.ClosePolicyViolation) // before the answer: the client may retry at once
		writeError(w, errBadRequest)
		return
	}
	s.getting = true
	for len(s.out) == 0 && !s.closed.Load() && !s.upgrading && s.kind == kindPolling {
		wake := make(chan struct{})
		s.getWake = wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-r.Context().Done():
			s.mu.Lock()
			s.getting = false
			if s.getWake == wake {
				s.getWake = nil
			}
			s.mu.Unlock()
			s.h.debug("long-poll GET aborted by the client", "sid", s.id)
			s.close()
			return
		}
		s.mu.Lock()
	}
	batch, taken := s.out, s.outTaken
	s.out, s.outTaken = nil, nil
	s.getting = false
	closed, byClient := s.closed.Load(), s.clientClosed
	s.mu.Unlock()
	if taken != nil {
		close(taken)
	}
	switch {
	case closed && byClient:
		batch = [][]byte{noopPacket}
	case closed:
		batch = append(batch, closePacket)
	case len(batch) == 0:
		batch = [][]byte{noopPacket}
	}
	writePayload(w, s.h.cfg.WriteTimeout, batch)
}

// writePayload writes packets as one long-polling payload (joined by the record separator),
// within timeout from now (whatever the server's WriteTimeout: a long-poll may wait longer).
func writePayload(w http.ResponseWriter, timeout time.Duration, packets [][]byte) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout))
	hdr := w.Header()
	hdr.Set("Content-Type", contentTypePayload)
	hdr.Set("Content-Length", strconv.Itoa(payloadLen(packets)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	for i, p := range packets {
		if i > 0 {
			w.Write([]byte{recordSeparator})
		}
		if _, err := w.Write(p); err != nil {
			return
		}
	}
}

// post reads a long-polling POST (engine.io-protocol v4, "Sending data"): a payload of packets
// split on the record separator, handled in order, answered "ok". A v4 payload is text (binary
// messages are base64): a body sent as application/octet-stream gets HTTP 400 and closes the
// session, as engine.io does ("invalid content"). A second concurrent POST gets
// HTTP 400 and closes the session; a body over the limit (PreAuthMaxPayload before the CONNECT,
// MaxPayload after) gets HTTP 413, of which no more than the limit is read; a malformed one HTTP
// 400, both closing the session. The body must arrive within WriteTimeout, and before the
// CONNECT within the auth timeout too: a body that trickles gets HTTP 400 at that deadline.
func (s *session) post(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.kind != kindPolling {
		s.mu.Unlock()
		writeError(w, errBadRequest)
		return
	}
	if s.posting {
		s.mu.Unlock()
		s.h.protocolError(s, "duplicate_post", errors.New("overlapping POST"))
		s.closeWith(websocket.ClosePolicyViolation) // before the answer: the client may retry at once
		writeError(w, errBadRequest)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	if r.Header.Get("Content-Type") == "application/octet-stream" {
		s.h.protocolError(s, "engineio", errors.New("binary POST body (v4 payloads are text)"))
		s.closeWith(websocket.CloseProtocolError) // before the answer: the client may retry at once
		writeError(w, errBadRequest)
		return
	}

	limit := s.maxPayload()
	if r.ContentLength > int64(limit) {
		s.tooLarge(w)
		return
	}
	deadline := time.Now().Add(s.h.cfg.WriteTimeout)
	if !s.authed.Load() && s.authDeadline.Before(deadline) {
		deadline = s.authDeadline
	}
	http.NewResponseController(w).SetReadDeadline(deadline)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.tooLarge(w)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.h.protocolError(s, "read_timeout", errors.New("POST body not received in time"))
		s.closeWith(websocket.ClosePolicyViolation) // before the answer: the client may retry at once
		writeError(w, errBadRequest)
		return
	case err != nil:
		s.h.debug("POST read", "sid", s.id, "err", err)
		s.close() // before the answer: the client may retry at once
		writeError(w, errBadRequest)
		return
	}
	packets, err := decodeEIOPayload(body)
	if err != nil {
		s.h.protocolError(s, "engineio", err)
		s.closeWith(websocket.CloseProtocolError) // before the answer: the client may retry at once
		writeError(w, errBadRequest)
		return
	}
	for _, p := range packets {
		if !s.onPacket(p) {
			break
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentTypeOK)
	hdr.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "ok")
}

// tooLarge refuses a POST body over the limit: HTTP 413, the session closed.
func (s *session) tooLarge(w http.ResponseWriter) {
	s.h.protocolError(s, "too_large", errors.New("POST body over the message size limit"))
	s.closeWith(websocket.CloseMessageTooBig) // before the answer: the client may retry at once
	writeError(w, errTooLarge)
}
