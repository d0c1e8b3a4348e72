package realtime

import (
	"fmt"
	"net/http"
)

// Disconnect says why the server closes a connection. Code is a WebSocket close code (RFC 6455
// §7.4; 4000-4999 are application codes) and is also what SSE and Socket.IO clients are told.
type Disconnect struct {
	Code   uint16
	Reason string
	// Reconnect tells the client whether reconnecting (with its cursor) makes sense.
	Reconnect bool
	// flush: frames already queued are delivered before the close (shutdown, expiry). Without
	// it they are dropped (slow consumer, client gone).
	flush bool
}

// The disconnects the server uses. docs/client-protocol.md ("Close codes") documents them for client authors.
var (
	// DisconnectShutdown: the node is shutting down (1001 Going Away); reconnect, to any node.
	DisconnectShutdown = Disconnect{Code: 1001, Reason: "server shutting down", Reconnect: true, flush: true}
	// DisconnectSlow: the connection's send queue overflowed because the client read too
	// slowly; reconnect with the cursor to get what was dropped.
	DisconnectSlow = Disconnect{Code: 4008, Reason: "slow: send queue overflowed", Reconnect: true}
	// DisconnectTokenExpired: the token's exp passed; reconnect with a fresh token.
	DisconnectTokenExpired = Disconnect{Code: 4001, Reason: "token expired", Reconnect: true, flush: true}
	// DisconnectClientGone: the client closed the connection or a write failed. A WebSocket
	// client that sent a close frame gets the 1000 echo (RFC 6455 §5.5.1); nothing else is sent.
	DisconnectClientGone = Disconnect{Code: 1000, Reason: "client gone", Reconnect: true}
	// DisconnectPingTimeout: the client answered no ping (nor sent anything) for
	// REALTIME_PING_INTERVAL + REALTIME_PONG_TIMEOUT: the network path is likely dead. The
	// frame is sent in case it is not; reconnect with the cursor.
	DisconnectPingTimeout = Disconnect{Code: 4002, Reason: "ping timeout", Reconnect: true}
	// DisconnectProtocol: the client sent something the protocol does not allow.
	DisconnectProtocol = Disconnect{Code: 1002, Reason: "protocol error", Reconnect: false, flush: true}
)

// writeTooManyConnections answers a client endpoint's request refused by
// HubConfig.MaxConnsPerUser with the HTTP layer's problem (RFC 9457, code too-many-connections),
// for the connects that pass its early check concurrently.
func writeTooManyConnections(w http.ResponseWriter, max int) {
	h := w.Header()
	for _, k := range []string{"Cache-Control", "X-Accel-Buffering", "Connection"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Retry-After", "10")
	w.WriteHeader(http.StatusTooManyRequests)
	fmt.Fprintf(w, `{"type":"/problems/too-many-connections","title":"Too many connections for this user","status":429,`+
		`"detail":"This user already holds %d connections on this node (REALTIME_MAX_CONNECTIONS_PER_USER): close one first.",`+
		`"code":"too-many-connections","errors":[]}`+"\n", max)
}
