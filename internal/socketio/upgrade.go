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
// polling requests for the sid are refused. A session that is already upgraded or upgrading
// refuses the request with 400 "Bad request" (only one WebSocket per session).
func (s *session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.kind != kindPolling || s.probing || s.closed.Load() {
		s.mu.Unlock()
		writeError(w, errBadRequest)
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
		ws.NetConn().Close()
		return
	}
	s.probe = ws
	s.mu.Unlock()
	go s.probeLoop(ws)
}

// probeLoop runs on the probing WebSocket's reader goroutine; once the upgrade is complete it
// becomes the session's reader. The probe must complete within upgradeTimeout.
func (s *session) probeLoop(ws *websocket.Conn) {
	nc := ws.NetConn()
	nc.SetReadDeadline(time.Now().Add(upgradeTimeout))
	ws.SetReadLimit(int64(s.maxPayload()))

	p, err := readWSPacket(ws)
	if err != nil || p.typ != eioPing || !bytes.Equal(p.data, []byte("probe")) {
		s.h.debug("upgrade: no probe", "sid", s.id)
		s.endProbe(ws)
		return
	}
	nc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout))
	if _, err := nc.Write(wsFrame(opText, probePong)); err != nil {
		s.endProbe(ws)
		return
	}
	s.mu.Lock()
	s.upgrading = true
	s.wakeGETLocked() // the pending GET ends with a noop
	s.mu.Unlock()

	p, err = readWSPacket(ws)
	if err != nil || p.typ != eioUpgrade {
		if err == nil {
			err = errors.New("expected the upgrade packet")
		}
		s.h.debug("upgrade", "sid", s.id, "err", err)
		s.endProbe(ws)
		return
	}
	if !s.completeUpgrade(ws) {
		nc.Close()
		return
	}
	s.readLoop(ws)
}

// endProbe abandons a failed probe; the session goes on polling.
func (s *session) endProbe(ws *websocket.Conn) {
	s.mu.Lock()
	s.probing, s.upgrading = false, false
	if s.probe == ws {
		s.probe = nil
	}
	s.mu.Unlock()
	if ws != nil {
		ws.NetConn().Close()
	}
}

// completeUpgrade switches the session to ws and writes there what was queued for polling, before
// any later packet (wmu is held across the switch and the flush). It reports false if the session
// closed meanwhile.
func (s *session) completeUpgrade(ws *websocket.Conn) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
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
