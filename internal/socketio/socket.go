package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// The default namespace; the only one this server has.
const defaultNamespace = "/"

// maxPIDLen bounds the recovery pid a client may send back (ours are 20 characters).
const maxPIDLen = 64

// pendingBinary is a BINARY_EVENT or BINARY_ACK waiting for its attachments (socket.io-protocol
// v5: the attachments follow the packet as binary Engine.IO messages). Their bytes are counted,
// not kept, and of the packet's payload only the event name is: no client event of this server
// takes binary arguments (a "refresh" token is a string), so a client that never sends the
// attachments holds no buffer.
type pendingBinary struct {
	packet sioPacket
	left   int
}

// onMessage handles an Engine.IO message: a Socket.IO packet, or one binary attachment of the
// pending binary packet. Text while attachments are awaited, an attachment when none is, or a
// malformed packet is an error, and the caller closes the session (as socket.io-parser throws).
func (s *session) onMessage(p eioPacket) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if p.binary {
		if s.bin == nil {
			return errors.New("socket.io: binary data without a binary packet")
		}
		if s.bin.left--; s.bin.left > 0 {
			return nil
		}
		pkt := s.bin.packet
		s.bin = nil
		return s.handle(pkt)
	}
	if s.bin != nil {
		return errors.New("socket.io: text data while binary attachments are awaited")
	}
	pkt, err := decodeSIO(p.data)
	if err != nil {
		return err
	}
	if pkt.attachments > 0 {
		name, isString, _ := eventName(pkt.data)
		pkt.data = []byte("[0]")
		if isString && pkt.typ == sioBinaryEvent {
			pkt.data, _ = json.Marshal([]string{name})
		}
		s.bin = &pendingBinary{packet: pkt, left: pkt.attachments}
		return nil
	}
	return s.handle(pkt)
}

// handle acts on a complete Socket.IO packet (socket.io-protocol v5, "Exchange protocol").
// Another namespace's CONNECT is refused with CONNECT_ERROR "Invalid namespace", as the reference
// server answers. On "/": CONNECT authenticates and attaches to the hub; DISCONNECT closes the
// session (the client closes its Engine.IO connection too); EVENT with an ack id gets an ACK;
// ACK is ignored (the server asks for none). Any other packet before the client is connected to
// "/", whatever its namespace, is an error ("If the server does not receive a CONNECT packet
// first, then it MUST close the connection immediately"); once it is, packets to another
// namespace are ignored, as the reference server ignores packets of a namespace the client has
// not joined. A second CONNECT to "/" or a CONNECT_ERROR from the client is an error too. An
// EVENT "refresh" refreshes the token in place (see refresh).
func (s *session) handle(p sioPacket) error {
	connected := s.conn.Load() != nil
	if p.nsp != defaultNamespace {
		switch {
		case p.typ == sioConnect:
			s.sendControl(messagePacket(sioPacket{typ: sioConnectError, nsp: p.nsp, data: invalidNamespace}))
		case !connected:
			return errors.New("socket.io: packet before CONNECT")
		}
		return nil
	}
	switch p.typ {
	case sioConnect:
		if connected {
			return errors.New("socket.io: second CONNECT to /")
		}
		return s.connect(p.data)
	case sioDisconnect:
		s.close()
		return nil
	case sioConnectError:
		return errors.New("socket.io: CONNECT_ERROR from a client")
	}
	if !connected {
		return errors.New("socket.io: packet before CONNECT")
	}
	if p.typ != sioEvent && p.typ != sioBinaryEvent {
		return nil
	}
	if name, isString, _ := eventName(p.data); isString && name == eventRefresh {
		s.refresh(p)
	} else if isString && name == eventRead {
		s.read(p)
	} else if p.hasID {
		s.ack(p)
	}
	return nil
}

var invalidNamespace = []byte(`{"message":"Invalid namespace"}`)

// connectPayload is what a client sends in CONNECT: its auth object, plus pid and offset when
// socket.io-client attempts connection state recovery. Token, PID and Offset are kept raw: a
// non-string is "absent", as socket.io's recovery reads them. CursorArg and Cursor are this
// server's own: a value of the wrong type is refused (see connect).
type connectPayload struct {
	Token  json.RawMessage `json:"token"`
	PID    json.RawMessage `json:"pid"`
	Offset json.RawMessage `json:"offset"`
	// CursorArg, a boolean, says whether events carry the trailing {"id"} argument (absent:
	// Config.NoCursorArg decides); false is the plain shape (realtime.FormatSocketIOPlain).
	CursorArg json.RawMessage `json:"cursorArg"`
	// Cursor, a string, is a resume token, "<cursor>" or "<cursor>~<id>,<id>,..."
	// (realtime.ParseResume), for clients without socket.io's recovery.
	Cursor json.RawMessage `json:"cursor"`
}

// Names of the CONNECT auth members this server adds to socket.io's.
const (
	authCursorArg = "cursorArg"
	authCursor    = "cursor"
)

// cursorOptions reads cp's cursorArg and cursor: whether events go without the trailing argument
// (plain), and the resume token ("" for none). A cursorArg that is not a boolean or a
// cursor that is not a string is an error, whose text is the CONNECT_ERROR message.
func (cp connectPayload) cursorOptions(noCursorArg bool) (plain bool, cursor string, err error) {
	plain = noCursorArg
	switch string(cp.CursorArg) {
	case "":
	case "true":
		plain = false
	case "false":
		plain = true
	default:
		return false, "", errors.New("auth." + authCursorArg + " must be true or false")
	}
	if len(cp.Cursor) > 0 {
		if cursor = jsonString(cp.Cursor); cursor == "" {
			return false, "", errors.New("auth." + authCursor + " must be a cursor string")
		}
	}
	return plain, cursor, nil
}

// connect authenticates a CONNECT to "/" and attaches the session to the hub. The token is the
// payload's "token" (socket.io-client's `auth: { token }`), else the handshake request's. A
// missing or invalid token gets CONNECT_ERROR {"message": <reason>, "data": {"code":
// "unauthorized"}}, and the session stays open for the client to close. On success the CONNECT
// reply {"sid","pid"} precedes every event (see attach).
//
// Recovery (socket.io v4.6 connection state recovery): a client that sends back its pid and an
// offset (the cursor of the last cursor packet it got, at least the opening one) gets what it
// missed replayed from that cursor, then a cursor packet past it. If the hub honours the cursor
// the client keeps its pid, so socket.io-client reports `socket.recovered`; if not (malformed,
// from another cluster, expired, too far behind) it gets a new pid and a "resync" event, never
// silence. A client without socket.io's recovery resumes the same way with auth "cursor": <the
// last cursor it got>, optionally followed by "~" and the IDs of the events it got after it,
// which the replay leaves out (realtime.ParseResume; an offset may be such a token too); pid and
// offset win when both are sent; it always gets a new pid. Without either it gets the opening
// cursor packet, then live events.
//
// The shapes (docs/socketio-conformance.md, "The cursor"): every event is
// `42["<event>",<data>,{"id":"<id>"}]` and a cursor packet `42["cursor",null,"<cursor>"]`
// (socket.io-client's recovery keeps the last string argument as its offset: the cursor, never
// an ID), unless auth "cursorArg" is false, or absent with Config.NoCursorArg: then
// `42["<event>",<data>]`, each event followed by `42["cursor",{"id":"<id>"}]`, and a cursor
// packet is `42["cursor","<cursor>"]` (realtime.FormatSocketIOPlain). A cursorArg that is not a
// boolean or a cursor that is not a string gets CONNECT_ERROR with data.code "bad-request".
//
// A verified token ends the session's pending admission (Ticket.Authenticated) even if the hub
// then refuses the connection: the client is known, and the auth timeout still closes a session
// that does not attach.
func (s *session) connect(data []byte) error {
	var cp connectPayload
	if len(data) > 0 {
		if err := json.Unmarshal(data, &cp); err != nil {
			return err
		}
	}
	token := jsonString(cp.Token)
	if token == "" {
		s.mu.Lock()
		token = s.token
		s.mu.Unlock()
	}
	if token == "" {
		s.connectError("no token: connect with io(url, { auth: { token } })")
		return nil
	}
	claims, err := s.h.cfg.Verifier.Verify(token)
	if err != nil {
		s.connectError(err.Error())
		return nil
	}
	plain, cursor, err := cp.cursorOptions(s.h.cfg.NoCursorArg)
	if err != nil {
		s.refuse("bad-request", err.Error())
		return nil
	}
	s.plain.Store(plain)
	// The client is authenticated: its session leaves admission's pending count and gets the
	// larger message limit. If attaching fails (the user's connection cap, shutdown), a client
	// past the auth timeout is closed then.
	if s.authed.CompareAndSwap(false, true) && s.ticket != nil {
		s.ticket.Authenticated()
	}
	s.mu.Lock()
	s.connecting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.connecting = false
		expired := s.authExpired && s.conn.Load() == nil
		s.mu.Unlock()
		if expired {
			s.authTimedOut()
		}
	}()

	if s.h.isDown() {
		s.close()
		return nil
	}
	o := realtime.ConnOptions{User: claims.UserID, Transport: s, Expires: claims.Expires, Paused: true}
	pid := newID()
	var c *realtime.Conn
	recovered := false // resumed, every missed event queued
	oldPID, offset := jsonString(cp.PID), jsonString(cp.Offset)
	if oldPID == "" || offset == "" {
		oldPID, offset = "", cursor
	}
	if offset != "" {
		// The replay runs before the reply: the client keeps its pid (socket.recovered) only if
		// every missed event is on its way; otherwise it gets a new pid and a "resync" event.
		ctx, cancel := context.WithTimeout(context.Background(), s.h.cfg.ReplayTimeout)
		c, recovered, err = s.h.hub.AttachResume(ctx, o, offset)
		cancel()
		if recovered && oldPID != "" && len(oldPID) <= maxPIDLen {
			pid = oldPID
		}
	} else {
		c, err = s.h.hub.Attach(context.Background(), o, "")
	}
	if errors.Is(err, realtime.ErrTooManyConnections) {
		s.refuse("too-many-connections", "too many connections: this user holds REALTIME_MAX_CONNECTIONS_PER_USER on this node already")
		return nil
	}
	if err != nil { // the hub is shutting down: the client reconnects elsewhere
		s.close()
		return nil
	}
	reply, _ := json.Marshal(struct {
		SID string `json:"sid"`
		PID string `json:"pid"`
	}{newID(), pid})
	// The connection is held (Paused) until the reply is written: it precedes every event,
	// and no event published once the client is told it is connected is missed.
	if !s.writeDirect(messagePacket(sioPacket{typ: sioConnect, nsp: defaultNamespace, data: reply})) {
		c.Close(realtime.DisconnectClientGone)
		s.close()
		return nil
	}
	c.Resume(nil)
	s.conn.Store(c)
	if s.closed.Load() { // closed before it could see c
		c.Close(realtime.DisconnectClientGone)
		return nil
	}
	s.mu.Lock()
	s.token = ""
	if s.connectTimer != nil {
		s.connectTimer.Stop()
		s.connectTimer = nil
	}
	s.mu.Unlock()
	s.h.connected(recovered)
	return nil
}

// connectError refuses a CONNECT to "/" with a message a UI can show and a machine-readable
// data.code: "unauthorized" (no or a bad token) or "too-many-connections".
func (s *session) connectError(message string) { s.refuse("unauthorized", message) }

func (s *session) refuse(code, message string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
		Data    any    `json:"data"`
	}{message, map[string]string{"code": code}})
	s.h.m.connects.WithLabelValues(code).Inc()
	s.writeDirect(messagePacket(sioPacket{typ: sioConnectError, nsp: defaultNamespace, data: body}))
}

// ack answers a client event that asked for an acknowledgement: "whoami" gets
// [{"userId": <the connection's user>}], any other event [{"error": "unknown-event"}]. The ACK is
// queued on the hub connection, after the events already queued.
func (s *session) ack(p sioPacket) {
	c := s.conn.Load()
	var payload []byte
	if name, isString, _ := eventName(p.data); isString && name == "whoami" {
		payload, _ = json.Marshal([]map[string]string{{"userId": c.User()}})
	} else {
		payload = []byte(`[{"error":"unknown-event"}]`)
	}
	c.Send(messagePacket(sioPacket{typ: sioAck, nsp: defaultNamespace, hasID: true, id: p.id, data: payload}))
}

// eventRefresh is the client event that refreshes the connection's token in place.
const eventRefresh = "refresh"

// refresh handles `socket.emitWithAck("refresh", token)` (or emit without an ack): the token, a
// string, is verified as at CONNECT and, if it is the connection's user's, the connection's
// expiry moves to its exp (realtime.Conn.Refresh) and the ack is [{"expiresAt": RFC 3339}]. An
// invalid token (or none, or not a string) is acknowledged with [{"error": "invalid-token",
// "message": <reason>}] and the connection closes at its current expiry, as before. A token of
// another user is acknowledged with [{"error": "other-user", ...}], then the connection is
// closed with a Socket.IO DISCONNECT of "/" (socket.io-client reports "io server disconnect" and
// does not reconnect by itself: the application reconnects with the other user's token) and the
// Engine.IO close. Answers are queued on the hub connection, in order with the events.
func (s *session) refresh(p sioPacket) {
	c := s.conn.Load()
	var args []json.RawMessage
	json.Unmarshal(p.data, &args) // valid: decodeSIO checked it
	token := ""
	if len(args) > 1 {
		token = jsonString(args[1])
	}
	expires, err := c.Refresh(s.h.cfg.Verifier, token)
	var answer any
	switch {
	case errors.Is(err, realtime.ErrOtherUser):
		answer = map[string]string{"error": "other-user", "message": err.Error()}
	case err != nil:
		answer = map[string]string{"error": "invalid-token", "message": err.Error()}
	default:
		answer = map[string]string{"expiresAt": expires.UTC().Format(time.RFC3339)}
	}
	if p.hasID {
		payload, _ := json.Marshal([]any{answer})
		c.Send(messagePacket(sioPacket{typ: sioAck, nsp: defaultNamespace, hasID: true, id: p.id, data: payload}))
	}
	if errors.Is(err, realtime.ErrOtherUser) {
		c.Send(messagePacket(sioPacket{typ: sioDisconnect, nsp: defaultNamespace}))
		c.Close(realtime.DisconnectOtherUser)
	}
}

// eventRead is the client event of a read receipt (docs/presence-and-receipts.md, "Receipts").
const eventRead = "read"

// read handles `socket.emit("read", id)` (or emitWithAck): the argument, a string, is the
// event's ID, the "id" of its trailing {"id"} argument (or of the `cursor` packet after a plain
// event), passed to realtime.Conn.Read. The ack, if asked for, is [{"ok":true}] or
// [{"error":"bad-event-id"}].
func (s *session) read(p sioPacket) {
	c := s.conn.Load()
	var args []json.RawMessage
	json.Unmarshal(p.data, &args) // valid: decodeSIO checked it
	id := ""
	if len(args) > 1 {
		id = jsonString(args[1])
	}
	err := c.Read(id)
	if p.hasID {
		payload := []byte(`[{"ok":true}]`)
		if err != nil {
			payload = []byte(`[{"error":"bad-event-id"}]`)
		}
		c.Send(messagePacket(sioPacket{typ: sioAck, nsp: defaultNamespace, hasID: true, id: p.id, data: payload}))
	}
}

// jsonString returns raw as a string if it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// splitPackets returns frames with every frame that holds several Engine.IO packets (a
// realtime.FormatSocketIOPlain event and its cursor packet, joined by the record separator)
// split into one element per packet, for WebSocket, which sends each packet as its own message.
// It returns frames itself when none needs splitting.
func splitPackets(frames [][]byte) [][]byte {
	var out [][]byte
	for i, f := range frames {
		if bytes.IndexByte(f, realtime.SocketIOPacketSeparator) < 0 {
			if out != nil {
				out = append(out, f)
			}
			continue
		}
		if out == nil {
			out = append(make([][]byte, 0, 2*len(frames)), frames[:i]...)
		}
		for p := range bytes.SplitSeq(f, []byte{realtime.SocketIOPacketSeparator}) {
			out = append(out, p)
		}
	}
	if out == nil {
		return frames
	}
	return out
}
