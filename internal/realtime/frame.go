package realtime

import "encoding/binary"

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// wsFrame returns a complete, unmasked, final WebSocket frame (RFC 6455 §5.2: servers never mask)
// with the given opcode and payload. Events are framed once and the bytes written as they are to
// every connection, so that fan-out costs no per-connection encoding.
func wsFrame(opcode byte, payload []byte) []byte {
	b := append(make([]byte, maxWSHeader, maxWSHeader+len(payload)), payload...)
	return putWSHeader(b, maxWSHeader, opcode)
}

// maxWSHeader is the longest header of an unmasked WebSocket frame (RFC 6455 §5.2).
const maxWSHeader = 10

// putWSHeader writes the header of a final, unmasked frame with the given opcode, whose payload
// is b[at:], into the at bytes before it (at must be maxWSHeader), and returns the frame:
// b from the header's first byte on. The frame is built in one buffer, without copying the payload.
func putWSHeader(b []byte, at int, opcode byte) []byte {
	n := len(b) - at
	switch {
	case n < 126:
		at -= 2
		b[at+1] = byte(n)
	case n <= 0xFFFF:
		at -= 4
		b[at+1] = 126
		binary.BigEndian.PutUint16(b[at+2:], uint16(n))
	default:
		at -= 10
		b[at+1] = 127
		binary.BigEndian.PutUint64(b[at+2:], uint64(n))
	}
	b[at] = 0x80 | opcode // FIN
	return b[at:]
}

// wsCloseFrame is a close frame with a status code and a reason (RFC 6455 §5.5.1); the reason is
// cut to fit the 125-byte control frame limit.
func wsCloseFrame(code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, code)
	return wsFrame(opClose, append(p, reason...))
}

// sseFrame returns an SSE event block: an id line when id is set, then the data line. data must
// hold no newline (compact JSON never does).
func sseFrame(id string, data []byte) []byte {
	b := make([]byte, 0, len(id)+len(data)+16)
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
