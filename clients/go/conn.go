package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Transport names a way to receive: WebSocket (/v1/ws) or Server-Sent Events (/v1/events).
type Transport string

const (
	WebSocket Transport = "websocket"
	SSE       Transport = "sse"
)

// DialOptions say how to reach the service; [Options] embeds them. Only URL is required.
type DialOptions struct {
	// URL is the service's base URL, http(s)://host[:port][/prefix]; ws(s):// is derived from
	// it. Required.
	URL string
	// DialContext opens the TCP connections of both transports (default: net.Dialer with
	// HandshakeTimeout). The load tool passes one that spreads connections over many loopback
	// source addresses.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HTTPClient carries SSE streams (default: an http.Client on DialContext with
	// ReadBufferSize and no timeout, as a stream lasts). Its Timeout must be zero.
	HTTPClient *http.Client
	// ReadBufferSize is each connection's read buffer in bytes (default 4096). A frame larger
	// than it is still read whole, into a separate buffer; small values (512) keep idle
	// connections cheap.
	ReadBufferSize int
	// HandshakeTimeout bounds the TCP connect and the upgrade or stream answer (default 15s);
	// the dial's ctx may end it earlier.
	HandshakeTimeout time.Duration
	// RawWebSocket reads /v1/ws with the package's own minimal RFC 6455 reader instead of
	// gorilla/websocket: one read buffer per connection and no write buffer, frames handed over
	// in place. For tens of thousands of idle connections (the load tool's default); ws:// only,
	// and strict about what a server may send (unmasked frames, no RSV bits, final control
	// frames of at most 125 bytes).
	RawWebSocket bool
}

// Dialer opens single connections to the service ([Conn]): no reconnect, no de-duplication.
// [Client] uses one; so does the load tool, for many connections at once. Safe for concurrent
// use.
type Dialer struct {
	DialOptions
	sse    *http.Client
	ws     *websocket.Dialer
	wsPool sync.Pool // gorilla write buffers: a connection writes little, and rarely
}

// NewDialer fills in the defaults of o and returns its Dialer.
func NewDialer(o DialOptions) *Dialer {
	d := &Dialer{DialOptions: o}
	if d.ReadBufferSize <= 0 {
		d.ReadBufferSize = 4096
	}
	if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = 15 * time.Second
	}
	if d.DialContext == nil {
		d.DialContext = (&net.Dialer{Timeout: d.HandshakeTimeout}).DialContext
	}
	d.sse = d.HTTPClient
	if d.sse == nil {
		d.sse = &http.Client{Transport: &http.Transport{
			DialContext:           d.DialContext,
			MaxIdleConnsPerHost:   1,
			DisableCompression:    true,
			ReadBufferSize:        d.ReadBufferSize,
			WriteBufferSize:       1024,
			ResponseHeaderTimeout: d.HandshakeTimeout,
		}}
	}
	d.ws = &websocket.Dialer{
		NetDialContext:   d.DialContext,
		HandshakeTimeout: d.HandshakeTimeout,
		ReadBufferSize:   d.ReadBufferSize,
		WriteBufferSize:  256,
		WriteBufferPool:  &d.wsPool,
	}
	return d
}

// HandshakeError is a connection the server (or a proxy on the way) refused before any frame:
// 401 (token), 403 (origin, or a proxy that blocks WebSocket), 429 (too many connections of the
// user) or 503 (the node full), with the problem+json body when there was one.
type HandshakeError struct {
	Transport Transport
	Status    int
	// RetryAfter is the answer's Retry-After (docs/client-protocol.md, "Close codes": 503),
	// zero when absent.
	RetryAfter time.Duration
	// Problem is the decoded application/problem+json body, nil when there was none.
	Problem *Problem
}

func (e *HandshakeError) Error() string {
	s := fmt.Sprintf("%s handshake: HTTP %d", e.Transport, e.Status)
	if e.Problem != nil {
		s += " " + e.Problem.Code
		if e.Problem.Detail != "" {
			s += ": " + e.Problem.Detail
		}
	}
	return s
}

// Unwrap returns the Problem, so errors.As finds it.
func (e *HandshakeError) Unwrap() error {
	if e.Problem == nil {
		return nil
	}
	return e.Problem
}

// CloseError is the end of a connection the server announced: a WebSocket close frame, or the
// code of an SSE "disconnect" frame (docs/client-protocol.md, "Close codes").
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "closed by the server: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// ErrNoSend is returned by [Conn.Send] on SSE, which has no way to talk back.
var ErrNoSend = errors.New("realtime client: SSE cannot send messages")

// Conn is one connection to /v1/ws or /v1/events. Read is for one goroutine; Send and Close
// may be called from any.
type Conn struct {
	transport Transport
	ws        *websocket.Conn
	raw       *rawWS
	sse       *sseStream
	wmu       sync.Mutex
	lastRead  atomic.Int64 // unix ns of the last frame, ping or heartbeat read
}

// Transport returns the connection's transport.
func (c *Conn) Transport() Transport { return c.transport }

// LastRead returns when the connection last read a frame, a ping or an SSE heartbeat.
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.lastRead.Load()) }

func (c *Conn) touch() { c.lastRead.Store(time.Now().UnixNano()) }

// Dial opens one connection of transport t with the client token and, when resume is not
// empty, the resume token ("<cursor>~<id>,...": WebSocket ?cursor=, SSE Last-Event-ID). The
// token goes in the Authorization header. A refused connection is a *HandshakeError; ctx bounds
// the dial only.
func (d *Dialer) Dial(ctx context.Context, t Transport, token, resume string) (*Conn, error) {
	if !strings.HasPrefix(d.URL, "http://") && !strings.HasPrefix(d.URL, "https://") {
		return nil, fmt.Errorf("realtime client: URL %q: want http(s)://host[:port]", d.URL)
	}
	base := strings.TrimRight(d.URL, "/")
	switch t {
	case WebSocket:
		u := "ws" + base[len("http"):] + "/v1/ws"
		if resume != "" {
			u += "?cursor=" + url.QueryEscape(resume)
		}
		if d.RawWebSocket {
			return d.dialRaw(ctx, u, token)
		}
		ws, resp, err := d.ws.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			if resp != nil {
				return nil, handshakeError(WebSocket, resp)
			}
			return nil, err
		}
		c := &Conn{transport: WebSocket, ws: ws}
		c.touch()
		ws.SetPingHandler(func(p string) error {
			c.touch()
			err := ws.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(5*time.Second))
			if err == websocket.ErrCloseSent {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		})
		return c, nil
	case SSE:
		return d.dialSSE(ctx, base, token, resume)
	}
	return nil, fmt.Errorf("realtime client: unknown transport %q", t)
}

// handshakeError builds the *HandshakeError of a refused answer and closes its body.
func handshakeError(t Transport, resp *http.Response) error {
	e := &HandshakeError{Transport: t, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
	if resp.Body != nil {
		e.Problem = readProblem(resp)
		resp.Body.Close()
	}
	return e
}

// Read calls fn with each frame the server sends, until the connection ends, and returns why:
// a *CloseError for a WebSocket close frame, else the read error (io.EOF-like for a dropped
// connection, or the error after Close). data is the frame's JSON, valid during the call only;
// sseID is the SSE block's id line (cursor and resync frames), "" on WebSocket. WebSocket pings
// are answered; SSE comments (the heartbeat) are skipped.
func (c *Conn) Read(fn func(data []byte, sseID string)) error {
	switch {
	case c.raw != nil:
		return c.raw.read(c, fn)
	case c.sse != nil:
		return c.sse.read(c, fn)
	}
	var buf []byte // allocated on the first message: idle connections hold none
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				return &CloseError{Code: ce.Code, Reason: ce.Text}
			}
			return err
		}
		c.touch()
		if buf, err = readAll(buf[:0], r); err != nil {
			return err
		}
		fn(buf, "")
	}
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

// Send writes msg as one WebSocket text message (a client message of docs/client-protocol.md:
// {"type":"refresh","token":...}, {"type":"cursor"}, {"type":"read","id":...}; at most 9 KiB).
// On SSE it returns ErrNoSend.
func (c *Conn) Send(msg []byte) error {
	switch {
	case c.sse != nil:
		return ErrNoSend
	case c.raw != nil:
		return c.raw.write(0x1, msg)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, msg)
}

// Close closes the connection at once, with no close frame (the server sees the client gone);
// Read then returns. Idempotent.
func (c *Conn) Close() error {
	switch {
	case c.raw != nil:
		return c.raw.nc.Close()
	case c.sse != nil:
		c.sse.close()
		return nil
	}
	return c.ws.Close()
}

// CloseWith sends a WebSocket close frame with code and reason (at most 123 bytes), waiting at
// most a second, then closes the connection; on SSE it is Close.
func (c *Conn) CloseWith(code int, reason string) error {
	p := append([]byte{byte(code >> 8), byte(code)}, reason[:min(len(reason), 123)]...)
	switch {
	case c.raw != nil:
		c.raw.write(0x8, p)
	case c.ws != nil:
		c.ws.WriteControl(websocket.CloseMessage, p, time.Now().Add(time.Second))
	}
	return c.Close()
}

// retryAfter reads a Retry-After header, seconds or an HTTP date (RFC 9110 §10.2.3); zero when
// absent or unreadable.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// sseStream is one /v1/events response.
type sseStream struct {
	body   io.ReadCloser
	br     *bufio.Reader
	cancel context.CancelFunc
}

func (d *Dialer) dialSSE(ctx context.Context, base, token, resume string) (*Conn, error) {
	sctx, cancel := context.WithCancel(context.Background()) // the stream outlives ctx
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, base+"/v1/events", nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if resume != "" {
		req.Header.Set("Last-Event-ID", resume)
	}
	stop := context.AfterFunc(ctx, cancel) // but the dial stops with ctx
	resp, err := d.sse.Do(req)
	stop()
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, handshakeError(SSE, resp)
	}
	c := &Conn{transport: SSE, sse: &sseStream{body: resp.Body, cancel: cancel, br: bufio.NewReaderSize(resp.Body, d.ReadBufferSize)}}
	c.touch()
	return c, nil
}

// read parses the stream as EventSource does (WHATWG HTML, "Server-sent events", "Event stream
// interpretation"): field lines build an event and a blank line dispatches it; blocks without a
// data line are not dispatched.
func (s *sseStream) read(c *Conn, fn func(data []byte, sseID string)) error {
	var long, data []byte
	var id string
	for {
		line, err := s.readLine(&long)
		if err != nil {
			return err
		}
		c.touch()
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			if len(data) > 0 {
				fn(data[:len(data)-1], id)
			}
			data, id = data[:0], ""
			continue
		}
		if line[0] == ':' {
			continue // a comment: the heartbeat
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				id = string(value)
			}
		case "data":
			data = append(append(data, value...), '\n')
		}
	}
}

// readLine returns the next line with its line ending, valid until the next call; a line
// longer than the buffer is assembled in *long.
func (s *sseStream) readLine(long *[]byte) ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		*long = append((*long)[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = s.br.ReadSlice('\n')
			*long = append(*long, line...)
		}
		line = *long
	}
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF // a stream never ends on its own
	}
	return line, err
}

func (s *sseStream) close() {
	s.cancel()
	s.body.Close()
}
