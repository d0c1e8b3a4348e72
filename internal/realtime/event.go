package realtime

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// Format is a wire format a transport needs an event framed in. Each Event encodes itself at most
// once per Format, the first time a connection of that format needs it, and shares the bytes with
// every other connection of that format (fan-out encodes once, not once per connection).
type Format uint8

const (
	// FormatWebSocket is a complete WebSocket text frame (RFC 6455 §5.2, unmasked, FIN set)
	// whose payload is the JSON frame of docs/design.md, "Client frames".
	FormatWebSocket Format = iota
	// FormatSSE is one Server-Sent Events block: "data: <JSON frame>\n\n" (WHATWG HTML,
	// "Server-sent events"). Events have no "id:" line: the browser's Last-Event-ID stays the
	// cursor of the last cursor frame, whose block is "id: <cursor>\ndata: <JSON frame>\n\n".
	// No "event:" line either, so EventSource's onmessage receives every frame; the event name
	// is inside the JSON.
	FormatSSE
	// FormatSocketIO is a Socket.IO EVENT packet inside an Engine.IO message packet:
	// `42["<event>",<data>,{"id":"<id>"}]` (socket.io-protocol v5, engine.io-protocol v4), as
	// bare text: the Socket.IO transport joins it into a polling payload or prefixes the
	// WebSocket frame header itself, since one Socket.IO connection can move from polling to
	// WebSocket. The trailing argument is an object, not a string, so that socket.io-client's
	// recovery offset (the last string argument it got) stays the cursor of the last
	// `42["cursor",null,"<cursor>"]` packet.
	FormatSocketIO
	// FormatSocketIOPlain is FormatSocketIO without the trailing argument, for clients whose
	// handlers take exactly the event's arguments (python-socketio calls a handler with every
	// argument and fails on one it did not declare): `42["<event>",<data>]`, then the record
	// separator 0x1E and the packet `42["cursor",{"id":"<id>"}]` (engine.io-protocol v4 separates
	// polling packets with 0x1E; JSON text never holds a raw 0x1E, RFC 8259 §7). The transport
	// sends the two as two Engine.IO packets. Cursor frames are `42["cursor","<cursor>"]`: the
	// client's `cursor` handler gets either a cursor (a string) or an event's ID (an object).
	FormatSocketIOPlain

	numFormats
)

// Event is a notification on its way to connections: the decoded record and its frames.
type Event struct {
	notification.Event
	// Cursor is set only on control frames (see Control): the resume position they carry.
	// Events carry their ID alone (see cursor.go).
	Cursor string
	// Delivered is how many connections Hub.Publish queued the event for, set once it returns
	// (0 for events that did not come from Publish, such as replayed ones).
	Delivered int

	id     string
	frames [numFormats]lazyFrame
	// one holds the only recipient of a single-user event (most are): UserIDs points here, not
	// into the decoder's buffers, so a kept event (the history) holds nothing else of them.
	one [1]string
}

type lazyFrame struct {
	once sync.Once
	b    []byte
}

// NewEvent wraps a decoded notification for the hub.
func NewEvent(n *notification.Event) *Event {
	e := &Event{Event: *n, id: n.ID()}
	if len(n.UserIDs) == 1 {
		e.one[0] = n.UserIDs[0]
		e.UserIDs = e.one[:]
	}
	return e
}

// ID is the event ID "<topic>:<partition>:<offset>".
func (e *Event) ID() string { return e.id }

// Frame returns the event framed in f, encoding it on first use. The bytes are shared: callers
// must not modify them. Safe for concurrent use.
func (e *Event) Frame(f Format) []byte {
	lf := &e.frames[f]
	lf.once.Do(func() { lf.b = e.encode(f) })
	return lf.b
}

func (e *Event) encode(f Format) []byte {
	// One allocation per frame: room for the frame with its strings unescaped (an escape only
	// makes append grow it).
	size := len(e.id) + len(e.Name) + len(e.Data) + len(e.Cursor) + 96
	switch f {
	case FormatWebSocket:
		// The JSON after room for the longest header, then the header right before it.
		b := e.appendJSON(make([]byte, maxWSHeader, maxWSHeader+size))
		return putWSHeader(b, maxWSHeader, opText)
	case FormatSSE:
		b := append(make([]byte, 0, size+8), "data: "...)
		b = e.appendJSON(b)
		return append(b, "\n\n"...)
	case FormatSocketIO:
		return e.appendSocketIO(make([]byte, 0, size))
	case FormatSocketIOPlain:
		return e.appendSocketIOPlain(make([]byte, 0, size+len(e.id)))
	}
	panic("realtime: unknown frame format " + strconv.Itoa(int(f)))
}

// appendJSON appends the JSON frame of docs/design.md, "Client frames":
// {"id","event","data","time"}, and "cursor" for a control frame that carries one.
func (e *Event) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.id)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, e.Name)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	b = append(b, `,"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, '"')
	if e.Cursor != "" {
		b = append(b, `,"cursor":`...)
		b = appendJSONString(b, e.Cursor)
	}
	return append(b, '}')
}

// appendSocketIO appends `42["<event>",<data>,{"id":"<id>"}]`: Engine.IO message (4) carrying
// a Socket.IO EVENT (2) to the default namespace. A control frame ends with its cursor instead,
// or with nothing when it carries none: `42["<event>",<data>,"<cursor>"]`: the string that Socket.IO connection state
// recovery (socket.io v4.6) keeps as its offset and sends back on reconnect. Listeners that take
// one argument never see the trailing one.
func (e *Event) appendSocketIO(b []byte) []byte {
	b = append(b, `42[`...)
	b = appendJSONString(b, e.Name)
	b = append(b, ',')
	b = append(b, e.Data...)
	switch {
	case e.Cursor != "":
		b = append(b, ',')
		b = appendJSONString(b, e.Cursor)
	case e.id != "":
		b = append(b, ',')
		b = appendIDObject(b, e.id)
	}
	return append(b, ']')
}

// appendIDObject appends {"id":"<id>"}.
func appendIDObject(b []byte, id string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	return append(b, '}')
}

// appendSocketIOPlain appends `42["<event>",<data>]`, then 0x1E and `42["cursor",{"id":"<id>"}]`
// for an event, `42["cursor","<cursor>"]` for a control frame carrying a cursor, nothing for
// one without (see FormatSocketIOPlain).
func (e *Event) appendSocketIOPlain(b []byte) []byte {
	b = append(b, `42[`...)
	b = appendJSONString(b, e.Name)
	b = append(b, ',')
	b = append(b, e.Data...)
	b = append(b, ']')
	switch {
	case e.Cursor != "":
		return appendSocketIOCursor(append(b, SocketIOPacketSeparator), e.Cursor)
	case e.id == "": // a control frame without a cursor
		return b
	}
	b = append(b, SocketIOPacketSeparator)
	b = append(b, `42["`+cursorEvent+`",`...)
	b = appendIDObject(b, e.id)
	return append(b, ']')
}

// appendSocketIOCursor appends the plain cursor packet `42["cursor","<cursor>"]`.
func appendSocketIOCursor(b []byte, cursor string) []byte {
	b = append(b, `42["`+cursorEvent+`",`...)
	b = appendJSONString(b, cursor)
	return append(b, ']')
}

// SocketIOPacketSeparator separates the Engine.IO packets of one FormatSocketIOPlain frame: the
// record separator of engine.io-protocol v4's long-polling payloads.
const SocketIOPacketSeparator = 0x1e

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// secondText is the text of one second in timeLayout, up to the seconds.
type secondText struct {
	unix int64
	text [len("2006-01-02T15:04:05")]byte
}

// lastSecond is the last second appendTime formatted: the events of one second share it.
var lastSecond atomic.Pointer[secondText]

// appendTime appends t in UTC in timeLayout, as t.UTC().AppendFormat(b, timeLayout) does, with
// the date and the time of day formatted once per second, not once per event.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 { // the year is not four digits: leave it to time
		return t.AppendFormat(b, timeLayout)
	}
	sec := t.Unix()
	st := lastSecond.Load()
	if st == nil || st.unix != sec {
		st = &secondText{unix: sec}
		t.AppendFormat(st.text[:0], "2006-01-02T15:04:05")
		lastSecond.Store(st)
	}
	ms := t.Nanosecond() / 1e6
	b = append(b, st.text[:]...)
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendJSONString appends s as a JSON string (RFC 8259 §7) with encoding/json's escaping
// (json.Marshal's: HTML-safe, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD). A string of
// plain ASCII, as event IDs, event names and cursors are, is copied as it is.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// cursorEvent names the control frame that carries the client's cursor (see cursor.go and
// Conn.SendCursor): {"id":"","event":"cursor","data":null,"time":...,"cursor":"..."} on
// WebSocket; on SSE "id: <cursor>" and {"id":"","event":"cursor","data":null,"time":...} (the
// browser keeps the id line as its Last-Event-ID; EventSource scripts read it as the message's
// lastEventId); `42["cursor",null,"<cursor>"]` on Socket.IO (socket.io-client keeps the last
// argument as its recovery offset), `42["cursor","<cursor>"]` on plain Socket.IO.
const cursorEvent = "cursor"

// Control is a message the server itself sends a client: a resync notice, a disconnect reason,
// or a fresh cursor.
// It is framed like an event, with an empty id and no cursor change unless Cursor is set.
type Control struct {
	Event  string // "resync" or "disconnect"
	Data   any    // JSON-encodable payload
	Cursor string
}

// Frame encodes c in format f (for control messages that are not shared, encoding per
// connection is fine).
func (c Control) Frame(f Format) []byte {
	if c.Event == cursorEvent && f == FormatSSE {
		// The id line is the cursor, which EventSource keeps as its Last-Event-ID; the data
		// does not repeat it (scripts read the message's lastEventId).
		ev := &Event{Event: notification.Event{Name: c.Event, Data: []byte("null"), Time: time.Now()}}
		return sseFrame(c.Cursor, ev.appendJSON(nil))
	}
	if c.Event == cursorEvent && f == FormatSocketIOPlain {
		return appendSocketIOCursor(nil, c.Cursor)
	}
	data, err := json.Marshal(c.Data)
	if err != nil {
		data = []byte("null")
	}
	ev := &Event{Event: notification.Event{Name: c.Event, Data: data, Time: time.Now()}, Cursor: c.Cursor}
	if f == FormatSSE {
		// Without an id line (no cursor) the browser keeps its Last-Event-ID.
		return sseFrame(c.Cursor, ev.appendJSON(nil))
	}
	return ev.encode(f)
}
