package client

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Event is one notification as the application gets it (docs/client-protocol.md, "Frames").
type Event struct {
	// ID is "<topic>:<partition>:<offset>", unique per notification and the same on every node.
	ID string
	// Name is the event name: "concept-mastered", "session-starting-soon", or the record's
	// event-type header.
	Name string
	// Data is the record value without its userIds, as JSON.
	Data json.RawMessage
	// Time is the record's timestamp (RFC 3339 on the wire); zero when the frame had none.
	Time time.Time
	// Topic, Partition and Offset are the Kafka position the ID names.
	Topic     string
	Partition int32
	Offset    int64
}

// Frame is one JSON frame of /v1/ws or /v1/events, event or control frame
// (docs/client-protocol.md, "Frames" and "Cursor"). Control frames have an empty ID: "cursor"
// and "resync" carry the cursor (SSE: on the block's id line instead), "disconnect" (SSE) says
// why the stream ends, "refreshed" and "refresh-error" (WebSocket) answer a token refresh.
type Frame struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Time   string          `json:"time"`
	Cursor string          `json:"cursor"`
}

// ParseFrame decodes a frame's JSON. sseID is the SSE block's id line ("" on WebSocket): for
// cursor and resync frames on SSE it is the cursor, and it fills Cursor when the JSON has none.
func ParseFrame(data []byte, sseID string) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return Frame{}, err
	}
	if f.Cursor == "" && f.ID == "" {
		f.Cursor = sseID
	}
	return f, nil
}

// event returns the Event of an event frame (ID not empty).
func (f *Frame) event() Event {
	ev := Event{ID: f.ID, Name: f.Event, Data: f.Data}
	if f.Time != "" {
		ev.Time, _ = time.Parse(time.RFC3339Nano, f.Time)
	}
	ev.Topic, ev.Partition, ev.Offset, _ = ParseID(f.ID)
	return ev
}

// ParseID splits an event ID "<topic>:<partition>:<offset>" (topic names hold no colon:
// Kafka allows [a-zA-Z0-9._-]); ok is false for anything else.
func ParseID(id string) (topic string, partition int32, offset int64, ok bool) {
	j := strings.LastIndexByte(id, ':')
	if j < 0 {
		return "", 0, 0, false
	}
	i := strings.LastIndexByte(id[:j], ':')
	if i <= 0 {
		return "", 0, 0, false
	}
	p, err1 := strconv.ParseInt(id[i+1:j], 10, 32)
	o, err2 := strconv.ParseInt(id[j+1:], 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return "", 0, 0, false
	}
	return id[:i], int32(p), o, true
}

// Resync is a resume the server could not honour (docs/client-protocol.md, "Resync"): the
// application reloads what it shows from past events; the client goes on from the new cursor.
type Resync struct {
	// Reason is malformed, other-cluster, unknown-topic, expired, too-far-behind,
	// ahead-of-log or unavailable.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}
