package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// Conformance to socket.io-protocol v5 (and socket.io v4.6's connection state recovery), one test
// per rule, named TestSIO_<section>_<rule>. Each drives the handler with raw Engine.IO frames over
// WebSocket (or long-polling where the transport matters) and checks the bytes it gets back.
// docs/socketio-conformance.md lists the rules, these tests, and our deliberate differences.

// sioServer is a server whose hub has a cursor codec and a replayer, so that events carry cursors
// and resumes replay. Pings come once a minute: no `cursor` control packet (sent at pings) comes
// between the packets a test expects.
type sioServer struct {
	*server
	replay *memReplayer
	offset int64
}

func newSIOServer(t *testing.T, cfg Config) *sioServer {
	t.Helper()
	if cfg.PingInterval == 0 {
		cfg.PingInterval, cfg.PongTimeout = time.Minute, time.Minute
	}
	rep := &memReplayer{}
	s := newServer(t, cfg, realtime.HubConfig{Replayer: rep})
	codec, err := realtime.NewCursorCodec("socketio-test-cluster", testTopics)
	if err != nil {
		t.Fatal(err)
	}
	s.hub.SetCursorCodec(codec)
	s.hub.Assigned(map[string]map[int32]int64{notification.TopicConcepts: {0: 0}, notification.TopicSessions: {0: 0}})
	return &sioServer{server: s, replay: rep}
}

// publish publishes {"n":<n>} to user as a concept-mastered event and returns its cursor.
func (s *sioServer) publish(user string, n int) string {
	e := &notification.Event{
		Name: notification.EventConceptMastered, Topic: notification.TopicConcepts, Offset: s.offset,
		Time: time.Now(), UserIDs: []string{user}, Data: []byte(`{"n":` + itoa(n) + `}`),
	}
	s.offset++
	s.replay.add(e)
	return s.hub.Publish(e).Cursor
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// dial opens a WebSocket session whose reads fail after 10 s, so that a test waiting for a packet
// that never comes fails instead of hanging.
func (s *sioServer) dial() *wsClient {
	s.t.Helper()
	c := s.dialWS("")
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c
}

// connect opens a WebSocket session, sends CONNECT with auth (the token of user added) and
// returns the client and the CONNECT reply.
func (s *sioServer) connect(user string, auth map[string]any) (*wsClient, string) {
	s.t.Helper()
	c := s.dial()
	if auth == nil {
		auth = map[string]any{}
	}
	auth["token"] = testToken(s.t, user)
	payload, _ := json.Marshal(auth)
	c.send("40" + string(payload))
	reply := c.next()
	if strings.HasPrefix(reply, "40{") {
		s.waitAttached(c.sid)
		_, resumed := auth["offset"]
		if _, ok := auth["cursor"]; ok {
			resumed = true
		}
		if !resumed {
			// The opening cursor follows the CONNECT reply (a resume gets its replay first).
			if p := c.next(); !strings.HasPrefix(p, `42["cursor",null,"`) && !strings.HasPrefix(p, `42["cursor","`) {
				s.t.Fatalf("after the CONNECT reply %q, want the opening cursor packet", p)
			}
		}
	}
	return c, reply
}

// connectReply decodes a CONNECT reply `40{"sid","pid"}`.
func connectReply(t *testing.T, reply string) (sid, pid string) {
	t.Helper()
	var r struct{ SID, PID string }
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &r) != nil || r.SID == "" {
		t.Fatalf("CONNECT reply %q, want 40{\"sid\":...}", reply)
	}
	return r.SID, r.PID
}

// closed reports whether the server closes c's connection (after any Engine.IO close packet)
// within 5 s; other messages first make it false.
func closed(c *wsClient) bool {
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := c.ws.ReadMessage()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			c.t.Log("no close within 5 s")
			return false
		case err != nil:
			return true
		case string(msg) == "1": // the Engine.IO close packet, then the Close frame
			continue
		}
		c.t.Logf("unexpected %q before the close", msg)
		return false
	}
}

// Connection to a namespace: "The server MUST respond with ... a CONNECT packet if the connection
// is successful, with the session ID in the payload". The Socket.IO id is not the Engine.IO sid
// (v5, "the ID of the Socket.IO connection will now be different"); pid is recovery's (v4.6).
func TestSIO_Connect_ReplyCarriesSidAndPid(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, reply := s.connect("alice", nil)
	sid, pid := connectReply(t, reply)
	if sid == c.sid || pid == "" {
		t.Errorf("CONNECT reply %q: sid must differ from the Engine.IO sid %q, pid must be set", reply, c.sid)
	}
}

// Connection to a namespace: "or a CONNECT_ERROR packet if the connection is not allowed", here
// with {"message", "data": {"code"}}; the session stays open, so the client may CONNECT again.
func TestSIO_Connect_RefusedGetsConnectErrorAndMayRetry(t *testing.T) {
	s := newSIOServer(t, Config{})
	c := s.dial()
	c.send(`40{"token":"not-a-jwt"}`)
	reply := c.next()
	var e struct {
		Message string
		Data    struct{ Code string }
	}
	if !strings.HasPrefix(reply, "44{") || json.Unmarshal([]byte(reply[2:]), &e) != nil || e.Message == "" || e.Data.Code != "unauthorized" {
		t.Fatalf("CONNECT with a bad token: %q, want 44{\"message\":...,\"data\":{\"code\":\"unauthorized\"}}", reply)
	}
	c.send(`40{"token":"` + testToken(t, "alice") + `"}`)
	connectReply(t, c.next())
}

// Connection to a namespace: a namespace the server does not have gets CONNECT_ERROR on that
// namespace with the reference server's message, "Invalid namespace"; "/" stays usable.
func TestSIO_Connect_OtherNamespaceGetsConnectError(t *testing.T) {
	s := newSIOServer(t, Config{})
	c := s.dial()
	c.send(`40/admin,{"token":"` + testToken(t, "alice") + `"}`)
	if reply := c.next(); reply != `44/admin,{"message":"Invalid namespace"}` {
		t.Fatalf("CONNECT to /admin: %q", reply)
	}
	c.send(`40{"token":"` + testToken(t, "alice") + `"}`)
	connectReply(t, c.next())
}

// Connection to a namespace: "If the server does not receive a CONNECT packet first, then it MUST
// close the connection immediately", whatever the namespace of that first packet.
func TestSIO_Connect_FirstPacketMustBeConnect(t *testing.T) {
	s := newSIOServer(t, Config{})
	for _, first := range []string{`42["whoami"]`, `421["whoami"]`, `41`, `43[]`, `42/admin,["x"]`, `41/admin,`, `44{"message":"x"}`} {
		c := s.dial()
		c.send(first)
		if !closed(c) {
			t.Errorf("first packet %q: the session stayed open", first)
		}
	}
}

// Connection to a namespace: the CONNECT payload, when present, is an object (socket.io-parser
// refuses anything else, and the receiver closes the connection).
func TestSIO_Connect_PayloadMustBeAnObject(t *testing.T) {
	s := newSIOServer(t, Config{})
	for _, p := range []string{`40"token"`, `40[]`, `40{`, `40null`} {
		c := s.dial()
		c.send(p)
		if !closed(c) {
			t.Errorf("CONNECT %q: the session stayed open", p)
		}
	}
}

// Connection to a namespace: a client that never connects is closed (socket.io's connectTimeout;
// here Config.AuthTimeout, REALTIME_AUTH_TIMEOUT), with WebSocket close 1008.
func TestSIO_Connect_TimeoutClosesTheSession(t *testing.T) {
	s := newSIOServer(t, Config{AuthTimeout: 100 * time.Millisecond})
	c := s.dial()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Errorf("read past the connect timeout: %v, want close 1008", err)
	}
}

// Connection to a namespace (our rule): a second CONNECT to "/" on the same session is an error.
func TestSIO_Connect_SecondConnectClosesTheSession(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	c.send(`40{"token":"` + testToken(t, "alice") + `"}`)
	if !closed(c) {
		t.Error("a second CONNECT left the session open")
	}
}

// Connection to a namespace (our auth members): cursorArg must be a boolean and cursor a string,
// else CONNECT_ERROR with data.code "bad-request".
func TestSIO_Connect_BadCursorOptionsGetConnectError(t *testing.T) {
	s := newSIOServer(t, Config{})
	for _, auth := range []map[string]any{{"cursorArg": "false"}, {"cursorArg": 0}, {"cursor": 12}, {"cursor": ""}} {
		_, reply := s.connect("alice", auth)
		if !strings.HasPrefix(reply, `44{"message":"auth.cursor`) || !strings.HasSuffix(reply, `"data":{"code":"bad-request"}}`) {
			t.Errorf("auth %v: %q, want CONNECT_ERROR bad-request", auth, reply)
		}
	}
}

// Sending and receiving data: an event is an EVENT packet whose payload is a non-empty array,
// the event name first; with the cursor argument (the default) the cursor is its last element.
func TestSIO_Event_CarriesTheCursorArgument(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	cursor := s.publish("alice", 1)
	if msg, want := c.next(), `42["concept-mastered",{"n":1},"`+cursor+`"]`; msg != want {
		t.Errorf("event %q, want %q", msg, want)
	}
}

// Sending and receiving data (our option): with auth cursorArg false the event's arguments are
// exactly its data, and a `cursor` event carrying the cursor follows, as its own Engine.IO
// packet (WebSocket message).
func TestSIO_Event_CursorArgOffSendsExactlyThePayload(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", map[string]any{"cursorArg": false})
	cursor := s.publish("alice", 1)
	if msg := c.next(); msg != `42["concept-mastered",{"n":1}]` {
		t.Errorf("event %q, want exactly the payload", msg)
	}
	if msg, want := c.next(), `42["cursor","`+cursor+`"]`; msg != want {
		t.Errorf("after the event %q, want %q", msg, want)
	}
}

// Sending and receiving data (our option): the same over long-polling, the cursor packet being
// the next packet of the payload.
func TestSIO_Event_CursorArgOffOverPolling(t *testing.T) {
	s := newSIOServer(t, Config{})
	sid := s.pollHandshake()
	s.post(sid, `40{"token":"`+testToken(t, "alice")+`","cursorArg":false}`)
	if _, p := s.get(sid); !strings.HasPrefix(p[0], "40{") {
		t.Fatalf("CONNECT: %q", p)
	}
	s.waitAttached(sid)
	cursor := s.publish("alice", 1)
	_, p := s.get(sid)
	if want := []string{`42["concept-mastered",{"n":1}]`, `42["cursor","` + cursor + `"]`}; strings.Join(p, "|") != strings.Join(want, "|") {
		t.Errorf("payload %q, want %q", p, want)
	}
}

// Sending and receiving data (our option): Config.NoCursorArg (REALTIME_SOCKETIO_CURSOR_ARG=false)
// turns the argument off for clients that do not say; cursorArg true turns it back on.
func TestSIO_Event_OperatorDefaultAndClientOverride(t *testing.T) {
	s := newSIOServer(t, Config{NoCursorArg: true})
	plain, _ := s.connect("alice", nil)
	withArg, _ := s.connect("bob", map[string]any{"cursorArg": true})
	a, b := s.publish("alice", 1), s.publish("bob", 2)
	if msg := plain.next(); msg != `42["concept-mastered",{"n":1}]` {
		t.Errorf("default client got %q, want no cursor argument", msg)
	}
	if msg := plain.next(); msg != `42["cursor","`+a+`"]` {
		t.Errorf("then %q, want the cursor packet", msg)
	}
	if msg := withArg.next(); msg != `42["concept-mastered",{"n":2},"`+b+`"]` {
		t.Errorf("cursorArg true got %q, want the cursor argument", msg)
	}
}

// Sending and receiving data: "The payload is mandatory and MUST be a non-empty array. If that's
// not the case, then the receiver MUST close the connection." Reserved names too (socket.io-parser).
func TestSIO_Event_PayloadMustBeANonEmptyArray(t *testing.T) {
	s := newSIOServer(t, Config{})
	for _, p := range []string{`42`, `42[]`, `42{}`, `42"x"`, `42[{}]`, `42["connect"]`, `42["disconnect"]`} {
		c, _ := s.connect("alice", nil)
		c.send(p)
		if !closed(c) {
			t.Errorf("EVENT %q: the session stayed open", p)
		}
	}
}

// Acknowledgement: "The receiver MUST respond with an ACK packet with the same event ID", with an
// array payload: whoami answers the user, any other event an error object.
func TestSIO_Ack_EventWithAnIDGetsAnACKWithTheSameID(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	c.send(`4212["whoami"]`)
	if msg := c.next(); msg != `4312[{"userId":"alice"}]` {
		t.Errorf("ACK %q", msg)
	}
	c.send(`427["subscribe","x"]`)
	if msg := c.next(); msg != `437[{"error":"unknown-event"}]` {
		t.Errorf("ACK of an unknown event %q", msg)
	}
	c.send(`42["whoami"]`) // no id: no ACK
	c.send(`4213["whoami"]`)
	if msg := c.next(); msg != `4313[{"userId":"alice"}]` {
		t.Errorf("after an event without id: %q", msg)
	}
}

// Acknowledgement: a BINARY_EVENT with an id is acknowledged once its attachments have come.
func TestSIO_Ack_BinaryEventIsAcknowledgedAfterItsAttachments(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	c.send(`451-4["whoami",{"_placeholder":true,"num":0}]`)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if msg := c.next(); msg != `434[{"userId":"alice"}]` {
		t.Errorf("ACK %q", msg)
	}
}

// Acknowledgement: "The payload is mandatory and MUST be an array (possibly empty)"; an ACK the
// server did not ask for is ignored.
func TestSIO_Ack_PayloadMustBeAnArray(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	c.send(`431[]`)
	c.send(`4221["whoami"]`)
	if msg := c.next(); msg != `4321[{"userId":"alice"}]` {
		t.Fatalf("after an unasked ACK: %q", msg)
	}
	for _, p := range []string{`431`, `431{}`, `431"x"`} {
		c, _ := s.connect("alice", nil)
		c.send(p)
		if !closed(c) {
			t.Errorf("ACK %q: the session stayed open", p)
		}
	}
}

// Disconnection from a namespace: a client's DISCONNECT needs no answer; "/" being the only
// namespace, the session ends: the connection closes and the sid is unknown.
func TestSIO_Disconnect_FromTheClientEndsTheSession(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	c.send(`41`)
	if !closed(c) {
		t.Fatal("DISCONNECT left the connection open")
	}
	waitFor(t, "the session removed", func() bool { return s.h.session(c.sid) == nil })
}

// Disconnection from a namespace (our rule): the server ends a connection (shutdown, token
// expiry, slow client) with the Engine.IO close packet, not a Socket.IO DISCONNECT, so that
// clients reconnect by themselves; at shutdown the final cursor comes first.
func TestSIO_Disconnect_FromTheServerIsAnEngineIOClose(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", nil)
	s.publish("bob", 1) // moves the hub's cursor past alice's
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go s.hub.Shutdown(ctx)
	if msg := c.next(); !strings.HasPrefix(msg, `42["cursor",null,"`) {
		t.Errorf("first %q, want the final cursor", msg)
	}
	if msg := c.next(); msg != "1" {
		t.Errorf("then %q, want the Engine.IO close packet 1 (not 41)", msg)
	}
}

// Connection state recovery (socket.io v4.6): CONNECT with the pid of the previous connection and
// the offset of the last event it got: the same pid back (socket.recovered) and the missed events,
// each with its cursor.
func TestSIO_Recovery_SamePidAndTheMissedEvents(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, reply := s.connect("alice", nil)
	_, pid := connectReply(t, reply)
	first := s.publish("alice", 1)
	c.next()
	c.ws.Close()
	second, third := s.publish("alice", 2), s.publish("alice", 3)

	c2, reply := s.connect("alice", map[string]any{"pid": pid, "offset": first})
	if _, got := connectReply(t, reply); got != pid {
		t.Errorf("recovered pid %q, want %q", got, pid)
	}
	for _, want := range []string{`42["concept-mastered",{"n":2},"` + second + `"]`, `42["concept-mastered",{"n":3},"` + third + `"]`} {
		if msg := c2.next(); msg != want {
			t.Errorf("replayed %q, want %q", msg, want)
		}
	}
}

// Connection state recovery: an offset the server cannot honour gets a new pid (socket.recovered
// false) and a resync event, never silence.
func TestSIO_Recovery_UnusableOffsetGetsANewPidAndResync(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, reply := s.connect("alice", map[string]any{"pid": "old-pid", "offset": "not-a-cursor"})
	if _, pid := connectReply(t, reply); pid == "old-pid" {
		t.Error("kept the pid of an unusable offset")
	}
	if msg := c.next(); !strings.HasPrefix(msg, `42["resync",{"message":`) {
		t.Errorf("then %q, want a resync event", msg)
	}
}

// Resume without recovery (our option): auth cursor, the last cursor a client got (the argument
// or the `cursor` packet), replays exactly what it missed, here to a client without the cursor
// argument: each missed event, then its cursor packet, and nothing it had.
func TestSIO_Resume_AuthCursorReplaysExactlyWhatWasMissed(t *testing.T) {
	s := newSIOServer(t, Config{})
	plain := map[string]any{"cursorArg": false}
	c, _ := s.connect("alice", plain)
	s.publish("alice", 1)
	c.next()
	var last string
	if msg := c.next(); !strings.HasPrefix(msg, `42["cursor","`) || json.Unmarshal([]byte(msg[2:]), &[]any{nil, &last}) != nil {
		t.Fatalf("cursor packet %q", msg)
	}
	c.ws.Close()
	second := s.publish("alice", 2)

	c2, reply := s.connect("alice", map[string]any{"cursorArg": false, "cursor": last})
	connectReply(t, reply)
	if msg := c2.next(); msg != `42["concept-mastered",{"n":2}]` {
		t.Errorf("replayed %q, want event 2 alone", msg)
	}
	if msg := c2.next(); msg != `42["cursor","`+second+`"]` {
		t.Errorf("then %q, want its cursor", msg)
	}
	third := s.publish("alice", 3)
	if msg := c2.next(); msg != `42["concept-mastered",{"n":3}]` {
		t.Errorf("live %q, want event 3", msg)
	}
	if msg := c2.next(); msg != `42["cursor","`+third+`"]` {
		t.Errorf("then %q, want its cursor", msg)
	}
	if got := value(s.h.m.connects.WithLabelValues("recovered")); got != 1 {
		t.Errorf("recovered connects = %v, want 1", got)
	}
}

// Resume without recovery: a cursor the server cannot honour gets a resync event (and, without
// the cursor argument, the cursor to continue from in a cursor packet).
func TestSIO_Resume_UnusableAuthCursorGetsResync(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _ := s.connect("alice", map[string]any{"cursorArg": false, "cursor": "not-a-cursor"})
	if msg := c.next(); !strings.HasPrefix(msg, `42["resync",{"message":`) || !strings.HasSuffix(msg, `"}]`) {
		t.Errorf("%q, want a resync event with one argument", msg)
	}
	if msg := c.next(); !strings.HasPrefix(msg, `42["cursor","`) {
		t.Errorf("then %q, want a cursor packet", msg)
	}
}
