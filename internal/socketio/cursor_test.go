package socketio

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// Tests of the cursor contract on Socket.IO (docs/socketio-conformance.md, "The cursor"): the
// opening cursor lets a client that received nothing resume exactly, and an event costs the same
// bytes whatever the number of partitions, over long-polling and WebSocket alike.

// rawClient is one Socket.IO session on a raw transport: send a packet, read the next one.
type rawClient interface {
	send(packet string)
	next() string
	// idle waits d for a packet, fails the test if one comes, then drops the connection as a
	// network would (no close packet, no Close frame).
	idle(d time.Duration)
}

// openRaw opens a session over transport "websocket" or "polling".
func (s *sioServer) openRaw(transport string) rawClient {
	s.t.Helper()
	if transport == "websocket" {
		return &rawWS{s.dial()}
	}
	return &rawPoll{s: s, sid: s.pollHandshake()}
}

type rawWS struct{ *wsClient }

func (c *rawWS) idle(d time.Duration) {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(d))
	_, msg, err := c.ws.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("while idle: %q, %v; want nothing", msg, err)
	}
	c.ws.Close()
}

type rawPoll struct {
	s   *sioServer
	sid string
	buf []string
}

func (c *rawPoll) send(packet string) {
	c.s.t.Helper()
	if st := c.s.post(c.sid, packet); st != http.StatusOK {
		c.s.t.Fatalf("POST %q: %d", packet, st)
	}
}

func (c *rawPoll) next() string {
	c.s.t.Helper()
	if len(c.buf) == 0 {
		c.buf = c.s.poll(c.sid, 1)
	}
	p := c.buf[0]
	c.buf = c.buf[1:]
	return p
}

// idle holds a long-poll GET for d, which must stay unanswered, then aborts it: the client is
// gone (the server closes the session, as engine.io does for an aborted long-poll).
func (c *rawPoll) idle(d time.Duration) {
	c.s.t.Helper()
	if len(c.buf) > 0 {
		c.s.t.Fatalf("while idle: %q; want nothing", c.buf)
	}
	res, err := (&http.Client{Timeout: d}).Get(c.s.url("transport=polling&sid=" + c.sid))
	var ne net.Error
	if err == nil {
		res.Body.Close()
		c.s.t.Fatalf("while idle: a GET answered %d; want nothing", res.StatusCode)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		c.s.t.Fatalf("while idle: %v; want a GET that waits", err)
	}
}

// connectRaw sends CONNECT with auth plus the token of user and returns the reply's pid.
func (s *sioServer) connectRaw(c rawClient, user string, auth map[string]any) (pid string) {
	s.t.Helper()
	auth["token"] = testToken(s.t, user)
	payload, _ := json.Marshal(auth)
	c.send("40" + string(payload))
	_, pid = connectReply(s.t, c.next())
	return pid
}

// A client that connects, receives nothing, drops after 1 s and reconnects with what it holds,
// the opening cursor (as socket.io-client's recovery offset with its pid, or as auth cursor), gets
// exactly the events sent to it while it was away, on both topics, then a cursor past them and
// live events: nothing twice, nothing of another user's, over long-polling and WebSocket.
func TestSIO_Resume_QuietClientGetsWhatWasSentWhileAway(t *testing.T) {
	for _, transport := range []string{"polling", "websocket"} {
		for _, mode := range []string{"recovery", "auth-cursor"} {
			t.Run(transport+"/"+mode, func(t *testing.T) {
				t.Parallel()
				s := newSIOServer(t, Config{})
				plain := mode == "auth-cursor" // the clients without socket.io's recovery
				c := s.openRaw(transport)
				pid := s.connectRaw(c, "alice", map[string]any{"cursorArg": !plain})
				opening := cursorOf(c.next(), plain)
				if opening == "" {
					t.Fatal("no opening cursor packet after the CONNECT reply")
				}
				c.idle(time.Second)

				missed := map[string]int{ // ID -> n
					s.publishTo(notification.TopicConcepts, 0, "alice", 1): 1,
					s.publishTo(notification.TopicSessions, 0, "alice", 2): 2,
					s.publishTo(notification.TopicConcepts, 0, "bob", 3):   3,
					s.publishTo(notification.TopicConcepts, 0, "alice", 4): 4,
					s.publishTo(notification.TopicSessions, 0, "carol", 5): 5,
				}
				var want []string
				for id, n := range missed {
					if n != 3 && n != 5 { // bob's and carol's
						want = append(want, packets(plain, n, id)...)
					}
				}

				again := s.openRaw(transport)
				auth := map[string]any{"cursorArg": !plain, "cursor": opening}
				if mode == "recovery" {
					auth = map[string]any{"pid": pid, "offset": opening}
				}
				if got := s.connectRaw(again, "alice", auth); mode == "recovery" && got != pid {
					t.Errorf("pid %q after the recovery, want %q (socket.recovered)", got, pid)
				}
				var got []string
				for range want {
					got = append(got, again.next())
				}
				// Partitions replay in record-time order, each in offset order: compare as sets.
				if slices.Sort(got); !slices.Equal(got, sorted(want)) {
					t.Errorf("replayed %q, want %q", got, sorted(want))
				}
				if p := again.next(); cursorOf(p, plain) == "" || cursorOf(p, plain) == opening {
					t.Errorf("after the replay %q, want a cursor packet past it", p)
				}
				live := s.publish("alice", 6)
				for _, w := range packets(plain, 6, live) {
					if p := again.next(); p != w {
						t.Errorf("then %q, want the live event %q", p, w)
					}
				}
			})
		}
	}
}

// packets is what a client gets for publishTo's event n with ID id: one packet, or two without
// the trailing argument (plain).
func packets(plain bool, n int, id string) []string {
	if plain {
		return plainPackets(n, id)
	}
	return []string{eventPacket(n, id)}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// With the hub consuming 2 topics x 100 partitions at offsets near a million, an event's packets
// (the EVENT, and without the trailing argument its ID packet too) are at most twice the record's
// value plus 200 bytes, over long-polling and WebSocket, while the cursor packet carries the
// 200 positions. Before cursor packets, every event carried that cursor: 1,781 bytes for a
// 62-byte value.
func TestSIO_Event_SizeDoesNotGrowWithPartitions(t *testing.T) {
	start := map[string]map[int32]int64{}
	for _, topic := range testTopics {
		start[topic] = map[int32]int64{}
		for p := range int32(100) {
			start[topic][p] = 1_000_000 + int64(p)*997
		}
	}
	s := newSIOServerAt(t, Config{}, start)
	data := []byte(`{"conceptId":"c1","conceptName":"JavaScript Arrays","masteryLevel":0.9}`)
	limit := 2*len(data) + 200
	for _, transport := range []string{"polling", "websocket"} {
		for _, plain := range []bool{false, true} {
			c := s.openRaw(transport)
			s.connectRaw(c, "alice", map[string]any{"cursorArg": !plain})
			opening := cursorOf(c.next(), plain)
			if ps, err := s.hub.Codec().Decode(opening); err != nil || len(ps) != 200 {
				t.Fatalf("%s plain=%v: the opening cursor holds %d positions (%v), want 200", transport, plain, len(ps), err)
			}
			id := s.publishData(notification.TopicConcepts, 99, "alice", data)
			got := []string{c.next()}
			if plain {
				got = append(got, c.next())
			}
			wantFirst := `42["concept-mastered",` + string(data)
			if !strings.HasPrefix(got[0], wantFirst) || !strings.Contains(strings.Join(got, ""), id) {
				t.Fatalf("%s plain=%v: %q, want event %s", transport, plain, got, id)
			}
			// The packets as a polling payload joins them (over WebSocket each has a frame header
			// of 2 to 4 bytes instead of the separator).
			size := len(strings.Join(got, "\x1e"))
			if size > limit {
				t.Errorf("%s plain=%v: %d bytes for a %d-byte value, want at most %d: %q", transport, plain, size, len(data), limit, got)
			}
			t.Logf("%s plain=%v: event %d B, value %d B, opening cursor %d B", transport, plain, size, len(data), len(opening))
		}
	}
}
