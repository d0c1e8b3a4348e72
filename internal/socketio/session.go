package socketio

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// transportKind is the transport a session currently uses.
type transportKind uint8

const (
	kindPolling transportKind = iota
	kindWebSocket
)

func (k transportKind) String() string {
	if k == kindWebSocket {
		return "websocket"
	}
	return "polling"
}

// Errors the write path returns to realtime.Conn; both mean the connection is gone.
var (
	errSessionClosed = errors.New("socketio: session closed")
	errPollTimeout   = errors.New("socketio: no long-polling GET took the packets within the write timeout")
)

// session is one Engine.IO session (engine.io-protocol v4) and, once the client has connected
// to the default namespace, the realtime.Transport of its hub connection.
//
// Every packet to the client goes through one of two paths, both ordered and serialized:
// WriteFrames (the hub Conn's writer goroutine: events, and pings and acks queued with
// Conn.Send) and writeDirect (handshake replies, and pings before the Socket.IO CONNECT). Over
// WebSocket both take wmu around one writev; over long-polling both append to out, which the next
// GET takes whole.
//
// Before its client authenticates (a verified CONNECT to "/") a session holds an admission
// ticket's pending slot, lives at most AuthTimeout and reads at most PreAuthMaxPayload bytes per
// message; after, MaxPayload.
//
// An idle WebSocket session holds this struct, one timer (the heartbeat; the connect timeout is
// dropped at CONNECT), the gorilla connection (512-byte read buffer, no write buffer) and one
// goroutine, its reader: about 9 KB in all (see TestIdleWebSocketMemory).
type session struct {
	h  *Handler
	id string
	// ticket is the session's admission (nil without Config.Admission): released when it closes.
	ticket *admission.Ticket
	// authDeadline is when a session whose client has not authenticated is closed.
	authDeadline time.Time

	closed atomic.Bool
	authed atomic.Bool // the client's token was verified (a CONNECT to "/")
	// plain: events go without the trailing {"id"} argument, which follows in a `cursor` packet
	// (FormatSocketIOPlain); set by connect before the hub connection exists.
	plain atomic.Bool
	conn  atomic.Pointer[realtime.Conn] // the hub connection, once connected to "/"
	// hubCode is the WebSocket close code for a close the hub starts (CloseFrame records it).
	hubCode atomic.Int32

	mu        sync.Mutex
	kind      transportKind
	probing   bool // a WebSocket upgrade is being probed
	upgrading bool // the probe was answered: long-polls get a noop until the upgrade packet
	// long-polling
	out      [][]byte      // packets waiting for the next GET
	outTaken chan struct{} // closed once out is taken (or the session closes); nil until a writer waits
	getWake  chan struct{} // closed to wake the pending GET; nil when no GET waits
	getting  bool          // a GET is pending
	posting  bool          // a POST is being read
	// clientClosed: the client sent the close packet; a pending GET gets a noop, not a close.
	clientClosed bool
	// WebSocket: nc is the session's connection after the handshake or the upgrade (its reader
	// goroutine holds the gorilla side); probe is the one being probed.
	nc net.Conn
	// br is the buffer gorilla reads a WebSocket-only session's nc through (readerOwner):
	// the reader waits on it, in a shallow call, when it holds nothing (readPackets).
	br    *bufio.Reader
	probe *websocket.Conn
	// heartbeat: one timer alternates between the ping interval and the pong timeout.
	timer        *time.Timer
	awaitingPong bool
	// Socket.IO, before the CONNECT: connectTimer closes a session that never connects; token
	// is the handshake request's token (access_token query parameter or Authorization header).
	connectTimer *time.Timer
	token        string
	// connecting: a verified CONNECT is attaching to the hub (a replay may take a while);
	// authExpired: AuthTimeout passed meanwhile, so a CONNECT that fails to attach closes.
	connecting  bool
	authExpired bool
	// rmu serializes the handling of client messages (a POST and the upgraded WebSocket could
	// overlap); bin is the binary packet whose attachments are being received.
	rmu sync.Mutex
	bin *pendingBinary

	wmu       sync.Mutex // serializes writes to nc
	closeSent bool       // a WebSocket Close frame was written to nc: nothing may follow it (wmu)
	wsBroken  bool       // a write to nc failed, maybe mid-frame: no Close frame can follow (wmu)
	// closeCode is the status of the Close frame the session owes nc once closed (0 before);
	// whoever holds wmu then writes it (see closeWebSocket); closeDone once it was dealt with.
	closeCode atomic.Int32
	closeDone atomic.Bool
}

// start arms the heartbeat and the connect timeout, once the session is registered.
func (s *session) start() {
	s.mu.Lock()
	s.timer = time.AfterFunc(s.h.cfg.PingInterval, s.heartbeat)
	s.connectTimer = time.AfterFunc(time.Until(s.authDeadline), s.connectTimeout)
	s.mu.Unlock()
}

// heartbeat runs when the timer fires: it sends a ping and waits PongTimeout for the pong, or,
// when the pong is overdue, closes the session (engine.io-protocol v4, "Heartbeat").
func (s *session) heartbeat() {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return
	}
	if s.awaitingPong {
		s.mu.Unlock()
		s.h.debug("ping timeout", "sid", s.id)
		s.close()
		return
	}
	s.awaitingPong = true
	s.timer.Reset(s.h.cfg.PongTimeout)
	s.mu.Unlock()
	if c := s.conn.Load(); c != nil {
		if c.ExpireIfDue(time.Now()) {
			return // closed with the token-expired reason
		}
		c.SendCursor()
	}
	s.sendControl(pingPacket)
}

// pong records the client's heartbeat answer and schedules the next ping.
func (s *session) pong() {
	s.mu.Lock()
	if s.awaitingPong && !s.closed.Load() {
		s.awaitingPong = false
		s.timer.Reset(s.h.cfg.PingInterval)
	}
	s.mu.Unlock()
}

// connectTimeout closes a session whose client has not authenticated within AuthTimeout. A
// CONNECT being attached (its token verified) is left to finish: it closes the session if it
// fails.
func (s *session) connectTimeout() {
	s.mu.Lock()
	if s.connecting {
		s.authExpired = true
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if s.conn.Load() == nil {
		s.authTimedOut()
	}
}

// authTimedOut closes the session for want of a CONNECT, counted once.
func (s *session) authTimedOut() {
	if s.closeWith(websocket.ClosePolicyViolation) {
		s.h.m.protocolErrors.WithLabelValues("auth_timeout").Inc()
		s.h.debug("no Socket.IO CONNECT within the auth timeout", "sid", s.id)
	}
}

// maxPayload is the largest message the client may send now.
func (s *session) maxPayload() int {
	if s.authed.Load() {
		return s.h.cfg.MaxPayload
	}
	return s.h.cfg.PreAuthMaxPayload
}

// sendControl sends an engine-level packet: through the hub Conn's queue once it exists (so
// that it is ordered and bounded with the events), directly before.
func (s *session) sendControl(p []byte) {
	if c := s.conn.Load(); c != nil {
		c.Send(p)
		return
	}
	s.writeDirect(p)
}

// maxDirectBacklog bounds the packets writeDirect queues for long-polling GETs that do not come
// (answers to a client that keeps sending CONNECTs and never polls); beyond it the session closes.
// Once connected, packets go through the hub Conn's bounded queue instead.
const maxDirectBacklog = 64

// writeDirect writes packets without the hub Conn: over WebSocket at once, over long-polling
// into the buffer of the next GET, without waiting for it. A failed write, or a backlog of
// maxDirectBacklog unread packets, closes the session; it reports false if the session is closed.
func (s *session) writeDirect(packets ...[]byte) bool {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return false
	}
	if s.kind == kindPolling {
		if len(s.out) >= maxDirectBacklog {
			s.mu.Unlock()
			s.h.protocolError(s, "unread", errors.New("long-polling client sends but does not read"))
			s.closeWith(websocket.ClosePolicyViolation)
			return false
		}
		s.out = append(s.out, packets...)
		s.wakeGETLocked()
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()
	if err := s.writeWS(packets); err != nil {
		s.close()
		return false
	}
	return true
}

// Format implements realtime.Transport: event frames are Socket.IO EVENT packets in Engine.IO
// message packets, `42["<event>",<data>,{"id":"<id>"}]`, or without the trailing argument (each
// event then followed by `42["cursor",{"id":"<id>"}]`) when the client turned it off (see
// connect); shared by every Socket.IO connection of that format.
func (s *session) Format() realtime.Format {
	if s.plain.Load() {
		return realtime.FormatSocketIOPlain
	}
	return realtime.FormatSocketIO
}

// WriteFrames implements realtime.Transport. Over WebSocket each frame becomes one text
// message, the whole batch one writev bounded by WriteTimeout. Over long-polling the frames join
// the next GET's payload and WriteFrames returns once a GET has taken them (or the session
// upgraded and wrote them over WebSocket); a client that stops polling makes it fail after
// WriteTimeout (errPollTimeout), so the Conn's bounded queue fills meanwhile and a client that
// stopped reading is closed as slow. errSessionClosed once the session is closed.
//
// A batch that ends with the close packet (see CloseFrame) after other frames is written in two
// steps, the close packet once the frames before it are taken: over long-polling they then come
// in two payloads. socket.io-client handles a payload's close packet at once but its messages a
// tick later, when the socket is disconnected already, so a final cursor packet sharing the
// close's payload would not become its recovery offset (docs/socketio-conformance.md, "The
// cursor"). engine.io likewise drains its write buffer before it sends the close packet.
func (s *session) WriteFrames(frames [][]byte) error {
	if n := len(frames); n > 1 && bytes.Equal(frames[n-1], closePacket) {
		if err := s.writeFrames(frames[:n-1]); err != nil {
			return err
		}
		frames = frames[n-1:]
	}
	return s.writeFrames(frames)
}

func (s *session) writeFrames(frames [][]byte) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return errSessionClosed
	}
	if s.kind == kindWebSocket {
		s.mu.Unlock()
		return s.writeWS(frames)
	}
	s.out = append(s.out, frames...)
	if s.outTaken == nil {
		s.outTaken = make(chan struct{})
	}
	taken := s.outTaken
	s.wakeGETLocked()
	s.mu.Unlock()

	t := time.NewTimer(s.h.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case <-taken:
		if s.closed.Load() {
			return errSessionClosed
		}
		return nil
	case <-t.C:
		return errPollTimeout
	}
}

// CloseFrame implements realtime.Transport: the Engine.IO close packet "1", after which
// socket.io-client reconnects by itself (over WebSocket the closed connection does the same).
// Not a Socket.IO DISCONNECT: after a server-side namespace disconnect socket.io-client does not
// reconnect. Nil when the client is gone.
func (s *session) CloseFrame(d realtime.Disconnect) []byte {
	if d == realtime.DisconnectClientGone {
		return nil
	}
	if d == realtime.DisconnectShutdown {
		s.hubCode.Store(websocket.CloseGoingAway)
	}
	return closePacket
}

// Close implements realtime.Transport: it closes the session (idempotent) and makes a blocked
// WriteFrames return. Over WebSocket the Close frame has status 1000, or 1001 when the hub shuts
// down.
func (s *session) Close() {
	code := int(s.hubCode.Load())
	if code == 0 {
		code = websocket.CloseNormalClosure
	}
	s.closeWith(code)
}

// close ends the session with WebSocket status 1000 (see closeWith).
func (s *session) close() { s.closeWith(websocket.CloseNormalClosure) }

// closeWith ends the session: it leaves the handler's table (later requests with its sid get
// "Session ID unknown"), a pending GET is answered with a close packet (a noop when the client
// sent the close: see Handler.owesNoop), blocked writers return, a probing WebSocket gets a
// Close frame with status code,
// the hub connection, if any, is closed with DisconnectClientGone, and the admission ticket is
// released. A WebSocket gets a Close frame with status code (RFC 6455 §5.5.1, §7.4.1) and is
// closed once the client answers it, or after closeLinger (see closeWebSocket). Idempotent: it
// reports whether this call closed the session.
func (s *session) closeWith(code int) bool {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return false
	}
	wake, taken := s.getWake, s.outTaken
	s.getWake, s.outTaken = nil, nil
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.connectTimer != nil {
		s.connectTimer.Stop()
	}
	s.token = ""
	nc, probe, kind := s.nc, s.probe, s.kind
	// A long-polling client that closes sends its close packet while its GET is pending, but
	// that GET may reach us after the POST: it is owed the noop all the same.
	noopOwed := s.clientClosed && kind == kindPolling && !s.getting
	s.mu.Unlock()

	if noopOwed {
		s.h.owesNoop(s.id) // before the sid leaves the table: no GET may find neither
	}
	s.h.removeSession(s, kind) // first: a client told of the close must find the sid unknown
	if wake != nil {
		close(wake)
	}
	if taken != nil {
		close(taken)
	}
	if nc != nil {
		s.closeWebSocket(nc, code)
	}
	if probe != nil {
		closeProbe(probe, code)
	}
	if c := s.conn.Load(); c != nil {
		c.Close(realtime.DisconnectClientGone)
	}
	s.release()
	return true
}

// release gives the session's admission slot back (once; also for a session that never
// registered).
func (s *session) release() {
	if s.ticket != nil {
		s.ticket.Release()
	}
}

// closeWebSocket starts the closing handshake (RFC 6455 §7.1.2): it writes a Close frame with
// status code unless one was written already (gorilla's 1009 or 1002, or the echo of the
// client's Close), and closes the TCP connection after closeLinger at the latest. Meanwhile
// the session's reader waits for the client's Close, discarding input, and closes it at once
// when it comes (see readLoop). A write in progress keeps wmu: its deadline is brought forward
// to closeLinger and its writer sends the Close when done (see unlockW). A write that failed
// may have cut a frame, after which no Close frame can be parsed: TCP is closed at once then.
func (s *session) closeWebSocket(nc net.Conn, code int) {
	s.closeCode.Store(int32(code))
	if !s.wmu.TryLock() {
		nc.SetWriteDeadline(time.Now().Add(closeLinger))
		return // the holder finds closeCode once it unlocks (stored before this TryLock failed)
	}
	s.sendCloseLocked()
	s.wmu.Unlock()
}

// sendCloseLocked ends nc once closeCode is set: the Close frame (unless one was sent), then
// TCP after closeLinger; at once if a write failed. wmu is held; later calls do nothing.
func (s *session) sendCloseLocked() {
	if s.closeDone.Swap(true) {
		return
	}
	nc := s.nc
	if s.wsBroken {
		nc.Close()
		return
	}
	if !s.closeSent {
		s.closeSent = true
		nc.SetWriteDeadline(time.Now().Add(closeLinger))
		if _, err := nc.Write(wsFrame(opClose, websocket.FormatCloseMessage(int(s.closeCode.Load()), ""))); err != nil {
			nc.Close()
			return
		}
	}
	time.AfterFunc(closeLinger, func() { nc.Close() })
}

// unlockW releases wmu. If the session closed while wmu was held (closeWebSocket could not
// take it), the Close frame is written first; the check after Unlock covers a close that came
// between the check and the Unlock.
func (s *session) unlockW() {
	for {
		if s.closeCode.Load() != 0 {
			s.sendCloseLocked()
		}
		s.wmu.Unlock()
		if s.closeCode.Load() == 0 || s.closeDone.Load() || !s.wmu.TryLock() {
			return
		}
	}
}

// wakeGETLocked wakes the pending GET, if any; s.mu is held.
func (s *session) wakeGETLocked() {
	if s.getWake != nil {
		close(s.getWake)
		s.getWake = nil
	}
}

// onPacket handles one packet from the client, from either transport, and reports whether the
// session is still open. Pings from the client break the v4 heartbeat direction and upgrade
// packets belong to the probing WebSocket only: both close the session, as malformed input does.
// Open and noop packets are ignored (engine.io does the same).
func (s *session) onPacket(p eioPacket) bool {
	switch p.typ {
	case eioClose:
		s.mu.Lock()
		s.clientClosed = true
		s.mu.Unlock()
		s.close()
		return false
	case eioPong:
		s.pong()
	case eioMessage:
		if err := s.onMessage(p); err != nil {
			s.h.protocolError(s, "socketio", err)
			s.closeWith(websocket.CloseProtocolError)
			return false
		}
	case eioPing:
		s.h.protocolError(s, "heartbeat", errors.New("ping from the client (Engine.IO v4 pings come from the server)"))
		s.closeWith(websocket.CloseProtocolError)
		return false
	case eioUpgrade:
		s.h.protocolError(s, "engineio", errors.New("upgrade packet outside an upgrade"))
		s.closeWith(websocket.CloseProtocolError)
		return false
	}
	return !s.closed.Load()
}
