package socketio

import (
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
	defer s.wmu.Unlock()
	return s.writeWSLocked(packets)
}

func (s *session) writeWSLocked(packets [][]byte) error {
	headers := make([]byte, 0, maxWSHeader*len(packets))
	bufs := make(net.Buffers, 0, 2*len(packets))
	for _, p := range packets {
		start := len(headers)
		headers = appendWSHeader(headers, opText, len(p))
		bufs = append(bufs, headers[start:len(headers):len(headers)], p)
	}
	if err := s.nc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := bufs.WriteTo(s.nc)
	return err
}

// writeWSControl writes a control frame (pong, close) through the session's write path.
func (s *session) writeWSControl(opcode byte, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.nc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := s.nc.Write(wsFrame(opcode, payload))
	return err
}

// serveWebSocketHandshake opens a WebSocket-only session (engine.io-protocol v4, "Handshake"):
// after the HTTP 101 the first message is the open packet, with no upgrades. The handler returns
// at once; the session's reader goroutine is all that remains.
func (h *Handler) serveWebSocketHandshake(w http.ResponseWriter, r *http.Request, token string) {
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // gorilla answered the bad handshake
	}
	s := h.newSession(kindWebSocket, token)
	s.nc = ws.NetConn()
	// The open packet goes first, before the heartbeat can send anything.
	if err := s.writeWS([][]byte{h.openPacket(s.id, false)}); err != nil || !h.addSession(s) {
		s.nc.Close()
		return
	}
	go s.readLoop(ws)
}

// readLoop reads the session's WebSocket until it fails, then closes the session. Each message is
// one Engine.IO packet: a text message has a type digit, a binary message is a binary
// Engine.IO message (a Socket.IO attachment).
func (s *session) readLoop(ws *websocket.Conn) {
	defer s.close()
	ws.SetReadLimit(int64(s.h.cfg.MaxPayload)) // gorilla closes with 1009 beyond it
	ws.SetPingHandler(func(data string) error {
		return s.writeWSControl(opPong, []byte(data))
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		s.writeWSControl(opClose, []byte{0x03, 0xE8}) // 1000: echo the close (RFC 6455 §5.5.1)
		return nil
	})
	for {
		p, err := readWSPacket(ws)
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.Is(err, errEIOPacket):
				s.h.protocolError(s, "engineio", err)
			case errors.Is(err, websocket.ErrReadLimit):
				s.h.protocolError(s, "too_large", err)
			case errors.As(err, &ce):
			default:
				s.h.logDebug("websocket read: "+err.Error(), s)
			}
			return
		}
		if !s.onPacket(p) {
			return
		}
	}
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
