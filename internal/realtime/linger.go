package realtime

import (
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// CloseLinger bounds how long LingerClose waits for a client to end the closing handshake.
const CloseLinger = 2 * time.Second

// LingerClose closes ws, whose close frame the server has written, without destroying that frame:
// it half-closes the socket (TCP FIN: the client reads the frame, then end of stream), discards
// what the client still sends until its close frame (the end of the closing handshake), end of
// stream, a read error or linger, and only then closes the socket. Closing a socket with input
// unread makes the kernel answer with a reset (RFC 1122 §4.2.2.13), which fails the client's
// pending write and can discard the close frame before the client reads it: browsers then report
// 1006 instead of the code sent. RFC 6455 §7.1.1 asks the server to close the TCP connection
// first, once the handshake is done; this is that, bounded. It blocks for at most linger, and
// returns at once if ws already failed (a read error is final in gorilla/websocket). The caller
// must be ws's only reader.
func LingerClose(ws *websocket.Conn, linger time.Duration) {
	nc := ws.NetConn()
	defer nc.Close()
	if err := nc.SetReadDeadline(time.Now().Add(linger)); err != nil {
		return // closed already
	}
	halfClose(nc)
	noop := func(string) error { return nil } // the close frame is out: answer nothing
	ws.SetPingHandler(noop)
	ws.SetPongHandler(noop)
	ws.SetCloseHandler(func(int, string) error { return nil })
	for {
		_, r, err := ws.NextReader() // discards the rest of a message being read
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
	}
}

// halfClose sends the end of the stream (a TCP FIN, or a TLS close_notify) when nc can.
func halfClose(nc net.Conn) {
	if hc, ok := nc.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
	}
}
