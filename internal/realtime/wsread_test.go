package realtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// The data opcodes the server never sends (RFC 6455 §5.2); frame.go has the others.
const (
	opContinuation = byte(ws.OpContinuation)
	opBinary       = byte(ws.OpBinary)
)

// clientFrame builds a frame as a client sends it (RFC 6455 §5.2): masked with a fixed key.
func clientWSFrame(first byte, payload []byte) []byte {
	b := []byte{first}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// readFrom runs readWSMessage on input sent through a pipe and returns what it read, the pings it
// answered and the frames it saw.
func readFrom(t *testing.T, input []byte) (wsMessage, error, []string, int) {
	t.Helper()
	srv, cli := net.Pipe()
	defer srv.Close()
	go func() {
		cli.Write(input)
		cli.Close()
	}()
	var pings []string
	frames := 0
	msg, err := readWSMessage(srv, func(p []byte) { pings = append(pings, string(p)) }, func() { frames++ })
	return msg, err, pings, frames
}

func TestReadWSMessage(t *testing.T) {
	const fin = 0x80
	big := bytes.Repeat([]byte("x"), 70000) // a 64-bit length
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, tc := range []struct {
		name   string
		input  []byte
		want   string
		err    error
		pings  []string
		frames int
	}{
		{"text", clientWSFrame(fin|opText, []byte(`{"type":"cursor"}`)), `{"type":"cursor"}`, nil, nil, 1},
		{"empty text", clientWSFrame(fin|opText, nil), "", nil, nil, 1},
		{"16-bit length", clientWSFrame(fin|opText, bytes.Repeat([]byte("y"), 300)), strings.Repeat("y", 300), nil, nil, 1},
		{"fragments with a ping between", cat(clientWSFrame(opText, []byte("ab")), clientWSFrame(fin|opPing, []byte("p")), clientWSFrame(fin|opContinuation, []byte("cd"))), "abcd", nil, []string{"p"}, 3},
		{"binary discarded, then text", cat(clientWSFrame(fin|opBinary, []byte{1, 2}), clientWSFrame(fin|opText, []byte("t"))), "t", nil, nil, 2},
		{"pong", cat(clientWSFrame(fin|opPong, nil), clientWSFrame(fin|opText, []byte("t"))), "t", nil, nil, 2},
		{"close", clientWSFrame(fin|opClose, []byte{0x03, 0xe8}), "", io.EOF, nil, 0},
		{"close without a code", clientWSFrame(fin|opClose, nil), "", io.EOF, nil, 0},
		{"close with one byte", clientWSFrame(fin|opClose, []byte{3}), "", errProtocol, nil, 0},
		{"unmasked", []byte{fin | opText, 1, 'x'}, "", errProtocol, nil, 0},
		{"reserved bit", clientWSFrame(fin|0x40|opText, []byte("x")), "", errProtocol, nil, 0},
		{"unknown opcode", clientWSFrame(fin|0x3, []byte("x")), "", errProtocol, nil, 0},
		{"fragmented ping", clientWSFrame(opPing, nil), "", errProtocol, nil, 0},
		{"long ping", clientWSFrame(fin|opPing, bytes.Repeat([]byte("p"), 126)), "", errProtocol, nil, 0},
		{"continuation first", clientWSFrame(fin|opContinuation, []byte("x")), "", errProtocol, nil, 0},
		{"text inside a message", cat(clientWSFrame(opText, []byte("a")), clientWSFrame(fin|opText, []byte("b"))), "", errProtocol, nil, 1},
		{"64-bit length with the top bit set", []byte{fin | opBinary, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78}, "", errProtocol, nil, 0},
		{"too big", clientWSFrame(fin|opText, big), "", errTooBig, nil, 0},
		{"too big in fragments", cat(clientWSFrame(opBinary, big[:maxClientMessage]), clientWSFrame(fin|opContinuation, []byte("z"))), "", errTooBig, nil, 1},
		// A continuation whose 64-bit length would wrap the running size below zero (2^63-1
		// after 1 byte): it must still be too big, not read without a bound.
		{"continuation length that wraps the size", cat(clientWSFrame(opText, []byte("a")), []byte{fin | opContinuation, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}), "", errTooBig, nil, 1},
		{"end of stream", nil, "", io.EOF, nil, 0},
		{"cut in the header", []byte{fin | opText}, "", io.ErrUnexpectedEOF, nil, 0},
		{"cut in the payload", clientWSFrame(fin|opText, []byte("abcdef"))[:8], "", io.ErrUnexpectedEOF, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err, pings, frames := readFrom(t, tc.input)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if string(msg.text) != tc.want || strings.Join(pings, ",") != strings.Join(tc.pings, ",") || frames != tc.frames {
				t.Fatalf("message %q, pings %q, %d frames; want %q, %q, %d", msg.text, pings, frames, tc.want, tc.pings, tc.frames)
			}
		})
	}
}

// TestReadWSHeaderRejectsA64BitLengthWithTheTopBitSet: a complete header (the length, then the
// mask: ws.ReadHeader reads both before it judges the length) whose 64-bit length has its most
// significant bit set is errProtocol (RFC 6455 §5.2).
func TestReadWSHeaderRejectsA64BitLengthWithTheTopBitSet(t *testing.T) {
	in := []byte{0x80 | opBinary, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78}
	if _, err := readWSHeader(bytes.NewReader(in), ws.StateServerSide); !errors.Is(err, errProtocol) {
		t.Fatalf("error %v, want errProtocol", err)
	}
}
