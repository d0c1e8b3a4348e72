package realtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/gobwas/ws"
)

// The read side of /v1/ws, RFC 6455 §5: the client's frames are read straight from the socket,
// without a buffer, so that an idle connection's reader waits in a shallow call (a 2 KiB
// goroutine stack) and holds nothing between frames. Clients send rarely: pongs, and now and
// then a refresh or a read receipt.
//
// Frame headers are parsed and checked by github.com/gobwas/ws's low-level API
// (ws.ReadHeaderBuffer, ws.CheckHeader) and payloads unmasked by ws.Cipher; what is ours is the
// message loop (readWSMessage: fragments, control frames between them, the size limit) and the
// mapping of the library's errors onto errProtocol (1002) and errTooBig (1009). The idle reader
// waits in ws.ReadHeaderBuffer called straight from readWSMessage, as deep as our own header
// parser waited, and holds a 12-byte header buffer. Keep it that shallow: one more frame in
// between (ws.ReadHeader, or a helper of ours around it) is a few hundred bytes of stack, enough
// to grow every idle reader's stack from 2 to 4 KiB (go run ./bench idle -conns 10000 -runs 3:
// stacks 2.10 KB a connection with our former parser and with this reader, 4.02 KB with
// readWSHeader in between; BENCHMARKS.md, "Idle memory").

// errProtocol: the client broke RFC 6455 (answered with 1002, DisconnectProtocol).
var errProtocol = errors.New("websocket protocol error")

// errTooBig: a message over maxClientMessage (answered with 1009, DisconnectTooBig).
var errTooBig = errors.New("websocket message too big")

// readWSHeader reads a client frame's header from r (ws.ReadHeader) and checks it
// (checkWSHeader) in state s. drainWS uses it; readWSMessage makes the same two calls itself,
// one call shallower while it waits.
func readWSHeader(r io.Reader, s ws.State) (ws.Header, error) {
	h, err := ws.ReadHeader(r)
	return h, checkWSHeader(h, err, s)
}

// checkWSHeader checks h, which ws.ReadHeader returned with err, as a server does in state s
// (ws.CheckHeader; s is ws.StateServerSide, with ws.StateFragmented inside a fragmented
// message): a client frame must be masked (RFC 6455 §5.3), must not set the reserved bits (no
// extension is negotiated), must use a known opcode, a control frame must be final with at most
// 125 bytes of payload (§5.5), a 64-bit length must have its most significant bit clear (§5.2),
// and only a continuation may follow a non-final data frame (§5.4); anything else is
// errProtocol, wrapping the library's reason. The reader's errors come as they are (io.EOF
// before the header, io.ErrUnexpectedEOF within it). ws.ReadHeader reads the whole header (up to
// 14 bytes) before any of it is judged.
func checkWSHeader(h ws.Header, err error, s ws.State) error {
	if errors.Is(err, ws.ErrHeaderLengthMSB) {
		return fmt.Errorf("%w: %w", errProtocol, err)
	}
	if err != nil {
		return err
	}
	if err := ws.CheckHeader(h, s); err != nil {
		return fmt.Errorf("%w: %w", errProtocol, err)
	}
	return nil
}

// readWSPayload reads h's payload (h.Length bytes) from r and appends it, unmasked (ws.Cipher),
// to dst, or discards it when dst is nil. The caller bounds h.Length first: dst grows by it. A
// payload cut short is io.ErrUnexpectedEOF (io.EOF when none of it came), with what came
// appended.
func readWSPayload(r io.Reader, h ws.Header, dst []byte) ([]byte, error) {
	if dst == nil {
		n, err := io.CopyN(io.Discard, r, h.Length) // io.Discard reads into a pooled buffer
		if errors.Is(err, io.EOF) && n > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	start := len(dst)
	dst = slices.Grow(dst, int(h.Length))[:start+int(h.Length)]
	n, err := io.ReadFull(r, dst[start:])
	dst = dst[:start+n]
	ws.Cipher(dst[start:], h.Mask, 0)
	return dst, err
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
	state, text := ws.StateServerSide, false
	hbuf := make([]byte, 0, ws.MaxHeaderSize-2) // what ws.ReadHeader allocates, once per message
	for {
		// readWSHeader, inlined by hand: the idle reader waits here, and every frame between it
		// and the socket's read deepens its stack (2 KiB until then; see the file's doc).
		h, err := ws.ReadHeaderBuffer(nc, hbuf)
		if err := checkWSHeader(h, err, state); err != nil {
			return wsMessage{}, err
		}
		if h.OpCode.IsControl() { // ping, pong or close: at most 125 bytes (readWSHeader)
			p, err := readWSPayload(nc, h, make([]byte, 0, h.Length))
			if err != nil {
				return wsMessage{}, err
			}
			if h.OpCode == ws.OpClose {
				if len(p) == 1 { // a status code is two bytes (§5.5.1)
					return wsMessage{}, errProtocol
				}
				return wsMessage{}, io.EOF
			}
			if h.OpCode == ws.OpPing {
				onPing(p)
			}
			onFrame()
			continue
		}
		if h.OpCode != ws.OpContinuation { // text or binary: a message starts (readWSHeader)
			text = h.OpCode == ws.OpText
		}
		// Compared before adding: a 64-bit length (up to 2^63-1) would wrap size below zero.
		if h.Length > maxClientMessage-size {
			return wsMessage{}, errTooBig
		}
		size += h.Length
		var dst []byte
		if text {
			dst = msg
			if dst == nil {
				dst = make([]byte, 0, h.Length)
			}
		}
		if msg, err = readWSPayload(nc, h, dst); err != nil {
			return wsMessage{}, err
		}
		onFrame()
		if !h.Fin {
			state = state.Set(ws.StateFragmented)
			continue
		}
		if text {
			return wsMessage{text: msg}, nil
		}
		msg, size, state = nil, 0, state.Clear(ws.StateFragmented) // a binary message: discarded
	}
}

// drainWS reads and discards nc's input until the client's close frame, end of stream, an error
// (a frame RFC 6455 does not allow included) or nc's read deadline: the end of the closing
// handshake (see wsTransport.readLoop). It starts between messages.
func drainWS(nc net.Conn) {
	state := ws.StateServerSide
	for {
		h, err := readWSHeader(nc, state)
		if err != nil {
			return
		}
		if _, err := readWSPayload(nc, h, nil); err != nil || h.OpCode == ws.OpClose {
			return
		}
		switch {
		case h.OpCode.IsControl():
		case h.Fin:
			state = state.Clear(ws.StateFragmented)
		default:
			state = state.Set(ws.StateFragmented)
		}
	}
}
