package main

import (
	"bufio"
	"crypto/rand"
	be "encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// rawWS is the hand-made WebSocket peer of the oversize attack (upgradeRaw in oversize.go),
// which writes frames no client library would (oversized, held back a byte): it reads the
// server's frames strictly (no mask, no RSV bits, control frames final and at most 125 bytes)
// and answers pings. Clients of the other scenarios are the Go client's (clients/go).
type rawWS struct {
	nc  net.Conn
	br  *bufio.Reader
	wmu sync.Mutex // pong and close frames
}

// wsCloseError is a close frame received from the server.
type wsCloseError struct {
	Code   int
	Reason string
}

func (e *wsCloseError) Error() string {
	return "websocket: close " + strconv.Itoa(e.Code) + " " + e.Reason
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func (w *rawWS) read(onFrame func([]byte)) error {
	var msg []byte // a fragmented message, or one larger than the read buffer
	fragmented := false
	for {
		h, err := w.br.Peek(2)
		if err != nil {
			return err
		}
		fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
		masked, n := h[1]&0x80 != 0, int(h[1]&0x7f)
		hl := 2
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if rsv != 0 || masked {
			return fmt.Errorf("websocket: bad frame header %#x %#x (RSV bits or a masked server frame)", h[0], h[1])
		}
		if hl > 2 {
			if h, err = w.br.Peek(hl); err != nil {
				return err
			}
			if hl == 4 {
				n = int(be.BigEndian.Uint16(h[2:]))
			} else {
				n64 := be.BigEndian.Uint64(h[2:])
				if n64 > 1<<30 {
					return fmt.Errorf("websocket: frame of %d bytes", n64)
				}
				n = int(n64)
			}
		}
		w.br.Discard(hl)
		control := op >= 8
		if control && (!fin || n > 125) {
			return fmt.Errorf("websocket: control frame %#x fragmented or %d bytes", op, n)
		}
		// The payload: a view into the buffer when it fits, else copied.
		var p []byte
		inBuf := n <= w.br.Size() && !fragmented && fin
		if inBuf {
			if p, err = w.br.Peek(n); err != nil {
				return err
			}
		} else {
			start := len(msg)
			if !fragmented {
				msg, start = msg[:0], 0
			}
			msg = append(msg, make([]byte, n)...)
			if _, err := io.ReadFull(w.br, msg[start:]); err != nil {
				return err
			}
			p = msg
		}
		switch op {
		case 0x1, 0x2, 0x0: // text, binary, continuation
			if op == 0x0 && !fragmented || op != 0x0 && fragmented {
				return fmt.Errorf("websocket: unexpected opcode %#x (fragmented %v)", op, fragmented)
			}
			fragmented = !fin
			if fin {
				onFrame(p)
			}
		case 0x8:
			code, reason := 1005, ""
			if len(p) >= 2 {
				code, reason = int(be.BigEndian.Uint16(p)), string(p[2:])
			}
			w.write(0x8, p[:min(len(p), 2)])
			return &wsCloseError{Code: code, Reason: reason}
		case 0x9:
			if err := w.write(0xA, p); err != nil {
				return err
			}
		case 0xA:
		default:
			return fmt.Errorf("websocket: unknown opcode %#x", op)
		}
		if inBuf {
			w.br.Discard(n)
		}
	}
}

// write sends a final, masked frame (RFC 6455 §5.3: clients mask) of at most 125 bytes.
func (w *rawWS) write(op byte, payload []byte) error {
	var f [2 + 4 + 125]byte
	f[0], f[1] = 0x80|op, 0x80|byte(len(payload))
	rand.Read(f[2:6])
	for i, b := range payload {
		f[6+i] = b ^ f[2+i%4]
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.nc.Write(f[:6+len(payload)])
	return err
}

func (w *rawWS) close() { w.nc.Close() }
