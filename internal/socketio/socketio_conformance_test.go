package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
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

// sioServer is a server whose hub has a cursor codec and a replayer, so that connections get
// cursor packets and resumes replay. Pings come once a minute: no `cursor` control packet (sent
// at pings) comes between the packets a test expects.
type sioServer struct {
	*server
	replay  *memReplayer
	offsets map[string]int64
}

func newSIOServer(t *testing.T, cfg Config) *sioServer {
	t.Helper()
	return newSIOServerAt(t, cfg, map[string]map[int32]int64{notification.TopicConcepts: {0: 0}, notification.TopicSessions: {0: 0}})
}

// newSIOServerAt is newSIOServer whose hub consumes the partitions of start from its offsets,
// where publishTo's events of each partition begin.
func newSIOServerAt(t *testing.T, cfg Config, start map[string]map[int32]int64) *sioServer {
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
	s.hub.Assigned(start)
	offsets := map[string]int64{}
	for topic, parts := range start {
		for p, off := range parts {
			offsets[topic+":"+itoa(int(p))] = off
		}
	}
	return &sioServer{server: s, replay: rep, offsets: offsets}
}

// publish publishes {"n":<n>} to user as a concept-mastered event and returns its ID.
func (s *sioServer) publish(user string, n int) string {
	return s.publishTo(notification.TopicConcepts, 0, user, n)
}

// publishTo publishes {"n":<n>} to user as a concept-mastered event of topic's partition at
// its next offset and returns its ID.
func (s *sioServer) publishTo(topic string, partition int32, user string, n int) string {
	return s.publishData(topic, partition, user, []byte(`{"n":`+itoa(n)+`}`))
}

// publishData publishes data to user as a concept-mastered event of topic's partition at its
// next offset and returns its ID.
func (s *sioServer) publishData(topic string, partition int32, user string, data []byte) string {
	key := topic + ":" + itoa(int(partition))
	e := &notification.Event{
		Name: notification.EventConceptMastered, Topic: topic, Partition: partition, Offset: s.offsets[key],
		Time: time.Now(), UserIDs: []string{user}, Data: data,
	}
	s.offsets[key]++
	s.replay.add(e)
	return s.hub.Publish(e).ID()
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// eventPacket is the default-format EVENT packet of publish's event n with ID id:
// `42["concept-mastered",{"n":<n>},{"id":"<id>"}]`.
func eventPacket(n int, id string) string {
	return `42["concept-mastered",{"n":` + itoa(n) + `},{"id":"` + id + `"}]`
}

// plainPackets is the packet pair of the same event to a client without the trailing argument:
// `42["concept-mastered",{"n":<n>}]`, then `42["cursor",{"id":"<id>"}]`.
func plainPackets(n int, id string) []string {
	return []string{`42["concept-mastered",{"n":` + itoa(n) + `}]`, `42["cursor",{"id":"` + id + `"}]`}
}

// cursorOf returns the cursor of a cursor packet, `42["cursor",null,"<cursor>"]` (plain false)
// or `42["cursor","<cursor>"]` (plain true), or "" if p is not one.
func cursorOf(p string, plain bool) string {
	var args []json.RawMessage
	if !strings.HasPrefix(p, "42[") || json.Unmarshal([]byte(p[2:]), &args) != nil {
		return ""
	}
	want := 3
	if plain {
		want = 2
	}
	if len(args) != want || string(args[0]) != `"cursor"` || (!plain && string(args[1]) != "null") {
		return ""
	}
	return jsonString(args[len(args)-1])
}

// idOf returns the ID of a plain ID packet `42["cursor",{"id":"<id>"}]`, or "" if p is not one.
func idOf(p string) string {
	var args []json.RawMessage
	var obj struct{ ID string }
	if !strings.HasPrefix(p, `42["cursor",{`) || json.Unmarshal([]byte(p[2:]), &args) != nil || len(args) != 2 ||
		json.Unmarshal(args[1], &obj) != nil {
		return ""
	}
	return obj.ID
}

// dial opens a WebSocket session whose reads fail after 10 s, so that a test waiting for a packet
// that never comes fails instead of hanging.
func (s *sioServer) dial() *wsClient {
	s.t.Helper()
	c := s.dialWS("")
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c
}

// connect opens a WebSocket session, sends CONNECT with auth (the token of user added) and
// returns the client and the CONNECT reply; a fresh (not resuming) connection's opening cursor
// packet, which follows the reply, is consumed (see connectCursor).
func (s *sioServer) connect(user string, auth map[string]any) (*wsClient, string) {
	s.t.Helper()
	c, reply, _ := s.connectCursor(user, auth)
	return c, reply
}

// connectCursor is connect that also returns the opening cursor: the cursor packet the server
// sends right after the CONNECT reply, in the shape of the client's format, "" for a resume
// (whose replay comes first) or a refused CONNECT.
func (s *sioServer) connectCursor(user string, auth map[string]any) (c *wsClient, reply, cursor string) {
	s.t.Helper()
	c = s.dial()
	if auth == nil {
		auth = map[string]any{}
	}
	auth["token"] = testToken(s.t, user)
	payload, _ := json.Marshal(auth)
	c.send("40" + string(payload))
	reply = c.next()
	if strings.HasPrefix(reply, "40{") {
		s.waitAttached(c.sid)
		_, resumed := auth["offset"]
		if _, ok := auth["cursor"]; ok {
			resumed = true
		}
		if !resumed {
			p := c.next()
			if cursor = cursorOf(p, s.plain(auth)); cursor == "" {
				s.t.Fatalf("after the CONNECT reply %q, want the opening cursor packet", p)
			}
		}
	}
	return c, reply, cursor
}

// plain reports whether a client with this CONNECT auth gets events without the trailing
// argument.
func (s *sioServer) plain(auth map[string]any) bool {
	if arg, ok := auth["cursorArg"].(bool); ok {
		return !arg
	}
	return s.h.cfg.NoCursorArg
}

// poll long-polls sid until it has n packets (a payload may hold fewer, the rest coming with the
// next GET) and returns them; a GET without an answer for 10 s fails the test.
func (s *sioServer) poll(sid string, n int) []string {
	s.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var out []string
	for len(out) < n {
		res, err := client.Get(s.url("transport=polling&sid=" + sid))
		if err != nil {
			s.t.Fatalf("GET after %q: %v", out, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			s.t.Fatalf("GET after %q: %d %v", out, res.StatusCode, err)
		}
		out = append(out, strings.Split(string(body), "\x1e")...)
	}
	return out
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
// the event name first; by default its last element is {"id":"<topic>:<partition>:<offset>"}, an
// object, so that socket.io-client's recovery offset (the last string argument) stays the
// cursor of the last cursor packet `42["cursor",null,"<cursor>"]`, the first of which follows
// the CONNECT reply.
func TestSIO_Event_CarriesItsIDInATrailingObject(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _, opening := s.connectCursor("alice", nil)
	if _, err := s.hub.Codec().Decode(opening); err != nil {
		t.Errorf("opening cursor %q: %v", opening, err)
	}
	id := s.publish("alice", 1)
	if msg, want := c.next(), `42["concept-mastered",{"n":1},{"id":"concept-notifications:0:0"}]`; id != "concept-notifications:0:0" || msg != want {
		t.Errorf("event %s: %q, want %q", id, msg, want)
	}
}

// Sending and receiving data (our option): with auth cursorArg false the event's arguments are
// exactly its data, and a `cursor` event carrying the event's {"id"} follows, as its own
// Engine.IO packet (WebSocket message); the opening cursor packet is `42["cursor","<cursor>"]`.
func TestSIO_Event_CursorArgOffSendsExactlyThePayload(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _, opening := s.connectCursor("alice", map[string]any{"cursorArg": false})
	if _, err := s.hub.Codec().Decode(opening); err != nil {
		t.Errorf("opening cursor %q: %v", opening, err)
	}
	id := s.publish("alice", 1)
	if msg := c.next(); msg != `42["concept-mastered",{"n":1}]` {
		t.Errorf("event %q, want exactly the payload", msg)
	}
	if msg, want := c.next(), `42["cursor",{"id":"`+id+`"}]`; msg != want {
		t.Errorf("after the event %q, want %q", msg, want)
	}
}

// Sending and receiving data (our option): the same over long-polling, the ID packet being the
// next packet of the payload.
func TestSIO_Event_CursorArgOffOverPolling(t *testing.T) {
	s := newSIOServer(t, Config{})
	sid := s.pollHandshake()
	s.post(sid, `40{"token":"`+testToken(t, "alice")+`","cursorArg":false}`)
	p := s.poll(sid, 2)
	if !strings.HasPrefix(p[0], "40{") || cursorOf(p[1], true) == "" {
		t.Fatalf("CONNECT: %q, want the reply and the opening cursor packet", p)
	}
	s.waitAttached(sid)
	id := s.publish("alice", 1)
	if p, want := s.poll(sid, 2), plainPackets(1, id); !slices.Equal(p, want) {
		t.Errorf("payload %q, want %q", p, want)
	}
}

// Sending and receiving data (our option): Config.NoCursorArg (REALTIME_SOCKETIO_CURSOR_ARG=false)
// turns the trailing argument off for clients that do not say; cursorArg true turns it back on.
func TestSIO_Event_OperatorDefaultAndClientOverride(t *testing.T) {
	s := newSIOServer(t, Config{NoCursorArg: true})
	plain, _ := s.connect("alice", nil)
	withArg, _ := s.connect("bob", map[string]any{"cursorArg": true})
	a, b := s.publish("alice", 1), s.publish("bob", 2)
	for _, want := range plainPackets(1, a) {
		if msg := plain.next(); msg != want {
			t.Errorf("default client got %q, want %q", msg, want)
		}
	}
	if msg := withArg.next(); msg != eventPacket(2, b) {
		t.Errorf("cursorArg true got %q, want %q", msg, eventPacket(2, b))
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

// Disconnection from a namespace (our rule): over long-polling the final cursor and the close
// packet come in two payloads. socket.io-client handles a payload's close packet at once but its
// messages a tick later (Manager.ondecoded), when the socket is disconnected already: a cursor
// packet sharing the close's payload would not become its recovery offset. engine.io likewise
// drains its write buffer before it sends the close packet.
func TestSIO_Disconnect_FinalCursorAndTheClosePacketInTwoPayloadsOverPolling(t *testing.T) {
	s := newSIOServer(t, Config{})
	sid := s.pollHandshake()
	s.post(sid, `40{"token":"`+testToken(t, "alice")+`"}`)
	if p := s.poll(sid, 2); !strings.HasPrefix(p[0], "40{") || cursorOf(p[1], false) == "" {
		t.Fatalf("CONNECT: %q, want the reply and the opening cursor packet", p)
	}
	s.waitAttached(sid)
	s.publish("bob", 1) // moves the hub's cursor past alice's
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go s.hub.Shutdown(ctx)
	if p := s.poll(sid, 1); len(p) != 1 || cursorOf(p[0], false) == "" {
		t.Errorf("first payload %q, want the final cursor alone", p)
	}
	if p := s.poll(sid, 1); len(p) != 1 || p[0] != "1" {
		t.Errorf("then %q, want the Engine.IO close packet alone", p)
	}
}

// Connection state recovery (socket.io v4.6): CONNECT with the pid of the previous connection and
// the offset socket.io-client keeps (the last string argument it got: here the opening cursor,
// events ending with an {"id"} object): the same pid back (socket.recovered), every event since
// that cursor, each with its ID (the one the client had among them again: socket.io-client
// cannot send IDs, so it de-duplicates), then a cursor packet past them, from which a second
// recovery replays nothing.
func TestSIO_Recovery_SamePidAndTheMissedEvents(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, reply, opening := s.connectCursor("alice", nil)
	_, pid := connectReply(t, reply)
	first := s.publish("alice", 1)
	if msg := c.next(); msg != eventPacket(1, first) {
		t.Fatalf("live %q, want %q", msg, eventPacket(1, first))
	}
	c.ws.Close()
	second, third := s.publish("alice", 2), s.publish("alice", 3)

	c2, reply := s.connect("alice", map[string]any{"pid": pid, "offset": opening})
	if _, got := connectReply(t, reply); got != pid {
		t.Errorf("recovered pid %q, want %q", got, pid)
	}
	for _, want := range []string{eventPacket(1, first), eventPacket(2, second), eventPacket(3, third)} {
		if msg := c2.next(); msg != want {
			t.Errorf("replayed %q, want %q", msg, want)
		}
	}
	msg := c2.next()
	past := cursorOf(msg, false)
	if past == "" || past == opening {
		t.Fatalf("after the replay %q, want a cursor packet past it", msg)
	}
	c2.ws.Close()

	c3, reply := s.connect("alice", map[string]any{"pid": pid, "offset": past})
	if _, got := connectReply(t, reply); got != pid {
		t.Errorf("second recovery: pid %q, want %q", got, pid)
	}
	if msg := c3.next(); cursorOf(msg, false) != past {
		t.Errorf("second recovery: %q, want nothing replayed and the same cursor", msg)
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

// Resume without recovery (our option): auth cursor, the last cursor a client got (a cursor
// packet's string) followed by "~" and the IDs of the events it got after it (the `cursor`
// packets' {"id"} objects), replays exactly what it missed, here to a client without the trailing
// argument: each missed event and its ID packet, then a cursor packet past them, and nothing it
// had.
func TestSIO_Resume_AuthCursorReplaysExactlyWhatWasMissed(t *testing.T) {
	s := newSIOServer(t, Config{})
	c, _, last := s.connectCursor("alice", map[string]any{"cursorArg": false})
	first := s.publish("alice", 1)
	var ids []string
	for _, want := range plainPackets(1, first) {
		msg := c.next()
		if msg != want {
			t.Fatalf("live %q, want %q", msg, want)
		}
		if id := idOf(msg); id != "" {
			ids = append(ids, id) // what a client keeps: the IDs after its last cursor
		}
	}
	c.ws.Close()
	second := s.publish("alice", 2)

	c2, reply := s.connect("alice", map[string]any{"cursorArg": false, "cursor": last + "~" + strings.Join(ids, ",")})
	connectReply(t, reply)
	for _, want := range plainPackets(2, second) {
		if msg := c2.next(); msg != want {
			t.Errorf("replayed %q, want %q (event 2 alone)", msg, want)
		}
	}
	if msg := c2.next(); cursorOf(msg, true) == "" || cursorOf(msg, true) == last {
		t.Errorf("after the replay %q, want a cursor packet past it", msg)
	}
	third := s.publish("alice", 3)
	for _, want := range plainPackets(3, third) {
		if msg := c2.next(); msg != want {
			t.Errorf("live %q, want %q", msg, want)
		}
	}
	if got := value(s.h.m.connects.WithLabelValues("recovered")); got != 1 {
		t.Errorf("recovered connects = %v, want 1", got)
	}
}

// Resume without recovery: a cursor the server cannot honour gets a resync event (and, plain,
// the cursor to continue from in a cursor packet `42["cursor","<cursor>"]`).
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
