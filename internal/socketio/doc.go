// Package socketio serves Socket.IO clients (npm socket.io-client@4) at /socket.io/: the server
// side of the Engine.IO protocol v4 (the transports: HTTP long-polling, WebSocket and the upgrade
// from one to the other) and of the Socket.IO protocol v5 (namespaces, events, acknowledgements),
// just enough of both to deliver the hub's events to the default namespace "/".
//
// A browser that used to talk to the NestJS Socket.IO gateway changes only the URL and passes its
// JWT as `io(url, { auth: { token } })`; it then receives `socket.on(event, data => ...)` exactly
// as before, plus a trailing cursor argument that socket.io-client's connection state recovery
// (socket.io v4.6) keeps and sends back on reconnect, so that missed events are replayed.
//
// Layers, one file each: eio.go (Engine.IO packet and payload codec), sio.go (Socket.IO packet
// codec), session.go (one Engine.IO session, its heartbeat and its realtime.Transport side),
// polling.go, websocket.go and upgrade.go (the transports), socket.go (the Socket.IO default
// namespace: authentication, recovery, acks), handler.go (routing, errors, sessions), cors.go.
//
// Sessions live in the memory of the node that created them. HTTP long-polling sends each session's
// requests separately, so behind a load balancer with several nodes they need sticky sessions
// (by the `sid` query parameter or a cookie), exactly as a Node.js Socket.IO cluster does;
// WebSocket-only clients (`transports: ["websocket"]`) do not.
package socketio
