package presence

import (
	"encoding/json"
	"strconv"
	"time"
)

// AppendUser appends user's presence as the JSON object of docs/presence-and-receipts.md,
// "Presence API":
//
//	{"userId":"alice","online":true,"connections":2,
//	 "transports":{"websocket":1,"sse":1,"socketio":0},"nodes":["n1"],"since":"2026-11-29T10:00:00.000Z"}
//
// ("since" is null when offline). It writes straight into b under the view's read lock, with no
// allocation per user beyond b's growth, so that a query for 1,000 users answers in well under a
// millisecond (BENCHMARKS.md, "Presence and receipts").
func (v *View) AppendUser(b []byte, user string) []byte {
	now := v.cfg.Now()
	b = append(b, `{"userId":`...)
	b = appendString(b, user)
	v.mu.RLock()
	es := v.users[user]
	var n transports
	var since time.Time
	online := false
	for i := range es {
		e := &es[i]
		if !v.alive(e, now) {
			continue
		}
		online = true
		n.WebSocket += e.n.WebSocket
		n.SSE += e.n.SSE
		n.SocketIO += e.n.SocketIO
		if since.IsZero() || e.since.Before(since) {
			since = e.since
		}
	}
	b = append(b, `,"online":`...)
	b = strconv.AppendBool(b, online)
	b = append(b, `,"connections":`...)
	b = strconv.AppendInt(b, int64(n.WebSocket+n.SSE+n.SocketIO), 10)
	b = append(b, `,"transports":{"websocket":`...)
	b = strconv.AppendInt(b, int64(n.WebSocket), 10)
	b = append(b, `,"sse":`...)
	b = strconv.AppendInt(b, int64(n.SSE), 10)
	b = append(b, `,"socketio":`...)
	b = strconv.AppendInt(b, int64(n.SocketIO), 10)
	b = append(b, `},"nodes":[`...)
	first := true
	for i := range es {
		if e := &es[i]; v.alive(e, now) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, e.node)
		}
	}
	v.mu.RUnlock()
	b = append(b, `],"since":`...)
	if since.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = since.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string (RFC 8259 §7): as is when every byte is printable
// ASCII other than '"' and '\\' (user and node IDs nearly always are), else through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
