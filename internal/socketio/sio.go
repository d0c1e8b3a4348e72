package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// sioType is a Socket.IO packet type (socket.io-protocol v5, "Exchange protocol"). On the wire it
// is one ASCII digit, '0' + the type, right after the Engine.IO message type '4'.
type sioType byte

const (
	sioConnect      sioType = 0
	sioDisconnect   sioType = 1
	sioEvent        sioType = 2
	sioAck          sioType = 3
	sioConnectError sioType = 4
	sioBinaryEvent  sioType = 5
	sioBinaryAck    sioType = 6

	numSIOTypes = 7
)

// Decoder limits.
const (
	// maxAttachments bounds the binary attachments of one packet (socket.io-parser's default
	// maxAttachments is 10 as well).
	maxAttachments = 10
	// maxAckID is the largest acknowledgement id accepted: JavaScript's Number.MAX_SAFE_INTEGER,
	// beyond which a client could not match the id it sent.
	maxAckID = 1<<53 - 1
)

// reservedEvents are the event names a peer may not send (socket.io-parser's RESERVED_EVENTS):
// the client and the server use them for their own notifications.
var reservedEvents = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

// sioPacket is one Socket.IO packet: `<type>[<attachments>-][<nsp>,][<ack id>][<JSON>]`
// (socket.io-protocol v5, "Packet encoding"). nsp is "/" when the packet names none.
type sioPacket struct {
	typ         sioType
	attachments int // binary attachments that follow (BINARY_EVENT, BINARY_ACK only)
	nsp         string
	hasID       bool
	id          int64
	data        []byte // the JSON payload, empty when absent; aliases the decoded input
}

// errSIOPacket is wrapped by every Socket.IO decoding error.
var errSIOPacket = errors.New("socket.io: malformed packet")

func sioErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errSIOPacket}, args...)...)
}

// decodeSIO decodes the text of a Socket.IO packet (an Engine.IO message without its '4') and
// checks its payload as socket.io-protocol v5 requires: CONNECT an optional object,
// DISCONNECT none, CONNECT_ERROR a string or an object, EVENT and BINARY_EVENT a non-empty array
// whose first element is a number or a non-reserved event name, ACK and BINARY_ACK an array;
// binary packets have 1..maxAttachments attachments and placeholders
// `{"_placeholder":true,"num":i}` with 0 <= i < attachments. The error wraps errSIOPacket.
func decodeSIO(s []byte) (sioPacket, error) {
	p := sioPacket{nsp: "/"}
	if len(s) == 0 {
		return p, sioErr("empty")
	}
	if s[0] < '0' || s[0]-'0' >= numSIOTypes {
		return p, sioErr("unknown type %q", s[0])
	}
	p.typ = sioType(s[0] - '0')
	i := 1
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		j := i
		for j < len(s) && isDigit(s[j]) && j-i <= 3 {
			j++
		}
		if j == i || j == len(s) || s[j] != '-' {
			return p, sioErr("illegal attachments")
		}
		n, _ := strconv.Atoi(string(s[i:j]))
		if n < 1 || n > maxAttachments {
			return p, sioErr("%d attachments, want 1..%d", n, maxAttachments)
		}
		p.attachments = n
		i = j + 1
	}
	if i < len(s) && s[i] == '/' {
		j := bytes.IndexByte(s[i:], ',')
		if j < 0 {
			p.nsp, i = string(s[i:]), len(s)
		} else {
			p.nsp, i = string(s[i:i+j]), i+j+1
		}
	}
	if i < len(s) && isDigit(s[i]) {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		id, err := strconv.ParseInt(string(s[i:j]), 10, 64)
		if err != nil || id > maxAckID {
			return p, sioErr("ack id %.20s out of range", s[i:j])
		}
		p.hasID, p.id, i = true, id, j
	}
	p.data = s[i:]
	return p, checkSIOPayload(p)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// checkSIOPayload checks p.data against the rules of p.typ (see decodeSIO).
func checkSIOPayload(p sioPacket) error {
	if len(p.data) == 0 {
		switch p.typ {
		case sioConnect, sioDisconnect:
			return nil
		default:
			return sioErr("packet type %d needs a payload", p.typ)
		}
	}
	if !json.Valid(p.data) {
		return sioErr("payload is not JSON")
	}
	kind := jsonKind(p.data)
	switch p.typ {
	case sioConnect:
		if kind != '{' {
			return sioErr("CONNECT payload must be an object")
		}
	case sioDisconnect:
		return sioErr("DISCONNECT takes no payload")
	case sioConnectError:
		if kind != '{' && kind != '"' {
			return sioErr("CONNECT_ERROR payload must be an object or a string")
		}
	case sioEvent, sioBinaryEvent:
		if kind != '[' {
			return sioErr("EVENT payload must be an array")
		}
		name, isString, ok := eventName(p.data)
		if !ok {
			return sioErr("EVENT payload must start with an event name")
		}
		if isString && slices.Contains(reservedEvents, name) {
			return sioErr("event name %q is reserved", name)
		}
	case sioAck, sioBinaryAck:
		if kind != '[' {
			return sioErr("ACK payload must be an array")
		}
	}
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		return checkPlaceholders(p.data, p.attachments)
	}
	return nil
}

// jsonKind is the first byte of valid JSON after white space: '{', '[', '"', 't', 'f', 'n' or
// the start of a number.
func jsonKind(data []byte) byte {
	data = bytes.TrimLeft(data, " \t\r\n")
	return data[0]
}

// eventName returns the first element of a JSON array: the event name when it is a string, and
// ok=false when the array is empty or starts with neither a string nor a number.
func eventName(data []byte) (name string, isString, ok bool) {
	var args []json.RawMessage
	if json.Unmarshal(data, &args) != nil || len(args) == 0 {
		return "", false, false
	}
	first := args[0]
	switch c := first[0]; {
	case c == '"':
		if json.Unmarshal(first, &name) != nil {
			return "", false, false
		}
		return name, true, true
	case c == '-' || isDigit(c):
		return "", false, true
	}
	return "", false, false
}

// checkPlaceholders walks valid JSON and checks that every object with "_placeholder": true has
// an integer "num" in [0, attachments), as socket.io-parser's reconstruction requires. It walks
// iteratively, so deep nesting costs heap, not stack.
func checkPlaceholders(data []byte, attachments int) error {
	type frame struct {
		object, wantKey, placeholder, hasNum bool
		key                                  string
		num                                  json.Number
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey, stack[n-1].key = true, ""
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return sioErr("payload: %v", err)
		}
		n := len(stack)
		if n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if tok == json.Delim('}') {
				f := stack[n-1]
				stack = stack[:n-1]
				if f.placeholder {
					num, err := f.num.Float64()
					if !f.hasNum || err != nil || num != math.Trunc(num) || num < 0 || num >= float64(attachments) {
						return sioErr("placeholder num %q outside the %d attachments", f.num, attachments)
					}
				}
				valueDone()
				continue
			}
			key, _ := tok.(string)
			stack[n-1].key, stack[n-1].wantKey = key, false
			continue
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
				continue
			case '[':
				stack = append(stack, frame{})
				continue
			case ']':
				stack = stack[:n-1]
			}
		case bool:
			if n > 0 && stack[n-1].object && stack[n-1].key == "_placeholder" && v {
				stack[n-1].placeholder = true
			}
		case json.Number:
			if n > 0 && stack[n-1].object && stack[n-1].key == "num" {
				stack[n-1].num, stack[n-1].hasNum = v, true
			}
		}
		valueDone()
	}
}

// appendSIO appends p encoded as socket.io-protocol v5 "Packet encoding" describes: the
// namespace only when it is not "/", the ack id only when p.hasID, then p.data as is.
func appendSIO(b []byte, p sioPacket) []byte {
	b = append(b, byte('0'+p.typ))
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		b = strconv.AppendInt(b, int64(p.attachments), 10)
		b = append(b, '-')
	}
	if p.nsp != "" && p.nsp != "/" {
		b = append(b, p.nsp...)
		b = append(b, ',')
	}
	if p.hasID {
		b = strconv.AppendInt(b, p.id, 10)
	}
	return append(b, p.data...)
}

// messagePacket returns p as a complete Engine.IO message packet: '4' then the Socket.IO packet.
func messagePacket(p sioPacket) []byte {
	return appendSIO([]byte{'0' + byte(eioMessage)}, p)
}
