package realtime

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/realtime-service/realtime-service/internal/admission"
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
	// DisconnectOtherUser: the client refreshed its token in place (Conn.Refresh) with a valid
	// token for another user; queued frames are delivered first. A connection belongs to one
	// user: open a new one with the other user's token.
	DisconnectOtherUser = Disconnect{Code: 4003, Reason: "token for another user", Reconnect: false, flush: true}
	// DisconnectPingTimeout: the client answered no ping (nor sent anything) for
	// REALTIME_PING_INTERVAL + REALTIME_PONG_TIMEOUT: the network path is likely dead. The
	// frame is sent in case it is not; reconnect with the cursor.
	DisconnectPingTimeout = Disconnect{Code: 4002, Reason: "ping timeout", Reconnect: true}
	// DisconnectProtocol: the client sent something the protocol does not allow.
	DisconnectProtocol = Disconnect{Code: 1002, Reason: "protocol error", Reconnect: false, flush: true}
	// DisconnectTooBig: the client sent a message larger than the endpoint accepts (1009
	// Message Too Big, RFC 6455 §7.4.1); /v1/ws clients send nothing larger than a refresh frame.
	DisconnectTooBig = Disconnect{Code: 1009, Reason: "message too big", Reconnect: false}
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

// writeBodyNotAllowed answers a client endpoint request that carries a body (Content-Length
// other than 0, or Transfer-Encoding) with 400 problem+json code "body-not-allowed", and closes
// the connection: net/http would otherwise read the body (before the headers, or after the
// handler), which a client that never ends it could hold without bound.
func writeBodyNotAllowed(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, `{"type":"/problems/body-not-allowed","title":"A stream request has no body","status":400,`+
		`"detail":"Open the stream with a GET without a body (no Content-Length, no Transfer-Encoding).",`+
		`"code":"body-not-allowed","errors":[]}`+"\n")
	// Taking the connection over sends the answer and keeps net/http from reading the rest of
	// the body once the handler returns (HTTP/2 cannot be taken over: its stream is reset).
	rc := http.NewResponseController(w)
	rc.Flush()
	if nc, _, err := rc.Hijack(); err == nil {
		nc.Close()
	}
}

// admit takes a slot of the node's connection cap (EndpointConfig.Admission) for an authenticated
// client connection; with no cap it returns a nil ticket. The error is an *admission.Refusal.
func admit(a *admission.Controller) (*admission.Ticket, error) {
	if a == nil {
		return nil, nil
	}
	return a.Connect()
}

// release gives back a ticket from admit; nil does nothing.
func release(t *admission.Ticket) {
	if t != nil {
		t.Release()
	}
}

// writeNodeFull answers a client endpoint's request refused by admission (the node holds
// REALTIME_MAX_CONNECTIONS client connections) with the HTTP layer's problem shape (RFC 9457,
// code node-full): 503 with Retry-After (RFC 9110 §15.6.4), since another node, or this one a
// little later, can take the client.
func writeNodeFull(w http.ResponseWriter, err error) {
	r, ok := admission.WriteHeaders(w, err)
	if !ok { // cannot happen: Connect fails with a *Refusal only
		r = admission.ErrNodeFull
		w.Header().Set("Retry-After", r.RetryAfterSeconds())
	}
	body, _ := json.Marshal(struct {
		Type   string   `json:"type"`
		Title  string   `json:"title"`
		Status int      `json:"status"`
		Detail string   `json:"detail"`
		Code   string   `json:"code"`
		Errors []string `json:"errors"`
	}{"/problems/node-full", "This node is full", r.Status,
		"This node holds as many client connections as it is configured for (REALTIME_MAX_CONNECTIONS): retry after Retry-After seconds, or on another node.",
		"node-full", []string{}})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(r.Status)
	w.Write(append(body, '\n'))
}
