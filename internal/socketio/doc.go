// Package socketio serves Socket.IO clients (npm socket.io-client@4) at /socket.io/: the server
// side of the Engine.IO protocol v4 (the transports: HTTP long-polling, WebSocket and the upgrade
// from one to the other) and of the Socket.IO protocol v5 (namespaces, events, acknowledgements),
// just enough of both to deliver the hub's events to the default namespace "/".
//
// A browser that used to talk to the NestJS Socket.IO gateway changes only the URL and passes its
// JWT as `io(url, { auth: { token } })`; it then receives `socket.on(event, data => ...)` exactly
// as before, plus a trailing argument {"id":"<topic>:<partition>:<offset>"} to de-duplicate on.
// The resume position, the cursor, comes in `cursor` packets of its own (right after the CONNECT
// reply, after a resume's replay, every REALTIME_CURSOR_EVERY events, at a ping when the node
// moved, at shutdown): `42["cursor",null,"<cursor>"]`, whose trailing string socket.io-client's
// connection state recovery (socket.io v4.6) keeps as its offset and sends back on reconnect, so
// that missed events are replayed; an event's trailing object leaves that offset alone. Clients
// whose handlers take every argument (python-socketio) connect with auth `cursorArg: false`: they
// get exactly the payload, then `42["cursor",{"id":"<id>"}]`, cursors as `42["cursor","<cursor>"]`,
// and resume with auth `cursor` "<cursor>~<id>,<id>" (see connect). The shapes and their tests
// are listed in the repository's docs/socketio-conformance.md, "The cursor".
//
// Layers, one file each: eio.go (Engine.IO packet and payload codec), sio.go (Socket.IO packet
// codec), session.go (one Engine.IO session, its heartbeat and its realtime.Transport side),
// polling.go, websocket.go and upgrade.go (the transports), socket.go (the Socket.IO default
// namespace: authentication, recovery, acks, token refresh), handler.go (routing, errors, sessions), cors.go.
//
// What a client costs before it authenticates is bounded: admission caps the sessions without a
// verified CONNECT per node and per client address (429 or 503 at the handshake), such a session
// lives at most AuthTimeout (5 s) and may send messages of at most PreAuthMaxPayload (16 KiB),
// and every read has a deadline. Over WebSocket every close the server starts sends a Close
// frame (RFC 6455 §7.4.1), also on an upgrade probe and when a write is in progress (it follows
// that write): 1000 when the client asked or stopped answering pings, or the hub closed it; 1001
// at shutdown; 1002 for malformed input or a failed probe; 1008 past the auth timeout, for a
// second WebSocket on one session, or another policy; 1009 for a message over the limit.
// (engine.io's own WebSocket transport sends a Close without a status; socket.io-client
// reconnects whatever the code.)
//
// Where engine.io-protocol v4 says what a server must do, the handler does it; where it is
// silent, it does what the reference server (npm engine.io) does: the client's close packet on
// long-polling answers the pending GET with a noop, an aborted long-poll closes the session, a
// second WebSocket for a session is accepted and closed. The rules, the few deliberate
// differences and their tests (engineio_conformance_test.go) are listed in the repository's
// docs/socketio-conformance.md.
//
// Sessions live in the memory of the node that created them. HTTP long-polling sends each session's
// requests separately, so behind a load balancer with several nodes they need sticky sessions
// (by the `sid` query parameter or a cookie), exactly as a Node.js Socket.IO cluster does;
// WebSocket-only clients (`transports: ["websocket"]`) do not.
package socketio
