package socketio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPong  = 0xA
)

// maxWSHeader is the longest header of an unmasked server frame (RFC 6455 §5.2).
const maxWSHeader = 10

// appendWSHeader appends the header of a final, unmasked frame (servers never mask) with the given
// opcode and payload length.
func appendWSHeader(b []byte, opcode byte, n int) []byte {
	b = append(b, 0x80|opcode)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// wsFrame returns a complete frame.
func wsFrame(opcode byte, payload []byte) []byte {
	return append(appendWSHeader(make([]byte, 0, maxWSHeader+len(payload)), opcode, len(payload)), payload...)
}

// writeWS writes each packet as one WebSocket text message (engine.io-protocol v4: "Each packet
// is sent in its own WebSocket frame"), the whole batch in one writev bounded by WriteTimeout. The
// frames are not copied: the hub's event bytes are shared by every connection.
func (s *session) writeWS(packets [][]byte) error {
	s.wmu.Lock()
	defer s.unlockW()
	return s.writeWSLocked(packets)
}

// writeWSLocked writes packets; wmu is held. Nothing is written once the session owes or sent a
// Close, and a failed write marks the connection broken (see sendCloseLocked).
func (s *session) writeWSLocked(packets [][]byte) error {
	if s.closeSent || s.closeCode.Load() != 0 {
		return errSessionClosed
	}
	if s.plain.Load() {
		packets = splitPackets(packets) // one message per Engine.IO packet
	}
	headers := make([]byte, 0, maxWSHeader*len(packets))
	bufs := make(net.Buffers, 0, 2*len(packets))
	for _, p := range packets {
		start := len(headers)
		headers = appendWSHeader(headers, opText, len(p))
		bufs = append(bufs, headers[start:len(headers):len(headers)], p)
	}
	if err := s.setWriteDeadline(); err != nil {
		return err
	}
	if _, err := bufs.WriteTo(s.nc); err != nil {
		s.wsBroken = true
		return err
	}
	return nil
}

// setWriteDeadline bounds a write by WriteTimeout, or by closeLinger once the session closed (a
// close that came after writeWSLocked's check must not wait for a slow client longer).
func (s *session) setWriteDeadline() error {
	if err := s.nc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	if s.closeCode.Load() != 0 {
		return s.nc.SetWriteDeadline(time.Now().Add(closeLinger))
	}
	return nil
}

// writeWSControl writes a control frame (pong, close) through the session's write path; nothing
// after a Close.
func (s *session) writeWSControl(opcode byte, payload []byte) error {
	s.wmu.Lock()
	defer s.unlockW()
	if s.closeSent || (opcode != opClose && s.closeCode.Load() != 0) {
		return errSessionClosed
	}
	s.closeSent = opcode == opClose
	if err := s.setWriteDeadline(); err != nil {
		return err
	}
	if _, err := s.nc.Write(wsFrame(opcode, payload)); err != nil {
		s.wsBroken = true
		return err
	}
	return nil
}

// serveWebSocketHandshake opens a WebSocket-only session (engine.io-protocol v4, "Handshake"):
// after the HTTP 101 the first message is the open packet, with no upgrades. The handler returns
// at once; the session's reader goroutine is all that remains.
func (h *Handler) serveWebSocketHandshake(w http.ResponseWriter, r *http.Request, s *session) {
	own := &readerOwner{ResponseWriter: w}
	ws, err := h.wsOnly.Upgrade(own, r, nil)
	if err != nil {
		s.release()
		return // gorilla answered the bad handshake
	}
	s.kind, s.nc, s.br = kindWebSocket, ws.NetConn(), own.br
	// The session is registered before the client learns its sid (a request with it finds it),
	// and the open packet goes first: wmu keeps the heartbeat from writing before it.
	s.wmu.Lock()
	if !h.addSession(s) {
		s.wmu.Unlock()
		s.release()
		s.nc.Close()
		return
	}
	err = s.writeWSLocked([][]byte{h.openPacket(s.id, false)})
	s.unlockW()
	if err != nil {
		s.close()
		return
	}
	go s.readLoop(ws)
}

// readLoop reads the session's WebSocket until it fails or the session closes, then ends the
// closing handshake and closes the TCP connection. Each message is one Engine.IO packet: a text
// message has a type digit, a binary message is a binary Engine.IO message (a Socket.IO
// attachment).
//
// Bounds: before the CONNECT a message is at most PreAuthMaxPayload bytes and the reads end at
// the auth deadline; after it MaxPayload bytes, and each read ends PingInterval+PongTimeout after
// the previous message (a pong is due every PingInterval). Past the size limit gorilla reads only
// the frame header and writes a Close with 1009 (RFC 6455 §7.4.1), so no buffer grows to the
// message's size; the rest of the message is read and discarded for closeLinger at most, so that
// closing TCP with unread input does not reset the connection under the Close frame.
func (s *session) readLoop(ws *websocket.Conn) {
	nc := ws.NetConn()
	ws.SetPingHandler(func(data string) error {
		return s.writeWSControl(opPong, []byte(data))
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		s.writeWSControl(opClose, []byte{0x03, 0xE8}) // 1000: echo the close, unless we sent ours (RFC 6455 §5.5.1)
		return nil
	})
	err := s.readPackets(ws)
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, errFreshReader):
		// The CONNECT (token verification, an attach and maybe a replay), or a packet once
		// connected, grew this goroutine's stack; an idle session keeps its reader for hours,
		// so a new goroutine, on a small stack, reads from here on: 2 KiB a WebSocket-only
		// session (4 KiB for one upgraded from polling, which waits in gorilla's reader)
		// instead of 8.
		go s.readLoop(ws)
		return
	case err == nil: // the session closed and sent its Close: wait for the client's
		for err == nil {
			_, _, err = ws.NextReader()
		}
	case errors.As(err, &ce): // the closing handshake is complete: the server closes TCP first
		s.close()
	case errors.Is(err, websocket.ErrReadLimit):
		s.h.protocolError(s, "too_large", err)
		s.wmu.Lock()
		s.closeSent = true // gorilla wrote the Close, 1009
		s.unlockW()
		s.closeWith(websocket.CloseMessageTooBig)
		io.Copy(io.Discard, nc) // the rest of the message, until the client closes or closeLinger ends
	case errors.Is(err, errEIOPacket):
		s.h.protocolError(s, "engineio", err)
		s.closeWith(websocket.CloseProtocolError)
		for err == nil || errors.Is(err, errEIOPacket) {
			_, _, err = ws.NextReader()
		}
	case isTimeout(err) && !s.authed.Load():
		s.authTimedOut()
	default:
		s.h.debug("websocket read", "sid", s.id, "err", err)
		s.close()
	}
	nc.Close()
}

// isTimeout reports a read that hit its deadline (gorilla reports it as a net.Error with
// Timeout, not wrapping os.ErrDeadlineExceeded).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readerOwner hands gorilla/websocket a read buffer the session keeps a hold of (session.br):
// with Upgrader.ReadBufferSize 0 gorilla reads through the one Hijack returns, when it holds
// more than 256 bytes (gorilla's Upgrade). 264 bytes, instead of the 128 gorilla would make,
// for a reader that can wait outside gorilla (readPackets).
type readerOwner struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (o *readerOwner) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(o.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 { // gorilla refuses input before the 101
		return nc, brw, err
	}
	o.br = bufio.NewReaderSize(nc, 264)
	return nc, bufio.NewReadWriter(o.br, brw.Writer), nil
}

// errFreshReader asks readLoop to go on reading in a new goroutine (see readLoop).
var errFreshReader = errors.New("socketio: the reader goes on in a fresh goroutine")

// readPackets reads and handles packets until a read fails (its error), the session closes (nil)
// or the session has just been authenticated (errFreshReader).
func (s *session) readPackets(ws *websocket.Conn) error {
	nc := ws.NetConn()
	authed := s.authed.Load()
	ws.SetReadLimit(int64(s.maxPayload()))
	if !authed {
		nc.SetReadDeadline(s.authDeadline.Add(closeLinger)) // the auth timer is first to close
	}
	for !s.closed.Load() {
		if !authed && s.authed.Load() {
			return errFreshReader // readLoop goes on in a new goroutine, with the limits of an authenticated session
		}
		if authed {
			nc.SetReadDeadline(time.Now().Add(s.h.cfg.PingInterval + s.h.cfg.PongTimeout))
			// An idle session waits here, not in gorilla's reader: a few calls deep, on a
			// 2 KiB stack instead of 4. Only with nothing buffered: gorilla would not read
			// again for what it holds.
			if s.br != nil && s.br.Buffered() == 0 {
				if _, err := s.br.Peek(1); err != nil {
					if s.closed.Load() {
						return nil // closed meanwhile; the Close is on its way
					}
					return err
				}
			}
		}
		p, err := readWSPacket(ws)
		if err != nil {
			if s.closed.Load() && !errors.Is(err, websocket.ErrReadLimit) {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					return err
				}
				return nil // closed meanwhile; the Close is on its way
			}
			return err
		}
		if !s.onPacket(p) {
			return nil
		}
		if authed && s.br != nil {
			// Handling the packet may have grown the stack, which the idle wait would keep.
			return errFreshReader
		}
	}
	return nil
}

// readWSPacket reads one message and decodes it as an Engine.IO packet.
func readWSPacket(ws *websocket.Conn) (eioPacket, error) {
	mt, r, err := ws.NextReader()
	if err != nil {
		return eioPacket{}, err
	}
	msg, err := readMessage(r)
	if err != nil {
		return eioPacket{}, err
	}
	if mt == websocket.BinaryMessage {
		return eioPacket{typ: eioMessage, binary: true, data: msg}, nil
	}
	return decodeEIOText(msg)
}

// readMessage reads a whole message; the short ones a client sends most (pongs) need no heap
// buffer beyond the result.
func readMessage(r io.Reader) ([]byte, error) {
	var small [64]byte
	n, err := io.ReadFull(r, small[:])
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		return bytes.Clone(small[:n]), nil
	case nil:
		var buf bytes.Buffer
		buf.Write(small[:])
		_, err = buf.ReadFrom(r)
		return buf.Bytes(), err
	default:
		return nil, err
	}
}
