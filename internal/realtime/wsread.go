package realtime

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
)

// The read side of /v1/ws, RFC 6455 §5: the client's frames are read straight from the socket,
// without a buffer, so that an idle connection's reader waits in a shallow call (a 2 KiB
// goroutine stack) and holds nothing between frames. Clients send rarely: pongs, and now and
// then a refresh or a read receipt.

const (
	opContinuation = 0x0
	opBinary       = 0x2
)

// errProtocol: the client broke RFC 6455 (answered with 1002, DisconnectProtocol).
var errProtocol = errors.New("websocket protocol error")

// errTooBig: a message over maxClientMessage (answered with 1009, DisconnectTooBig).
var errTooBig = errors.New("websocket message too big")

// wsHeader is a client frame's header (RFC 6455 §5.2).
type wsHeader struct {
	fin    bool
	op     byte
	length int64
	mask   [4]byte
}

// readWSHeader reads a frame header from r. A client frame must be masked (§5.3), must not set
// the reserved bits (no extension is negotiated), must use a known opcode, and a control frame
// must be final with at most 125 bytes of payload (§5.5); anything else is errProtocol. r's other
// errors come as they are.
func readWSHeader(r io.Reader) (wsHeader, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return wsHeader{}, err
	}
	h := wsHeader{fin: b[0]&0x80 != 0, op: b[0] & 0x0f, length: int64(b[1] & 0x7f)}
	switch {
	case b[0]&0x70 != 0, b[1]&0x80 == 0:
		return h, errProtocol
	case h.op > opBinary && h.op < opClose, h.op > opPong:
		return h, errProtocol
	case h.op >= opClose && (!h.fin || h.length > 125):
		return h, errProtocol
	}
	switch h.length {
	case 126:
		if _, err := io.ReadFull(r, b[:2]); err != nil {
			return h, err
		}
		h.length = int64(binary.BigEndian.Uint16(b[:2]))
	case 127:
		if _, err := io.ReadFull(r, b[:8]); err != nil {
			return h, err
		}
		if b[0]&0x80 != 0 { // the most significant bit must be 0 (§5.2)
			return h, errProtocol
		}
		h.length = int64(binary.BigEndian.Uint64(b[:8]))
	}
	_, err := io.ReadFull(r, h.mask[:])
	return h, err
}

// readWSPayload appends h's payload, unmasked, to dst, or discards it when dst is nil.
func readWSPayload(r io.Reader, h wsHeader, dst []byte) ([]byte, error) {
	var buf [256]byte
	for pos := int64(0); pos < h.length; {
		p := buf[:min(int64(len(buf)), h.length-pos)]
		n, err := io.ReadFull(r, p)
		if dst != nil {
			for i := range p[:n] {
				p[i] ^= h.mask[(pos+int64(i))%4]
			}
			dst = append(dst, p[:n]...)
		}
		pos += int64(n)
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// wsMessage is what readWSMessage returns: a text message, or the end of the connection.
type wsMessage struct {
	text []byte // a complete text message (binary ones are discarded)
}

// readWSMessage reads frames from nc until a complete text message, and returns it. On the way
// it answers pings (onPing, with the ping's payload) and calls onFrame after each frame (the
// caller moves its read deadline). It returns io.EOF once the client's close frame is read, and
// errProtocol, errTooBig (a message, text or binary, over maxClientMessage; what is left of it
// is not read) or nc's error otherwise.
func readWSMessage(nc net.Conn, onPing func([]byte), onFrame func()) (wsMessage, error) {
	var msg []byte
	var size int64
	inMessage, text := false, false
	for {
		h, err := readWSHeader(nc)
		if err != nil {
			return wsMessage{}, err
		}
		switch h.op {
		case opPing, opPong, opClose:
			p, err := readWSPayload(nc, h, make([]byte, 0, h.length))
			if err != nil {
				return wsMessage{}, err
			}
			if h.op == opClose {
				if len(p) == 1 { // a status code is two bytes (§5.5.1)
					return wsMessage{}, errProtocol
				}
				return wsMessage{}, io.EOF
			}
			if h.op == opPing {
				onPing(p)
			}
			onFrame()
			continue
		case opContinuation:
			if !inMessage {
				return wsMessage{}, errProtocol
			}
		default: // opText, opBinary
			if inMessage {
				return wsMessage{}, errProtocol
			}
			inMessage, text = true, h.op == opText
		}
		size += h.length
		if size > maxClientMessage {
			return wsMessage{}, errTooBig
		}
		var dst []byte
		if text {
			dst = msg
			if dst == nil {
				dst = make([]byte, 0, h.length)
			}
		}
		if msg, err = readWSPayload(nc, h, dst); err != nil {
			return wsMessage{}, err
		}
		onFrame()
		if h.fin {
			if text {
				return wsMessage{text: msg}, nil
			}
			msg, size, inMessage = nil, 0, false // a binary message: discarded
		}
	}
}

// drainWS reads and discards nc's input until the client's close frame, end of stream, an error
// or nc's read deadline: the end of the closing handshake (see wsTransport.readLoop).
func drainWS(nc net.Conn) {
	for {
		h, err := readWSHeader(nc)
		if err != nil {
			return
		}
		if _, err := readWSPayload(nc, h, nil); err != nil || h.op == opClose {
			return
		}
	}
}
