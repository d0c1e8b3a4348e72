package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// clientCursor is what a client keeps across its connections to resume exactly, as
// docs/client-protocol.md ("Cursor") asks of every client: the cursor of the last cursor frame
// (or resync frame) it got, the IDs of the events it got after that frame, and every event ID
// it got, to drop an event it already has. Its token is the resume token the client sends when
// it reconnects: "<cursor>" or "<cursor>~<id>,<id>,..." (WebSocket ?cursor=, SSE Last-Event-ID,
// Socket.IO recovery offset or auth cursor); the server then replays from the cursor and skips
// the listed IDs, so that a client sending its IDs gets nothing twice. It is not safe for
// concurrent use: the connection's reader owns it while the connection is open, the client's
// dialer between connections.
type clientCursor struct {
	cursor string              // the last cursor received; "" before any
	ids    []string            // IDs of the events received after it, oldest first
	seen   map[string]struct{} // every event ID received
	dups   int64               // events dropped because their ID was seen before
	noID   int64               // events (not control frames) that came without an ID
}

// maxTokenIDs bounds the IDs a resume token lists. The server takes up to 4,096 and reads
// request lines and headers up to 64 KiB (the node's MaxHeaderBytes): 1,000 IDs of about 36
// bytes each, URL-escaped, stay well inside both. Past it the oldest IDs are dropped, so events
// known only by a dropped ID may come again, and are dropped by ID. With a cursor frame every
// REALTIME_CURSOR_EVERY (32) events the list never gets near it.
const maxTokenIDs = 1000

func newClientCursor() *clientCursor {
	return &clientCursor{seen: map[string]struct{}{}}
}

// clone returns a copy of k, for another client resuming from the same state.
func (k *clientCursor) clone() *clientCursor {
	c := *k
	c.ids = slices.Clone(k.ids)
	c.seen = maps.Clone(k.seen)
	return &c
}

// token returns the resume token to send on the next connection; "" (connect afresh) before any
// cursor arrived.
func (k *clientCursor) token() string {
	if k.cursor == "" {
		return ""
	}
	if len(k.ids) == 0 {
		return k.cursor
	}
	return k.cursor + "~" + strings.Join(k.ids, ",")
}

// onCursor keeps c, the cursor of a cursor or resync frame: it covers every event received before
// it, so the IDs kept so far are dropped.
func (k *clientCursor) onCursor(c string) {
	if c == "" {
		return
	}
	k.cursor = c
	k.ids = k.ids[:0]
}

// onEvent accounts for an event with ID id and reports whether it is new to the client (false:
// drop it, the client has it already). An event without an ID is counted in noID and passed on.
func (k *clientCursor) onEvent(id string) bool {
	if id == "" {
		k.noID++
		return true
	}
	if _, ok := k.seen[id]; ok {
		k.dups++
		return false
	}
	k.seen[id] = struct{}{}
	if k.cursor == "" {
		return true // before any cursor there is no position to add it to
	}
	if len(k.ids) == maxTokenIDs {
		k.ids = append(k.ids[:0], k.ids[1:]...)
	}
	k.ids = append(k.ids, id)
	return true
}

// clientFrame is the JSON frame of WebSocket and SSE (docs/client-protocol.md): an event has
// its ID and no cursor, a control frame an empty ID and, for cursor and resync frames, a cursor
// (on SSE in the block's id line instead).
type clientFrame struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Cursor string          `json:"cursor"`
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
	case *sseConn:
		return c.readEvents(func(idLine bool, id string, data []byte) {
			if idLine {
				k.onCursor(id) // the id line of a cursor or resync frame
			}
			if len(data) == 0 {
				return
			}
			var f clientFrame
			if json.Unmarshal(data, &f) != nil {
				(*foreign)++
				return
			}
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
		return fc.read(func(b []byte) {
			var f clientFrame
			if json.Unmarshal(b, &f) != nil {
				(*foreign)++
				return
			}
			k.onCursor(f.Cursor)
			deliver(f.Event, f.Data, f.ID, f.ID == "" && isControl(f.Event))
		})
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
