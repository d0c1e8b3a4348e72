package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Presence and receipts across three service processes sharing one broker
// (docs/presence-and-receipts.md).

// presenceOf asks n for user's presence.
func presenceOf(t *testing.T, n *node, user string) (online bool, connections int, nodes []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/v1/users/"+user+"/presence", nil)
	req.Header.Set("X-API-Key", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Online      bool
		Connections int
		Nodes       []string
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&p) != nil {
		t.Fatalf("GET presence of %s on %s: %s", user, n.URL, resp.Status)
	}
	return p.Online, p.Connections, p.Nodes
}

// waitPresence waits until every node of on says user's online state is want, at most within,
// and returns how long that took.
func waitPresence(t *testing.T, user string, want bool, within time.Duration, on ...*node) time.Duration {
	t.Helper()
	start := time.Now()
	for _, n := range on {
		for {
			if online, _, _ := presenceOf(t, n, user); online == want {
				break
			}
			if time.Since(start) > within {
				t.Fatalf("%s: %s not online=%v within %v", n.URL, user, want, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// TestPresenceAcrossThreeNodes: a user who connects on node A reads online on node C within a
// second, and offline within a second of disconnecting; users of node A, SIGKILLed, read
// offline on B and C within the heartbeat timeout.
func TestPresenceAcrossThreeNodes(t *testing.T) {
	broker := startBroker(t)
	env := []string{"REALTIME_PRESENCE_HEARTBEAT=200", "REALTIME_PRESENCE_TIMEOUT=1500"}
	a, b, c := startNode(t, broker, "a", env...), startNode(t, broker, "b", env...), startNode(t, broker, "c", env...)

	ws, _ := openWS(t, a.service, "alice", "")
	took := waitPresence(t, "alice", true, time.Second, c)
	t.Logf("online on node C %v after connecting on node A", took)
	if _, conns, nodes := presenceOf(t, c, "alice"); conns != 1 || !slices.Equal(nodes, []string{"a"}) {
		t.Errorf("alice: %d connections on %v, want 1 on [a]", conns, nodes)
	}
	openSSE(t, b.service, "alice", "")
	waitUntil(t, "two connections of alice", func() bool { _, conns, _ := presenceOf(t, c, "alice"); return conns == 2 })
	ws.Close()
	waitUntil(t, "one connection of alice", func() bool {
		_, conns, nodes := presenceOf(t, c, "alice")
		return conns == 1 && slices.Equal(nodes, []string{"b"})
	})

	openWS(t, a.service, "bob", "")
	waitPresence(t, "bob", true, time.Second, c)
	bobWS, _ := openWS(t, a.service, "bob", "") // a second connection: closing one keeps bob online
	waitUntil(t, "two connections of bob", func() bool { _, conns, _ := presenceOf(t, b, "bob"); return conns == 2 })
	bobWS.Close()
	waitUntil(t, "one connection of bob", func() bool { _, conns, _ := presenceOf(t, b, "bob"); return conns == 1 })
	if online, _, _ := presenceOf(t, c, "bob"); !online {
		t.Fatal("bob offline with one connection left")
	}
	// The last connection closes: offline everywhere within a second.
	dave, _ := openWS(t, c.service, "dave", "")
	waitPresence(t, "dave", true, time.Second, a)
	dave.Close()
	took = waitPresence(t, "dave", false, time.Second, a, b)
	t.Logf("offline on nodes A and B %v after disconnecting from node C", took)

	// Node A dies with bob connected: bob reads offline on B and C within the timeout.
	openWS(t, a.service, "erin", "")
	waitPresence(t, "erin", true, time.Second, b, c)
	killed := time.Now()
	a.kill(t)
	for _, user := range []string{"bob", "erin"} {
		waitPresence(t, user, false, 1500*time.Millisecond+time.Second, b, c)
	}
	t.Logf("users of the killed node offline on B and C %v after SIGKILL (timeout 1.5 s)", time.Since(killed))
	if online, _, _ := presenceOf(t, b, "alice"); !online {
		t.Error("alice, connected on node B, offline after node A died")
	}
	if got := metric(t, b.URL, "presence_nodes_live", ""); got != 2 {
		t.Errorf("presence_nodes_live on B = %v, want 2", got)
	}

	// A graceful stop says goodbye: node B's users are offline at once, not after the timeout.
	b.stopGracefully(t)
	waitPresence(t, "alice", false, time.Second, c)
}

// receipt is a record of the receipts topic.
type receipt struct {
	EventID     string `json:"eventId"`
	UserID      string `json:"userId"`
	NodeID      string `json:"nodeId"`
	Transport   string `json:"transport"`
	DeliveredAt string `json:"deliveredAt"`
	ReadAt      string `json:"readAt"`
}

// readReceipts reads the whole receipts topic as it is now.
func readReceipts(t *testing.T, broker string) []receipt {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "receipts")
	if err != nil || ends.Error() != nil {
		t.Fatalf("receipts end offsets: %v %v", err, ends.Error())
	}
	var out []receipt
	ends.Each(func(o kadm.ListedOffset) {
		recs, err := readPartition(cl, "receipts", o.Partition, o.Offset)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var rc receipt
			if err := json.Unmarshal(r.Value, &rc); err != nil || string(r.Key) != rc.UserID {
				t.Fatalf("receipt %q=%q: %v", r.Key, r.Value, err)
			}
			out = append(out, rc)
		}
	})
	return out
}

// sioPolling is a Socket.IO client over Engine.IO long-polling, as socket.io-client starts.
type sioPolling struct {
	t    *testing.T
	base string
	sid  string
}

func openSocketIO(t *testing.T, n *node, user string) *sioPolling {
	t.Helper()
	c := &sioPolling{t: t, base: n.URL + "/socket.io/?EIO=4&transport=polling"}
	open := c.get("")
	var hs struct{ SID string }
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &hs) != nil {
		t.Fatalf("Engine.IO open %q", open)
	}
	c.sid = hs.SID
	c.post(`40{"token":"` + clientToken(t, user) + `"}`)
	for _, p := range c.poll() {
		if strings.HasPrefix(p, "40") {
			return c
		}
	}
	t.Fatal("no CONNECT answer")
	return nil
}

func (c *sioPolling) get(q string) string {
	c.t.Helper()
	resp, err := http.Get(c.base + q)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("Engine.IO GET: %s %s", resp.Status, b)
	}
	return string(b)
}

func (c *sioPolling) poll() []string { return strings.Split(c.get("&sid="+c.sid), "\x1e") }

func (c *sioPolling) post(packet string) {
	c.t.Helper()
	resp, err := http.Post(c.base+"&sid="+c.sid, "text/plain;charset=UTF-8", strings.NewReader(packet))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
}

// events polls until it has n events and returns their IDs (the trailing {"id"} argument), skipping
// cursor packets.
func (c *sioPolling) events(n int) []string {
	c.t.Helper()
	var ids []string
	for len(ids) < n {
		for _, p := range c.poll() {
			rest, ok := strings.CutPrefix(p, "42")
			if !ok || strings.HasPrefix(rest, `["cursor",`) {
				continue
			}
			var args []json.RawMessage
			var id struct{ ID string }
			if json.Unmarshal([]byte(rest), &args) != nil || len(args) != 3 || json.Unmarshal(args[2], &id) != nil || id.ID == "" {
				c.t.Fatalf("event packet %q, want [name, data, {\"id\": ...}]", p)
			}
			ids = append(ids, id.ID)
		}
	}
	return ids
}

// TestReceiptsForEveryDeliveryAndRead: 100 notifications to a connected WebSocket client give
// exactly 100 delivered receipts, one per event; the events it acknowledges with a read frame,
// those an SSE client POSTs and the one a Socket.IO client emits a read for give read
// receipts, each for its own user, node and transport.
func TestReceiptsForEveryDeliveryAndRead(t *testing.T) {
	broker := startBroker(t)
	env := []string{"REALTIME_RECEIPTS_TOPIC=receipts"}
	a, b, c := startNode(t, broker, "a", env...), startNode(t, broker, "b", env...), startNode(t, broker, "c", env...)
	p := newProducer(t, broker)
	ws, frames := openWS(t, a.service, "alice", "")
	sse := openSSE(t, b.service, "bob", "")
	sio := openSocketIO(t, c, "carol")
	for _, n := range []*node{a, b, c} {
		waitConnected(t, n.service, 1)
	}

	var sent []string
	for range 100 {
		sent = append(sent, p.send("alice"))
	}
	expectIDs(t, frames, sent...)
	read := sent[:10]
	for _, id := range read {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","id":"not an id"}`)) // ignored

	bobIDs := []string{p.send("bob"), p.send("bob")}
	expectIDs(t, sse.frames, bobIDs...)
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/v1/events/read", strings.NewReader(`{"ids":["`+bobIDs[1]+`"]}`))
	req.Header.Set("Authorization", "Bearer "+clientToken(t, "bob"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /v1/events/read: %s", resp.Status)
	}

	carolIDs := []string{p.send("carol"), p.send("carol")}
	if got := sio.events(2); !slices.Equal(got, carolIDs) {
		t.Fatalf("Socket.IO events %v, want %v", got, carolIDs)
	}
	sio.post(`421["read",` + mustJSON(carolIDs[1]) + `]`)
	if acks := sio.poll(); !slices.Contains(acks, `431[{"ok":true}]`) {
		t.Fatalf("read ack %q, want 431[{\"ok\":true}]", acks)
	}

	// Every receipt is in once Kafka acknowledged them all (nodes count what Kafka took).
	waitUntil(t, "the receipts to be produced", func() bool {
		return metric(t, a.URL, "realtime_receipts_produced_total", `kind="delivered"`) == 100 &&
			metric(t, a.URL, "realtime_receipts_produced_total", `kind="read"`) == 10 &&
			metric(t, b.URL, "realtime_receipts_produced_total", `kind="read"`) == 1 &&
			metric(t, c.URL, "realtime_receipts_produced_total", `kind="read"`) == 1 &&
			metric(t, c.URL, "realtime_receipts_produced_total", `kind="delivered"`) == 2
	})
	got := map[string][]string{}
	for _, r := range readReceipts(t, broker) {
		kind, at := "delivered", r.DeliveredAt
		if r.ReadAt != "" {
			kind, at = "read", r.ReadAt
		}
		if _, err := time.Parse(time.RFC3339, at); err != nil {
			t.Errorf("receipt %+v: time %q", r, at)
		}
		k := fmt.Sprintf("%s %s %s %s", kind, r.UserID, r.NodeID, r.Transport)
		got[k] = append(got[k], r.EventID)
	}
	for k, want := range map[string][]string{
		"delivered alice a websocket": sent,
		"read alice a websocket":      read,
		"delivered bob b sse":         bobIDs,
		"read bob b http":             bobIDs[1:],
		"delivered carol c socketio":  carolIDs,
		"read carol c socketio":       carolIDs[1:],
	} {
		ids, want := slices.Sorted(slices.Values(got[k])), slices.Sorted(slices.Values(want))
		if !slices.Equal(ids, want) {
			t.Errorf("%s: %d receipts %v, want exactly %d %v", k, len(ids), ids, len(want), want)
		}
		delete(got, k)
	}
	for k, ids := range got {
		t.Errorf("unexpected receipts %s: %v", k, ids)
	}
}
