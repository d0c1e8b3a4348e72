package socketio

import (
	"bytes"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// serveUpgrade moves a long-polling session to WebSocket (engine.io-protocol v4, "Upgrade"): the
// client opens a WebSocket with the session's sid and sends the probe "2probe"; the server answers
// "3probe" and ends the pending long-poll with a noop "6"; the client sends the upgrade packet "5";
// from then on every packet goes over the WebSocket, starting with those queued for polling, and
// polling requests for the sid are refused.
//
// Until the upgrade packet the session goes on over polling: a GET that comes meanwhile gets the
// packets queued, or a noop at once; POSTs are handled as before. A probe that fails (anything
// but the probe, then anything but the upgrade packet, or no upgrade within upgradeTimeout)
// gets a Close frame (1002 for a wrong packet, 1008 at the timeout) and the session stays on
// polling.
//
// A second WebSocket for the session, while one is probing or after the upgrade (or on a
// WebSocket-only session), is accepted and closed at once with a Close frame 1008 ("A client MUST
// NOT open more than one WebSocket connection per session. Should it happen, the server MUST
// close the WebSocket connection"); the session's own WebSocket is unaffected.
func (s *session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		writeError(w, errSessionUnknown)
		return
	}
	if s.kind != kindPolling || s.probing {
		s.mu.Unlock()
		s.h.protocolError(s, "second_websocket", errors.New("a second WebSocket for the session"))
		s.h.refuseWebSocket(w, r, websocket.ClosePolicyViolation)
		return
	}
	s.probing = true
	s.mu.Unlock()

	ws, err := s.h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.endProbe(nil)
		return
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		endWebSocket(ws, websocket.CloseNormalClosure)
		return
	}
	s.probe = ws
	s.mu.Unlock()
	go s.probeLoop(ws)
}

// refuseWebSocket completes the WebSocket handshake of a connection the protocol refuses once
// open, then closes it with a Close frame with status code (see endWebSocket).
func (h *Handler) refuseWebSocket(w http.ResponseWriter, r *http.Request, code int) {
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // gorilla answered the bad handshake
	}
	endWebSocket(ws, code)
}

// closeProbe sends a Close frame with status code on a WebSocket that gorilla writes to (a
// probe: once upgraded the session writes itself), unless one was sent, and makes its reader
// give up within closeLinger. Safe to call from any goroutine.
func closeProbe(ws *websocket.Conn, code int) {
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(closeLinger))
	ws.NetConn().SetReadDeadline(time.Now().Add(closeLinger))
}

// endWebSocket ends the closing handshake of a WebSocket whose reader is the caller: the Close
// frame with status code (unless one was sent), then input is read and discarded until the
// client's Close or closeLinger, and TCP is closed (RFC 6455 §7.1.1: the server closes first).
func endWebSocket(ws *websocket.Conn, code int) {
	closeProbe(ws, code)
	for {
		if _, _, err := ws.NextReader(); err != nil {
			break
		}
	}
	ws.NetConn().Close()
}

// probeLoop runs on the probing WebSocket's reader goroutine; once the upgrade is complete it
// becomes the session's reader. The probe must complete within upgradeTimeout.
func (s *session) probeLoop(ws *websocket.Conn) {
	nc := ws.NetConn()
	nc.SetReadDeadline(time.Now().Add(upgradeTimeout))
	ws.SetReadLimit(int64(s.maxPayload()))

	p, err := readWSPacket(ws)
	if err != nil || p.typ != eioPing || !bytes.Equal(p.data, []byte("probe")) {
		s.failProbe(ws, err, "expected the probe")
		return
	}
	if err := ws.WriteMessage(websocket.TextMessage, probePong); err != nil {
		s.failProbe(ws, err, "")
		return
	}
	s.mu.Lock()
	s.upgrading = true
	s.wakeGETLocked() // the pending GET ends with a noop
	s.mu.Unlock()

	p, err = readWSPacket(ws)
	if err != nil || p.typ != eioUpgrade {
		s.failProbe(ws, err, "expected the upgrade packet")
		return
	}
	if !s.completeUpgrade(ws) {
		endWebSocket(ws, websocket.CloseNormalClosure) // closeWith sent its own Close already
		return
	}
	s.readLoop(ws)
}

// failProbe abandons a failed probe (the session goes on polling) and ends its WebSocket: a
// Close frame 1008 when the probe timed out, 1002 after an unexpected packet (want says which
// was expected); gorilla answered a client's Close, or sent 1009 or 1002 itself, already.
func (s *session) failProbe(ws *websocket.Conn, err error, want string) {
	s.endProbe(ws)
	code := websocket.CloseProtocolError
	switch {
	case err == nil:
		s.h.protocolError(s, "upgrade", errors.New(want))
	case isTimeout(err):
		s.h.debug("upgrade: timed out", "sid", s.id)
		code = websocket.ClosePolicyViolation
	default:
		s.h.debug("upgrade", "sid", s.id, "err", err)
	}
	endWebSocket(ws, code)
}

// endProbe forgets the probe; the session goes on polling.
func (s *session) endProbe(ws *websocket.Conn) {
	s.mu.Lock()
	s.probing, s.upgrading = false, false
	if s.probe == ws {
		s.probe = nil
	}
	s.mu.Unlock()
}

// completeUpgrade switches the session to ws and writes there what was queued for polling, before
// any later packet (wmu is held across the switch and the flush). It reports false if the session
// closed meanwhile.
func (s *session) completeUpgrade(ws *websocket.Conn) bool {
	s.wmu.Lock()
	defer s.unlockW()
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return false
	}
	s.kind, s.nc, s.probe = kindWebSocket, ws.NetConn(), nil
	s.probing, s.upgrading = false, false
	batch, taken := s.out, s.outTaken
	s.out, s.outTaken = nil, nil
	s.wakeGETLocked()
	s.mu.Unlock()

	s.h.upgraded()
	var err error
	if len(batch) > 0 {
		err = s.writeWSLocked(batch)
	}
	if taken != nil {
		close(taken)
	}
	if err != nil {
		s.close() // the reader then fails on the closed socket
	}
	return true
}
