package socketio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// eioType is an Engine.IO packet type (engine.io-protocol v4, "Protocol"). On the wire it is
// one ASCII digit, '0' + the type.
type eioType byte

const (
	eioOpen    eioType = 0 // server → client, handshake data
	eioClose   eioType = 1 // either way: close the session
	eioPing    eioType = 2 // server → client heartbeat; client → server only as the "probe"
	eioPong    eioType = 3 // client → server heartbeat answer; server → client "probe" answer
	eioMessage eioType = 4 // either way: a Socket.IO packet or a binary attachment
	eioUpgrade eioType = 5 // client → server: complete the upgrade to WebSocket
	eioNoop    eioType = 6 // server → client: end a pending long-poll during the upgrade

	numEIOTypes = 7
)

// recordSeparator separates packets in a long-polling payload (engine.io-protocol v4, "Packet
// encoding", HTTP long-polling).
const recordSeparator = 0x1e

// eioPacket is one decoded Engine.IO packet. Text packets carry the bytes after the type digit;
// binary packets are always messages (over WebSocket a binary frame, over polling a `b` +
// base64 packet).
type eioPacket struct {
	typ    eioType
	binary bool
	data   []byte
}

// errEIOPacket is wrapped by every Engine.IO decoding error.
var errEIOPacket = errors.New("engine.io: malformed packet")

// Frequently written packets.
var (
	pingPacket  = []byte("2")
	closePacket = []byte("1")
	noopPacket  = []byte("6")
	probePong   = []byte("3probe")
)

// decodeEIOText decodes a text packet: a WebSocket text message, or one packet of a polling
// payload (engine.io-protocol v4, "Packet encoding"): `<type digit>[<data>]`, or `b<base64>` for a
// binary message on polling. data aliases msg.
func decodeEIOText(msg []byte) (eioPacket, error) {
	if len(msg) == 0 {
		return eioPacket{}, fmt.Errorf("%w: empty", errEIOPacket)
	}
	if msg[0] == 'b' {
		data := make([]byte, base64.StdEncoding.DecodedLen(len(msg)-1))
		n, err := base64.StdEncoding.Decode(data, msg[1:])
		if err != nil {
			return eioPacket{}, fmt.Errorf("%w: bad base64: %v", errEIOPacket, err)
		}
		return eioPacket{typ: eioMessage, binary: true, data: data[:n]}, nil
	}
	t := eioType(msg[0] - '0')
	if msg[0] < '0' || t >= numEIOTypes {
		return eioPacket{}, fmt.Errorf("%w: unknown type %q", errEIOPacket, msg[0])
	}
	return eioPacket{typ: t, data: msg[1:]}, nil
}

// decodeEIOPayload splits a long-polling payload on the record separator and decodes each
// packet. Any malformed packet fails the whole payload (the session is then closed).
func decodeEIOPayload(body []byte) ([]eioPacket, error) {
	n := bytes.Count(body, []byte{recordSeparator}) + 1
	packets := make([]eioPacket, 0, n)
	for chunk := range bytes.SplitSeq(body, []byte{recordSeparator}) {
		p, err := decodeEIOText(chunk)
		if err != nil {
			return nil, err
		}
		packets = append(packets, p)
	}
	return packets, nil
}

// appendEIOPayload appends packets (each already an encoded text packet) as one long-polling
// payload: the packets joined by the record separator.
func appendEIOPayload(b []byte, packets [][]byte) []byte {
	for i, p := range packets {
		if i > 0 {
			b = append(b, recordSeparator)
		}
		b = append(b, p...)
	}
	return b
}

// payloadLen is the length appendEIOPayload produces.
func payloadLen(packets [][]byte) int {
	n := 0
	for _, p := range packets {
		n += len(p) + 1
	}
	return max(n-1, 0)
}

// appendEIOBinary appends a binary message packet as text for a long-polling payload:
// `b` + standard base64 (engine.io-protocol v4: "Binary payloads MUST be base64-encoded and
// prefixed with a b character").
func appendEIOBinary(b []byte, data []byte) []byte {
	b = append(b, 'b')
	return base64.StdEncoding.AppendEncode(b, data)
}

// appendEIOPacket appends a text packet: the type digit then data.
func appendEIOPacket(b []byte, t eioType, data []byte) []byte {
	b = append(b, byte('0'+t))
	return append(b, data...)
}
