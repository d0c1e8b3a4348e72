package realtime

import (
	"errors"
	"strconv"
	"strings"
)

// clientRead is the /v1/ws client frame of a read receipt: {"type":"read","id":"<event id>"}.
const clientRead = "read"

// TransportCounts are one user's live connections on a hub, per transport.
type TransportCounts struct {
	WebSocket, SSE, SocketIO int
}

// Total is the sum over the transports.
func (t TransportCounts) Total() int { return t.WebSocket + t.SSE + t.SocketIO }

// PresenceSink is told how many connections a user holds on the hub each time that changes (the
// first one opens, one more opens or closes, the last one closes), in the order of the changes.
// Data flows one way, hub -> sink: the sink (package presence) produces presence records.
type PresenceSink interface {
	// Connections is called with the user's new counts, all zero once the last connection
	// closed. It is called under the hub's lock for that user: it must not block nor call the
	// hub.
	Connections(user string, n TransportCounts)
}

// ReceiptSink is told of delivery and read receipts (docs/presence-and-receipts.md). Transports
// are named "websocket", "sse" or "socketio". Both methods must not block (package receipts
// queues and drops when full).
type ReceiptSink interface {
	// Delivered is called by a connection's writer once the frames of the live events ids (event
	// IDs, "<topic>:<partition>:<offset>") were written to the connection. ids is only valid
	// during the call.
	Delivered(user, transport string, ids []string)
	// Read is called when the user's client said it read the event id.
	Read(user, transport, id string)
}

// ErrBadEventID is returned by Hub.Read for an ID that is not "<topic>:<partition>:<offset>"
// (docs/presence-and-receipts.md, "Receipts").
var ErrBadEventID = errors.New("realtime: not an event ID (<topic>:<partition>:<offset>)")

// MaxEventIDLen bounds an event ID a client sends: a topic name of at most 249 bytes (Kafka's
// limit), a partition and an offset.
const MaxEventIDLen = 249 + 1 + 10 + 1 + 19

// ValidEventID reports whether id has the form of an event ID, "<topic>:<partition>:<offset>":
// a legal Kafka topic name, a partition and an offset in decimal.
func ValidEventID(id string) bool {
	if len(id) > MaxEventIDLen {
		return false
	}
	rest, off, ok := cutLast(id, ':')
	if !ok {
		return false
	}
	topic, part, ok := cutLast(rest, ':')
	if !ok || topic == "" || topic == "." || topic == ".." {
		return false
	}
	if _, err := strconv.ParseUint(part, 10, 31); err != nil {
		return false
	}
	if _, err := strconv.ParseUint(off, 10, 63); err != nil {
		return false
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// Receipts reports whether the hub produces receipts (HubConfig.Receipts is set).
func (h *Hub) Receipts() bool { return h.cfg.Receipts != nil }

// Read records that user read the events ids on transport ("websocket", "sse", "socketio"):
// a read receipt each. It returns ErrBadEventID, having recorded none, when an ID is malformed;
// without HubConfig.Receipts it records nothing.
func (h *Hub) Read(user, transport string, ids ...string) error {
	for _, id := range ids {
		if !ValidEventID(id) {
			return ErrBadEventID
		}
	}
	if h.cfg.Receipts == nil {
		return nil
	}
	for _, id := range ids {
		h.cfg.Receipts.Read(user, transport, id)
	}
	return nil
}

// Read records that the connection's client read the event id (see Hub.Read); an id that is not
// an event ID ("<topic>:<partition>:<offset>", which every event frame carries on every
// transport) is ErrBadEventID.
func (c *Conn) Read(id string) error {
	if !ValidEventID(id) {
		return ErrBadEventID
	}
	return c.hub.Read(c.user, formatName(c.format), id)
}

// presenceLocked tells HubConfig.Presence user's counts in conns; the caller holds the user's
// shard lock, so that the sink sees the changes in order.
func (h *Hub) presenceLocked(user string, conns []*Conn) {
	if h.cfg.Presence == nil {
		return
	}
	var n TransportCounts
	for _, c := range conns {
		switch c.format {
		case FormatWebSocket:
			n.WebSocket++
		case FormatSSE:
			n.SSE++
		default:
			n.SocketIO++
		}
	}
	h.cfg.Presence.Connections(user, n)
}
