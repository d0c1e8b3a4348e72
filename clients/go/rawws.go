package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	be "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// rawWS is the minimal RFC 6455 client behind [Dialer].RawWebSocket: it reads frames straight
// from one bufio.Reader and hands a message's payload over as a view into that buffer (no copy)
// when it fits, so an idle connection holds one small buffer and a busy one takes many frames
// per read syscall. It is strict about what a server may send (no mask, no RSV bits, control
// frames final and at most 125 bytes: RFC 6455 §5.1, §5.2, §5.5).
type rawWS struct {
	nc  net.Conn
	br  *bufio.Reader
	wmu sync.Mutex // pong, close and text frames
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" // RFC 6455 §1.3

func (d *Dialer) dialRaw(ctx context.Context, wsURL, token string) (*Conn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, errors.New("realtime client: RawWebSocket speaks ws:// only (no TLS)")
	}
	host := u.Host
	if u.Port() == "" {
		host += ":80"
	}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Conn, error) {
		nc.Close()
		return nil, err
	}
	dl := time.Now().Add(d.HandshakeTimeout)
	if cdl, ok := ctx.Deadline(); ok && cdl.Before(dl) {
		dl = cdl
	}
	nc.SetDeadline(dl)
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
		"\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(nc, d.ReadBufferSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fail(handshakeError(WebSocket, resp))
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return fail(errors.New("websocket handshake: bad Sec-WebSocket-Accept"))
	}
	nc.SetDeadline(time.Time{})
	c := &Conn{transport: WebSocket, raw: &rawWS{nc: nc, br: br}}
	c.touch()
	return c, nil
}

func (w *rawWS) read(c *Conn, fn func(data []byte, sseID string)) error {
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
		c.touch()
		switch op {
		case 0x1, 0x2, 0x0: // text, binary, continuation
			if op == 0x0 && !fragmented || op != 0x0 && fragmented {
				return fmt.Errorf("websocket: unexpected opcode %#x (fragmented %v)", op, fragmented)
			}
			fragmented = !fin
			if fin {
				fn(p, "")
			}
		case 0x8:
			code, reason := 1005, ""
			if len(p) >= 2 {
				code, reason = int(be.BigEndian.Uint16(p)), string(p[2:])
			}
			w.write(0x8, p[:min(len(p), 2)])
			return &CloseError{Code: code, Reason: reason}
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

// write sends one final, masked frame (RFC 6455 §5.3: clients mask), waiting at most 5 s.
func (w *rawWS) write(op byte, payload []byte) error {
	var hdr [14]byte
	hdr[0] = 0x80 | op
	n := 2
	switch l := len(payload); {
	case l <= 125:
		hdr[1] = 0x80 | byte(l)
	case l <= 0xffff:
		hdr[1] = 0x80 | 126
		be.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = 0x80 | 127
		be.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	f := make([]byte, 0, n+4+len(payload))
	f = append(f, hdr[:n]...)
	var mask [4]byte
	rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := w.nc.Write(f)
	return err
}
