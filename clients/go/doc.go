// Package client is the Go client of realtime-service: it receives a user's notifications over
// WebSocket (/v1/ws) or Server-Sent Events (/v1/events) and makes "nothing missed" automatic,
// and it sends notifications and records through the service's HTTP API.
//
// Receiving ([New], [Client]) follows docs/client-protocol.md: the client keeps the cursor of
// the last cursor frame and the IDs of the events received after it, and sends them back as the
// resume token "<cursor>~<id>,<id>,..." on every reconnect (docs/design.md, "Cursor"), so the
// server replays what was missed and skips what was not; a copy that comes anyway is dropped on
// its event ID (a bounded window of the last IDs). It reconnects with full-jitter exponential
// backoff, falls back to SSE when the WebSocket upgrade is refused, reacts to resync frames,
// and fetches a new token before the current one's exp (in place on WebSocket, by a reconnect
// with the cursor on SSE).
//
// Guarantees: every notification Kafka holds for the user from the client's first connection on
// reaches OnEvent exactly once (after de-duplication), in offset order within each Kafka
// partition, for as long as Kafka keeps the records; past that the client gets a resync.
//
// Sending ([API]) covers the notification, record and batch endpoints of docs/http-api.md;
// errors are [*Problem] values decoded from the application/problem+json answers (RFC 9457).
//
// [Dialer] and [Conn] are the single-connection layer underneath: no reconnect, no
// de-duplication. The load tool (bench/) opens tens of thousands of connections with them.
package client
