package realtime

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

// The disconnects the server uses. README.md ("Close codes") documents them for client authors.
var (
	// DisconnectShutdown: the node is shutting down (1001 Going Away); reconnect, to any node.
	DisconnectShutdown = Disconnect{Code: 1001, Reason: "server shutting down", Reconnect: true, flush: true}
	// DisconnectSlow: the connection's send queue overflowed because the client read too
	// slowly; reconnect with the cursor to get what was dropped.
	DisconnectSlow = Disconnect{Code: 4008, Reason: "slow: send queue overflowed", Reconnect: true}
	// DisconnectTokenExpired: the token's exp passed; reconnect with a fresh token.
	DisconnectTokenExpired = Disconnect{Code: 4001, Reason: "token expired", Reconnect: true, flush: true}
	// DisconnectClientGone: the client closed the connection, stopped answering pings, or a
	// write failed. Nothing is sent.
	DisconnectClientGone = Disconnect{Code: 1000, Reason: "client gone", Reconnect: true}
	// DisconnectProtocol: the client sent something the protocol does not allow.
	DisconnectProtocol = Disconnect{Code: 1002, Reason: "protocol error", Reconnect: false, flush: true}
)
