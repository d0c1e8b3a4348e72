package main

import (
	"encoding/json"
	"fmt"

	client "github.com/realtime-service/realtime-service/clients/go"
)

// clientCursor is what a client keeps across its connections to resume exactly, as
// docs/client-protocol.md ("Cursor") asks of every client: the Go client's client.Resume (the
// cursor of the last cursor or resync frame, the IDs of the events received after it, and here
// every event ID received, to count each duplicate), plus the counts this tool reports. Its
// token is the resume token the client sends when it reconnects: "<cursor>" or
// "<cursor>~<id>,<id>,..." (WebSocket ?cursor=, SSE Last-Event-ID, Socket.IO recovery offset or
// auth cursor); the server then replays from the cursor and skips the listed IDs. It is not safe
// for concurrent use: the connection's reader owns it while the connection is open, the
// client's dialer between connections.
type clientCursor struct {
	r    *client.Resume
	dups int64 // events dropped because their ID was seen before
	noID int64 // events (not control frames) that came without an ID
}

// maxTokenIDs bounds the IDs a resume token lists. The server takes up to 4,096 and reads
// request lines and headers up to 64 KiB (the node's MaxHeaderBytes): 1,000 IDs of about 36
// bytes each, URL-escaped, stay well inside both. Past it the list keeps the last ID of each
// partition (client.Resume.MaxIDs). With a cursor frame every REALTIME_CURSOR_EVERY (32) events
// the list never gets near it.
const maxTokenIDs = 1000

func newClientCursor() *clientCursor {
	r := client.NewResume("", 0) // window 0: every ID, for an exact duplicate count
	r.MaxIDs = maxTokenIDs
	return &clientCursor{r: r}
}

// clone returns a copy of k, for another client resuming from the same state.
func (k *clientCursor) clone() *clientCursor {
	c := *k
	c.r = k.r.Clone()
	return &c
}

// token returns the resume token to send on the next connection; "" (connect afresh) before any
// cursor arrived.
func (k *clientCursor) token() string { return k.r.Token() }

// onCursor keeps c, the cursor of a cursor or resync frame ("" changes nothing).
func (k *clientCursor) onCursor(c string) { k.r.SetCursor(c) }

// onEvent accounts for an event with ID id and reports whether it is new to the client (false:
// drop it, the client has it already). An event without an ID is counted in noID and passed on.
func (k *clientCursor) onEvent(id string) bool {
	if id == "" {
		k.noID++
		return true
	}
	if k.r.Seen(id) {
		k.dups++
		return false
	}
	k.r.Add(id)
	return true
}

// readClientEvents reads fc until it ends, keeping k as a client of its transport does, and hands
// onEvent each control frame (id "") and each event new to the client (name, data, id); an event
// whose ID k has seen is dropped (counted in k.dups). Cursors come from: WebSocket, the frame's
// "cursor" field; SSE, a block's id line; Socket.IO, the last argument when it is a string
// (`42["cursor",null,"<cursor>"]`, as socket.io-client keeps its recovery offset), while an
// event's last argument is {"id":"<id>"}. Unparsable frames are counted in *foreign.
func readClientEvents(fc frameConn, k *clientCursor, foreign *int64, onEvent func(name string, data []byte, id string)) error {
	deliver := func(name string, data []byte, id string, control bool) {
		if control || k.onEvent(id) {
			onEvent(name, data, id)
		}
	}
	switch c := fc.(type) {
	case clientConn: // WebSocket and SSE: the cursor in the frame, or (SSE) on its id line
		return c.c.Read(func(b []byte, sseID string) {
			f, err := client.ParseFrame(b, sseID)
			if err != nil {
				(*foreign)++
				return
			}
			k.onCursor(f.Cursor)
			deliver(f.Event, f.Data, f.ID, f.ID == "" && isControl(f.Event))
		})
	case *sioConn:
		return c.read(func(b []byte) {
			var args []json.RawMessage
			var name string
			if json.Unmarshal(b, &args) != nil || len(args) == 0 || json.Unmarshal(args[0], &name) != nil {
				(*foreign)++
				return
			}
			var data []byte
			if len(args) > 1 {
				data = args[1]
			}
			var id string
			if len(args) > 2 {
				var cursor string
				var obj struct {
					ID string `json:"id"`
				}
				switch last := args[len(args)-1]; {
				case json.Unmarshal(last, &cursor) == nil:
					k.onCursor(cursor)
				case json.Unmarshal(last, &obj) == nil:
					id = obj.ID
				}
			}
			deliver(name, data, id, id == "" && isControl(name))
		})
	default:
		return fmt.Errorf("readClientEvents: connection %T", fc)
	}
}

// isControl reports whether name is one of the server's control frames (docs/client-protocol.md):
// they carry no ID, and are never de-duplicated.
func isControl(name string) bool {
	switch name {
	case "cursor", "resync", "disconnect", "refresh-error", "refreshed":
		return true
	}
	return false
}
