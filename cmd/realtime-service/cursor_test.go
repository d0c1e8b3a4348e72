package main

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestOpeningCursorResumesAClientThatGotNothing: on WebSocket and SSE a client gets a cursor frame
// as soon as it is connected, before any event; one that drops after 1 s without having received
// anything and comes back with that cursor gets exactly the events produced while it was away
// (docs/design.md, "Cursor").
func TestOpeningCursorResumesAClientThatGotNothing(t *testing.T) {
	s := startService(t, map[string]string{"REALTIME_HISTORY_SIZE": "0"}) // the replay reads Kafka
	p := newProducer(t, s.Broker)
	p.send("someone-else") // the partition is not empty: the cursor is a position, not "start"
	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			user := "idle-" + transport
			var frames <-chan frame
			var drop func()
			if transport == "ws" {
				var ws *websocket.Conn
				ws, frames = openWS(t, s, user, "")
				drop = func() { ws.Close() }
			} else {
				c := openSSE(t, s, user, "")
				frames, drop = c.frames, c.drop
			}
			opening := next(t, frames)
			if opening.Event != "cursor" || opening.ID != "" || opening.Cursor == "" {
				t.Fatalf("first frame %+v, want the opening cursor frame", opening)
			}
			time.Sleep(time.Second)
			drop()
			waitConnected(t, s, 0)
			missed := []string{p.send(user), p.send("other", user), p.send(user)}
			if transport == "ws" {
				_, frames = openWS(t, s, user, opening.Cursor)
			} else {
				frames = openSSE(t, s, user, opening.Cursor).frames
			}
			expectIDs(t, frames, missed...)
			expectIDs(t, frames, p.send(user))
		})
	}
}

// TestFramesStaySmallWith100Partitions: with 2 topics x 100 partitions (issue: a cursor in every
// frame made a 62-byte notification 1,781 bytes), an event frame is at most twice its data plus
// 200 bytes on WebSocket and SSE; the cursor travels apart, in cursor frames.
func TestFramesStaySmallWith100Partitions(t *testing.T) {
	s := startService(t, map[string]string{"KAFKA_EMBEDDED_PARTITIONS": "100"})
	p := newProducer(t, s.Broker)
	for part := range int32(100) { // every partition moves: the cursor holds 200 nonzero offsets
		p.sendTo(part, "warm-up")
	}

	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/ws?access_token=" + clientToken(t, "alice")
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	resp, err := http.Get(s.URL + "/v1/events?access_token=" + clientToken(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := bufio.NewReader(resp.Body)
	waitConnected(t, s, 2)

	id := p.sendTo(57, "alice")
	// WebSocket: the frame is the message plus a 4-byte header (RFC 6455 §5.2, 126-65535 bytes).
	for {
		ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var f frame
		if err := json.Unmarshal(msg, &f); err != nil {
			t.Fatal(err)
		}
		if f.Event == "cursor" {
			if len(f.Cursor) < 200 {
				t.Fatalf("cursor of 200 partitions is %d bytes: not a full position", len(f.Cursor))
			}
			continue
		}
		if f.ID != id {
			t.Fatalf("WebSocket frame %s, want %s", msg, id)
		}
		if size, limit := len(msg)+4, 2*len(f.Data)+200; size > limit {
			t.Errorf("WebSocket frame %d bytes for %d bytes of data, want at most %d: %s", size, len(f.Data), limit, msg)
		}
		break
	}
	// SSE: the whole block, id: line (if any) included.
	for {
		block := readSSEBlock(t, sse)
		var data string
		for line := range strings.Lines(block) {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				data = d
			}
		}
		if data == "" {
			continue // "retry: <ms>" and other blocks without data
		}
		var f frame
		if err := json.Unmarshal([]byte(data), &f); err != nil {
			t.Fatalf("SSE block %q: %v", block, err)
		}
		if f.Event == "cursor" {
			continue
		}
		if f.ID != id {
			t.Fatalf("SSE block %q, want %s", block, id)
		}
		if size, limit := len(block), 2*len(f.Data)+200; size > limit {
			t.Errorf("SSE block %d bytes for %d bytes of data, want at most %d: %q", size, len(f.Data), limit, block)
		}
		break
	}
}

// readSSEBlock reads one SSE block, up to and including its blank line; comments (keepalives)
// are skipped.
func readSSEBlock(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream: %v", err)
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		b.WriteString(line)
		if line == "\n" && b.Len() > 1 {
			return b.String()
		}
	}
}

// TestResumeOnAnotherNodeWith100Partitions: a client on node 1 gets events on many of 100
// partitions (more than a cursor frame's worth, so it holds a cursor and the IDs since), drops,
// misses events on many partitions, and comes back on node 2, which replays from Kafka. With its
// IDs sent back it gets exactly the missed events, each once, in offset order per partition; a
// client that sends back only its cursor gets them too, plus at most REALTIME_CURSOR_EVERY-1
// events it already had (which de-duplication on id removes).
func TestResumeOnAnotherNodeWith100Partitions(t *testing.T) {
	broker := startBrokerPartitions(t, 100)
	n1 := startNode(t, broker, "n1")
	n2 := startNode(t, broker, "n2", "REALTIME_HISTORY_SIZE=0")
	p := newProducer(t, broker)
	rnd := rand.New(rand.NewPCG(20, 26))
	send := func(user string) string { return p.sendTo(rnd.Int32N(100), user, "bystander") }

	ws, frames := openWS(t, n1.service, "alice", "")
	waitConnected(t, n1.service, 1)
	var had []string
	for range 45 { // 32 (the default REALTIME_CURSOR_EVERY) + 13: a cursor frame, then IDs
		had = append(had, send("alice"))
		p.sendTo(rnd.Int32N(100), "bob")
	}
	got := collectEvents(t, frames, had)
	last := got[len(got)-1]
	if !strings.Contains(last.Cursor, "~") {
		t.Fatalf("after 45 events the client holds %q: no cursor frame came", last.Cursor)
	}
	cursorOnly, _, _ := strings.Cut(last.Cursor, "~")
	ws.Close()
	waitConnected(t, n1.service, 0)

	var missed []string
	for range 60 {
		missed = append(missed, send("alice"))
		p.sendTo(rnd.Int32N(100), "bob")
	}

	// With its IDs: exactly the missed events.
	_, frames = openWS(t, n2.service, "alice", last.Cursor)
	withIDs := eventIDs(collectEvents(t, frames, missed))
	if extra := len(withIDs) - len(missed); extra != 0 {
		t.Errorf("resuming with its IDs, the client got %d events more than the %d it missed: %v", extra, len(missed), withIDs)
	}
	checkSameAndOrdered(t, withIDs, missed)

	// With the cursor only: the missed events and a bounded number it had.
	_, frames = openWS(t, n2.service, "alice", cursorOnly)
	onlyCursor := eventIDs(collectEvents(t, frames, missed))
	var fresh, dup []string
	for _, id := range onlyCursor {
		if slices.Contains(had, id) {
			dup = append(dup, id)
		} else {
			fresh = append(fresh, id)
		}
	}
	if len(dup) > 31 {
		t.Errorf("resuming with its cursor only, the client got %d events twice, want at most 31", len(dup))
	}
	checkSameAndOrdered(t, fresh, missed)
}

// collectEvents reads event frames (cursor frames are skipped) until every ID of want has come,
// and returns them all, duplicates included.
func collectEvents(t *testing.T, frames <-chan frame, want []string) []frame {
	t.Helper()
	left := map[string]bool{}
	for _, id := range want {
		left[id] = true
	}
	var got []frame
	for len(left) > 0 {
		f := next(t, frames)
		if f.ID == "" {
			if f.Event != "cursor" {
				t.Fatalf("control frame %+v while %d events were still to come", f, len(left))
			}
			continue
		}
		got = append(got, f)
		delete(left, f.ID)
	}
	return got
}

func eventIDs(fs []frame) []string {
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.ID
	}
	return ids
}

// checkSameAndOrdered requires got to hold exactly the IDs of want, each once, and in increasing
// offset order within each partition.
func checkSameAndOrdered(t *testing.T, got, want []string) {
	t.Helper()
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Fatalf("got %d events %v, want the %d missed %v", len(got), got, len(want), want)
	}
	lastOffset := map[string]int64{}
	for _, id := range got {
		i := strings.LastIndexByte(id, ':')
		off, err := strconv.ParseInt(id[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("event ID %q", id)
		}
		if prev, ok := lastOffset[id[:i]]; ok && off <= prev {
			t.Errorf("%s came after offset %d of its partition", id, prev)
		}
		lastOffset[id[:i]] = off
	}
}
