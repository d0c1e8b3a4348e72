package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// frame is a client frame of docs/design.md "Client frames".
type frame struct {
	ID     string          `json:"id"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Time   string          `json:"time"`
	Cursor string          `json:"cursor"`
}

// holder keeps what a client holds to resume (docs/design.md, "Cursor"): the cursor of the last
// cursor (or resync) frame and the IDs of the events it got after it.
type holder struct {
	cursor string
	ids    []string
}

// take updates h with f and, for an event frame, sets f.Cursor to the resume token the client
// holds once it has f: "<cursor>~<id>,<id>,...", the IDs since the cursor included. Tests resume
// from an event's Cursor as from what a client would send back at that point.
func (h *holder) take(f *frame) {
	switch {
	case f.ID != "":
		h.ids = append(h.ids, f.ID)
		f.Cursor = h.cursor + "~" + strings.Join(h.ids, ",")
	case f.Cursor != "":
		h.cursor, h.ids = f.Cursor, nil
	}
}

// producer writes concept-mastered records for user straight to partition 0 of
// concept-notifications, so that their offsets are consecutive.
type producer struct {
	t  *testing.T
	cl *kgo.Client
}

// deleteAll deletes every record of concept-notifications' partition up to its end, as
// retention would.
func (p *producer) deleteAll(partition int32) {
	p.t.Helper()
	adm := kadm.NewClient(p.cl)
	ends, err := adm.ListEndOffsets(p.t.Context(), "concept-notifications")
	if err != nil {
		p.t.Fatal(err)
	}
	end, _ := ends.Lookup("concept-notifications", partition)
	if _, err := adm.DeleteRecords(p.t.Context(), kadm.Offsets{"concept-notifications": {partition: {Topic: "concept-notifications", Partition: partition, At: end.Offset}}}); err != nil {
		p.t.Fatal(err)
	}
}

func newProducer(t *testing.T, broker string) *producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{t: t, cl: cl}
}

// send produces one record for users to partition 0 and returns its event ID.
func (p *producer) send(users ...string) string {
	p.t.Helper()
	return p.sendTo(0, users...)
}

// sendTo produces one record for users to partition of concept-notifications and returns its
// event ID.
func (p *producer) sendTo(partition int32, users ...string) string {
	p.t.Helper()
	v := fmt.Sprintf(`{"conceptId":"c","userIds":%s,"conceptName":"n","masteryLevel":1}`, mustJSON(users))
	rec := &kgo.Record{Topic: "concept-notifications", Partition: partition, Value: []byte(v)}
	if err := p.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
	return fmt.Sprintf("concept-notifications:%d:%d", partition, rec.Offset)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sseClient reads one SSE stream's frames.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	frames chan frame
	lastID string
}

func openSSE(t *testing.T, s *service, user, lastEventID string) *sseClient {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/v1/events?access_token="+clientToken(t, user), nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("SSE status %d", resp.StatusCode)
	}
	c := &sseClient{t: t, resp: resp, frames: make(chan frame, 1000)}
	go func() {
		defer close(c.frames)
		rd := bufio.NewReader(resp.Body)
		var held holder
		var idLine string // the block's id: line, the cursor of a cursor frame
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				idLine = strings.TrimSuffix(id, "\n")
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var f frame
				if json.Unmarshal([]byte(data), &f) == nil {
					if f.Cursor == "" {
						f.Cursor = idLine
					}
					held.take(&f)
					c.frames <- f
				}
				idLine = ""
			}
		}
	}()
	t.Cleanup(c.drop)
	return c
}

// drop closes the TCP connection under the stream, as a lost network would.
func (c *sseClient) drop() { c.resp.Body.Close() }

func next(t *testing.T, frames <-chan frame) frame {
	t.Helper()
	select {
	case f, ok := <-frames:
		if !ok {
			t.Fatal("stream ended")
		}
		return f
	case <-time.After(15 * time.Second):
		t.Fatal("no frame within 15 s")
	}
	return frame{}
}

// expectIDs reads frames until it has len(want) frames other than cursor frames and requires
// exactly those IDs, in order; it returns the last of them.
func expectIDs(t *testing.T, frames <-chan frame, want ...string) (last frame) {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		f := next(t, frames)
		if f.Event == "cursor" && f.ID == "" {
			continue
		}
		got = append(got, f.ID)
		last = f
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	return last
}

// TestSSEResumeGetsExactlyWhatWasMissed: a client got concept-notifications:0:5, its TCP
// connection drops, 6-8 are produced, it reconnects with Last-Event-ID: it gets 6, 7, 8 in
// order, then live events, and nothing it already had — from memory, and from Kafka when the
// history is off.
func TestSSEResumeGetsExactlyWhatWasMissed(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"from memory": nil,
		"from Kafka":  {"REALTIME_HISTORY_SIZE": "0"},
	} {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env)
			p := newProducer(t, s.Broker)
			c := openSSE(t, s, "alice", "")
			waitConnected(t, s, 1)
			var ids []string
			for range 6 {
				ids = append(ids, p.send("alice"))
				p.send("bob") // others' events in between
			}
			last := expectIDs(t, c.frames, ids...)
			if last.ID != "concept-notifications:0:10" { // alice's sixth: offsets 0,2,..,10
				t.Logf("alice's sixth event is %s", last.ID)
			}
			c.drop()
			waitConnected(t, s, 0)

			missed := []string{p.send("alice"), p.send("bob", "alice"), p.send("alice")}
			again := openSSE(t, s, "alice", last.Cursor)
			expectIDs(t, again.frames, missed...)
			live := p.send("alice")
			expectIDs(t, again.frames, live)
		})
	}
}

func TestWebSocketResumeWithCursor(t *testing.T) {
	s := startService(t, map[string]string{"REALTIME_HISTORY_SIZE": "0"})
	p := newProducer(t, s.Broker)
	ws, frames := openWS(t, s, "alice", "")
	waitConnected(t, s, 1)
	first := expectIDs(t, frames, p.send("alice"), p.send("alice"))
	ws.Close()
	waitConnected(t, s, 0)
	missed := []string{p.send("alice"), p.send("alice"), p.send("alice")}
	_, frames = openWS(t, s, "alice", first.Cursor)
	expectIDs(t, frames, missed...)
	expectIDs(t, frames, p.send("alice"))
}

// TestUnusableCursorsGetResyncThenLive: garbage, another format and oversized cursors, and a
// cursor older than Kafka keeps, all get 200, an open stream, one resync event, then live events.
func TestUnusableCursorsGetResyncThenLive(t *testing.T) {
	s := startService(t, nil)
	p := newProducer(t, s.Broker)
	for name, cursor := range map[string]string{
		"garbage":    "garbage",
		"event id":   "x:7:1",
		"10 KiB":     strings.Repeat("a", 10<<10),
		"base64 bad": "AQ" + strings.Repeat("_", 30),
	} {
		t.Run(name, func(t *testing.T) {
			for _, transport := range []string{"sse", "ws"} {
				var frames <-chan frame
				if transport == "sse" {
					frames = openSSE(t, s, "carol", cursor).frames
				} else {
					_, frames = openWS(t, s, "carol", cursor)
				}
				f := next(t, frames)
				if f.Event != "resync" || f.ID != "" || f.Cursor == "" {
					t.Fatalf("%s: first frame %+v, want a resync with a fresh cursor", transport, f)
				}
				expectIDs(t, frames, p.send("carol"))
			}
		})
	}
}

func openWS(t *testing.T, s *service, user, cursor string) (*websocket.Conn, <-chan frame) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/ws?access_token=" + clientToken(t, user)
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	frames := make(chan frame, 1000)
	go func() {
		defer close(frames)
		var held holder
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(msg, &f) == nil {
				held.take(&f)
				frames <- f
			}
		}
	}()
	return ws, frames
}

// waitConnected waits until the service counts n client connections.
func waitConnected(t *testing.T, s *service, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d connections", n), func() bool {
		var h struct {
			Details map[string]struct{ Connections *int }
		}
		s.do("GET", "/health", nil, &h)
		c := h.Details["realtime"].Connections
		return c != nil && *c == n
	})
}

// TestExpiredCursorGetsResync: the records after the cursor are gone from Kafka (retention), so
// the resume cannot be exact: the client is told so with a resync event, then gets live events.
func TestExpiredCursorGetsResync(t *testing.T) {
	s := startService(t, map[string]string{"REALTIME_HISTORY_SIZE": "0"})
	p := newProducer(t, s.Broker)
	_, frames := openWS(t, s, "alice", "")
	waitConnected(t, s, 1)
	got := expectIDs(t, frames, p.send("alice"))
	expectIDs(t, frames, p.send("alice"), p.send("alice")) // consumed: the node's position is past them
	// Retention deletes everything up to the end of partition 0.
	p.deleteAll(0)
	_, frames = openWS(t, s, "alice", got.Cursor)
	f := next(t, frames)
	var data struct{ Reason string }
	json.Unmarshal(f.Data, &data)
	if f.Event != "resync" || data.Reason != "expired" {
		t.Fatalf("first frame %+v %s, want resync expired", f, f.Data)
	}
	expectIDs(t, frames, p.send("alice"))
}

// TestShutdownHandsClientsTheirFinalCursor: a client that got nothing of its own while others'
// events flowed gets the node's final position before the 1001 close, and resuming from it on the
// restarted node needs no replay and loses nothing.
func TestShutdownHandsClientsTheirFinalCursor(t *testing.T) {
	broker := startBroker(t)
	env := map[string]string{"KAFKA_BROKERS": broker, "KAFKA_NODE_ID": "restarted"}
	s := startService(t, env)
	p := newProducer(t, broker)
	ws, frames := openWS(t, s, "quiet", "")
	_, busy := openWS(t, s, "busy", "")
	waitConnected(t, s, 2)
	expectIDs(t, busy, p.send("busy"), p.send("busy"), p.send("busy"))
	s.Stop()
	var final frame
	for f := range frames {
		final = f
	}
	ws.Close()
	if final.Event != "cursor" || final.Cursor == "" {
		t.Fatalf("last frame before the close %+v, want a cursor frame", final)
	}

	s2 := startService(t, env)
	_, frames = openWS(t, s2, "quiet", final.Cursor)
	expectIDs(t, frames, p.send("quiet")) // no resync first: nothing was missing
}

// TestConnectionLimitPerUser: REALTIME_MAX_CONNECTIONS_PER_USER reaches the hub: alice's second
// connection gets 429 too-many-connections, bob's first is fine.
func TestConnectionLimitPerUser(t *testing.T) {
	s := startService(t, map[string]string{"REALTIME_MAX_CONNECTIONS_PER_USER": "1"})
	openWS(t, s, "alice", "")
	waitConnected(t, s, 1)
	resp, err := http.Get(s.URL + "/v1/events?access_token=" + clientToken(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's second connection: %d, want 429", resp.StatusCode) // a 200 is a stream: do not read it
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"code":"too-many-connections"`) {
		t.Fatalf("alice's second connection: %d %s, want 429 too-many-connections", resp.StatusCode, body)
	}
	openWS(t, s, "bob", "")
	waitConnected(t, s, 2)
}

// TestConnectionLimitPerNode: REALTIME_MAX_CONNECTIONS reaches the client endpoints: with one
// connection open, the next one, of another user, gets 503 node-full with Retry-After.
func TestConnectionLimitPerNode(t *testing.T) {
	s := startService(t, map[string]string{"REALTIME_MAX_CONNECTIONS": "1"})
	openWS(t, s, "alice", "")
	waitConnected(t, s, 1)
	resp, err := http.Get(s.URL + "/v1/events?access_token=" + clientToken(t, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("the second connection: %d, want 503", resp.StatusCode) // a 200 is a stream: do not read it
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"code":"node-full"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the second connection: %d %s (Retry-After %q), want 503 node-full with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}
