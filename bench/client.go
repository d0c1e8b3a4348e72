package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	client "github.com/realtime-service/realtime-service/clients/go"
)

// frameConn is one client connection to the node.
type frameConn interface {
	// read calls onFrame with each event the server pushes (the JSON frame of docs/design.md,
	// "Client frames", for WebSocket and SSE; the Socket.IO EVENT array for Socket.IO) until the
	// connection ends, and returns why it ended. onFrame must not keep the slice. The caller
	// closes the connection afterwards.
	read(onFrame func([]byte)) error
	// close closes the connection (read then returns); idempotent.
	close()
}

// dialer opens client connections of one transport, each from the next loopback source address
// (127.0.x.y), so that many connections do not exhaust the ephemeral ports of one address.
// WebSocket and SSE connections are the Go client's (clients/go: client.Dialer, client.Conn);
// Socket.IO, which the Go client does not speak, is this tool's own.
type dialer struct {
	transport string // ws (the client's raw reader), ws-gorilla, sse, socketio
	base      string // http://127.0.0.1:port
	readBuf   int    // read buffer per connection, bytes
	timeout   time.Duration
	next      atomic.Uint64
	cd        *client.Dialer
	wsPool    sync.Pool // gorilla write buffers of Socket.IO connections
}

// connsPerSource is how many connections share one source address.
const connsPerSource = 1000

func newDialer(transport, base string, readBuf int) *dialer {
	d := &dialer{transport: transport, base: base, readBuf: readBuf, timeout: 15 * time.Second}
	d.cd = client.NewDialer(client.DialOptions{
		URL:              base,
		DialContext:      d.dialTCP,
		ReadBufferSize:   readBuf,
		HandshakeTimeout: d.timeout,
		RawWebSocket:     transport == "ws",
	})
	return d
}

// sourceIP returns the i-th source address: 127.0.0.1 for the first connsPerSource
// connections, then 127.0.0.2, ... spreading over 127.0.0.0/8 (up to 63,500 addresses).
func sourceIP(i uint64) net.IP {
	n := i / connsPerSource
	return net.IPv4(127, byte(n/(254*250)%250), byte(n/254%250), byte(1+n%254))
}

func (d *dialer) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{
		Timeout:   d.timeout,
		LocalAddr: &net.TCPAddr{IP: sourceIP(d.next.Add(1) - 1)},
	}
	return nd.DialContext(ctx, network, addr)
}

// dial connects one client with token; resume, a resume token (see clientCursor) when set,
// resumes after it: WebSocket ?cursor=, SSE Last-Event-ID, Socket.IO auth cursor.
func (d *dialer) dial(ctx context.Context, token, resume string) (frameConn, error) {
	t := client.WebSocket
	switch d.transport {
	case "socketio":
		return d.dialSocketIO(ctx, token, resume)
	case "sse":
		t = client.SSE
	}
	c, err := d.cd.Dial(ctx, t, token, resume)
	if err != nil {
		return nil, err
	}
	return clientConn{c}, nil
}

// clientConn is a WebSocket or SSE connection of the Go client.
type clientConn struct{ c *client.Conn }

func (c clientConn) read(onFrame func([]byte)) error {
	return c.c.Read(func(b []byte, _ string) { onFrame(b) })
}

func (c clientConn) close() { c.c.Close() }

func (d *dialer) wsDialer() *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   d.dialTCP,
		HandshakeTimeout: d.timeout,
		ReadBufferSize:   d.readBuf,
		WriteBufferSize:  256,
		WriteBufferPool:  &d.wsPool,
	}
}

func wsBase(base string) string { return "ws" + base[len("http"):] }

func handshakeErr(err error, resp *http.Response) error {
	if resp != nil {
		return fmt.Errorf("handshake: %s", resp.Status)
	}
	return err
}

// readAll appends r to b, growing it as needed.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	if cap(b) == 0 {
		b = make([]byte, 0, 512)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// dialSocketIO opens an Engine.IO v4 WebSocket session at /socket.io/ and connects to the
// default namespace with the token in the CONNECT packet, as io(url, {auth: {token},
// transports: ["websocket"]}) does; a resume token, when set, goes in auth "cursor"
// (docs/client-protocol.md, "Socket.IO: coming from the NestJS gateway").
func (d *dialer) dialSocketIO(ctx context.Context, token, resume string) (frameConn, error) {
	c, _, err := d.dialSocketIOWith(ctx, token, "", resume)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// dialSocketIOWith is dialSocketIO with connection state recovery (socket.io v4.6): with pid and
// offset set, the CONNECT packet carries them as socket.io-client sends its _pid and _lastOffset
// after a lost connection; with offset alone, it goes as auth "cursor". It returns the pid of the
// CONNECT reply: the same pid means the server recovered the session (socket.recovered), another
// one that it did not.
func (d *dialer) dialSocketIOWith(ctx context.Context, token, pid, offset string) (*sioConn, string, error) {
	c, resp, err := d.wsDialer().DialContext(ctx, wsBase(d.base)+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, "", handshakeErr(err, resp)
	}
	fail := func(err error) (*sioConn, string, error) {
		c.Close()
		return nil, "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(dl)
	} else {
		c.SetReadDeadline(time.Now().Add(d.timeout))
	}
	_, open, err := c.ReadMessage()
	if err != nil {
		return fail(fmt.Errorf("socket.io open: %w", err))
	}
	if len(open) == 0 || open[0] != '0' {
		return fail(fmt.Errorf("socket.io: want an open packet, got %q", open))
	}
	connect := `40{"token":` + strconv.Quote(token)
	switch {
	case pid != "" && offset != "":
		connect += `,"pid":` + strconv.Quote(pid) + `,"offset":` + strconv.Quote(offset)
	case offset != "":
		connect += `,"cursor":` + strconv.Quote(offset)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(connect+"}")); err != nil {
		return fail(err)
	}
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("socket.io connect: %w", err))
		}
		switch {
		case bytes.HasPrefix(msg, []byte("40")):
			var reply struct {
				PID string `json:"pid"`
			}
			if len(msg) > 2 {
				if err := json.Unmarshal(msg[2:], &reply); err != nil {
					return fail(fmt.Errorf("socket.io connect reply %q: %w", msg, err))
				}
			}
			c.SetReadDeadline(time.Time{})
			return &sioConn{c: c}, reply.PID, nil
		case bytes.HasPrefix(msg, []byte("44")):
			return fail(fmt.Errorf("socket.io connect_error: %s", msg[2:]))
		case len(msg) == 1 && msg[0] == '2':
			c.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}

type sioConn struct{ c *websocket.Conn }

func (s *sioConn) read(onFrame func([]byte)) error {
	var buf []byte
	for {
		_, r, err := s.c.NextReader()
		if err != nil {
			return err
		}
		if buf, err = readAll(buf[:0], r); err != nil {
			return err
		}
		switch {
		case len(buf) == 1 && buf[0] == '2': // Engine.IO ping: answer pong
			if err := s.c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return err
			}
		case len(buf) > 2 && buf[0] == '4' && buf[1] == '2': // Socket.IO EVENT
			onFrame(buf[2:])
		case len(buf) > 0 && buf[0] == '1', len(buf) > 1 && buf[0] == '4' && buf[1] == '1':
			return errors.New("socket.io: closed by the server")
		}
	}
}

func (s *sioConn) close() { s.c.Close() }

// closeReason names why a connection ended, for the report: a WebSocket close code, or the
// kind of error.
func closeReason(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return "close-" + strconv.Itoa(ce.Code)
	}
	var cce *client.CloseError
	if errors.As(err, &cce) {
		return "close-" + strconv.Itoa(cce.Code)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "eof"
	}
	return "error"
}
