package adversarial

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHandshakeFloodPastTheCaps sends more unauthenticated Engine.IO handshakes than the caps
// allow: from one address past REALTIME_MAX_PENDING_PER_ADDRESS (429 with Retry-After, RFC 6585
// §4), then from many addresses of 127.0.0.0/8 past REALTIME_MAX_PENDING (503 with Retry-After,
// RFC 9110 §15.6.4). Meanwhile an authenticated user keeps receiving, a new one can still
// connect, and afterwards the node drops every pending session within the auth timeout.
func TestHandshakeFloodPastTheCaps(t *testing.T) {
	// An auth timeout long enough that no session of a burst expires before the burst ends.
	n := startNode(t, 2*time.Second)
	v, user := n.victim(t)

	t.Run("one address", func(t *testing.T) {
		ip := net.IPv4(127, 3, 0, 1)
		status := n.flood(t, 3*maxPendingPerAddress, func(int) net.IP { return ip })
		if status[http.StatusOK] != maxPendingPerAddress || status[http.StatusTooManyRequests] != 2*maxPendingPerAddress {
			t.Errorf("from one address: %v; want %d times 200 and the rest 429", status, maxPendingPerAddress)
		}
		n.receives(t, v, user)
	})
	n.waitNoPreAuth(t)

	t.Run("many addresses", func(t *testing.T) {
		status := n.flood(t, 2*maxPending, func(i int) net.IP { // one handshake per address
			return net.IPv4(127, 4, byte(i/250), byte(1+i%250))
		})
		if status[http.StatusOK] != maxPending || status[http.StatusServiceUnavailable] != maxPending {
			t.Errorf("from %d addresses: %v; want %d times 200 and the rest 503", 2*maxPending, status, maxPending)
		}
		// The node is full of pending sessions: an authenticated user still receives, and a new
		// one still connects (/v1/ws authenticates on its upgrade request).
		n.receives(t, v, user)
		other := "late-" + randomHex(6)
		c, err := n.dialWS(t, other, "")
		if err != nil {
			t.Fatalf("an authenticated user could not connect while the pending sessions were at their cap: %v", err)
		}
		defer c.c.Close()
		n.receives(t, c, other)
	})
	n.waitNoPreAuth(t)
	n.receives(t, v, user)
	m := n.metrics(t)
	if m[`realtime_admission_refused_total{reason="address-pending"}`] < 2*maxPendingPerAddress || m[`realtime_admission_refused_total{reason="node-pending"}`] < maxPending {
		t.Errorf("realtime_admission_refused_total: address-pending %v, node-pending %v; want at least %d and %d",
			m[`realtime_admission_refused_total{reason="address-pending"}`], m[`realtime_admission_refused_total{reason="node-pending"}`], 2*maxPendingPerAddress, maxPending)
	}
}

// flood sends k handshakes at once, the i-th from address ip(i), and counts the answers by
// status; every 429 and 503 must carry Retry-After.
func (n *node) flood(t *testing.T, k int, ip func(int) net.IP) map[int]int {
	t.Helper()
	var mu sync.Mutex
	status := map[int]int{}
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			code, retry, body, err := n.handshake(ip(i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("handshake %d: %v", i, err)
			case (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) && retry == "":
				t.Errorf("handshake %d: %d without Retry-After (%q)", i, code, body)
			}
			status[code]++
		})
	}
	wg.Wait()
	return status
}

// preAuthLimit is REALTIME_PREAUTH_MAX_MESSAGE_BYTES's default, and wsLimit the largest message
// a /v1/ws client may send.
const (
	preAuthLimit = 16384
	wsLimit      = 4096
)

// TestPreAuthOversize sends messages past the limits on every transport: an unauthenticated
// Socket.IO WebSocket (close 1009 "message too big", RFC 6455 §7.4.1, read by the client), an
// unauthenticated Socket.IO polling POST (413), an authenticated /v1/ws (close 1009), and
// /v1/ws and /v1/events without a token (401 before any upgrade, with a small body).
func TestPreAuthOversize(t *testing.T) {
	n := startNode(t, 500*time.Millisecond)
	v, user := n.victim(t)
	// 1 MB: far over the pre-auth limit, yet admitted by Engine.IO's default maxPayload, and
	// more than the socket buffers hold, so the node closes with input unread; the client must
	// still read the close frame (RFC 6455 §7.1.1: the server reads on until the client's close,
	// rather than resetting the connection).
	big := bytes.Repeat([]byte("a"), 1_000_000)
	big[0] = '4'                              // an Engine.IO message packet
	huge := bytes.Repeat([]byte("a"), 16<<20) // /v1/ws: 16 MiB
	small := big[:4*preAuthLimit]

	t.Run("socket.io websocket", func(t *testing.T) {
		c := n.sioWebSocket(t)
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		werr := c.WriteMessage(websocket.TextMessage, big)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err error
		for err == nil {
			_, _, err = c.ReadMessage()
		}
		if code := closeCode(err); code != websocket.CloseMessageTooBig {
			t.Errorf("after a %d-byte message before CONNECT: %v (close %d, write error %v); want close 1009", len(big), err, code, werr)
		}
	})
	t.Run("socket.io polling", func(t *testing.T) {
		code, _, body, err := n.handshake(net.IPv4(127, 0, 0, 1))
		if err != nil || code != http.StatusOK {
			t.Fatalf("handshake: %d %v", code, err)
		}
		s, err := sid(body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(n.url+"/socket.io/?EIO=4&transport=polling&sid="+s, "text/plain;charset=UTF-8", bytes.NewReader(small))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a %d-byte POST before CONNECT: %s; want 413", len(small), resp.Status)
		}
	})
	t.Run("v1/ws authenticated", func(t *testing.T) {
		c, err := n.dialWS(t, "big-"+randomHex(6), "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.c.Close()
		c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.c.WriteMessage(websocket.TextMessage, huge)
		select {
		case err := <-c.ended:
			if code := closeCode(err); code != websocket.CloseMessageTooBig {
				t.Errorf("after a %d-byte message on /v1/ws (the limit is %d): %v; want close 1009", len(huge), wsLimit, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("/v1/ws still open 10s after a %d-byte message; want close 1009", len(huge))
		}
	})
	for _, path := range []string{"/v1/ws", "/v1/events"} {
		t.Run(path+" without a token", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, n.url+path, nil)
			if path == "/v1/ws" {
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || len(b) > 1024 {
				t.Errorf("GET %s without a token: %s with %d bytes; want 401 with at most 1 KiB", path, resp.Status, len(b))
			}
		})
	}
	n.receives(t, v, user)
	n.waitNoPreAuth(t)
}

// TestSlowAndIdlePreAuthClients opens Socket.IO sessions that never send CONNECT, on both
// transports, and a long-polling POST whose body trickles in: the node ends each within the
// auth timeout (REALTIME_AUTH_TIMEOUT, 500 ms here; the bounds below are 10 s, for a loaded
// machine), while an authenticated user keeps receiving.
func TestSlowAndIdlePreAuthClients(t *testing.T) {
	n := startNode(t, 500*time.Millisecond)
	v, user := n.victim(t)
	var wg sync.WaitGroup
	errs := make(chan error, 3)

	wg.Go(func() { // WebSocket: reads until the server closes
		c, _, err := websocket.DefaultDialer.Dial("ws://"+n.host+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			errs <- fmt.Errorf("websocket: %w", err)
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, msg, err := c.ReadMessage()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				errs <- errors.New("websocket: a session without CONNECT still open after 10s")
				return
			}
			if err != nil {
				return // closed by the server
			}
			if len(msg) == 1 && msg[0] == '2' { // answer pings: only the missing CONNECT may end it
				c.WriteMessage(websocket.TextMessage, []byte("3"))
			}
		}
	})
	wg.Go(func() { // polling: polls until the session is gone (close packet, or 400 unknown sid)
		code, _, body, err := n.handshake(net.IPv4(127, 0, 0, 1))
		if err != nil || code != http.StatusOK {
			errs <- fmt.Errorf("polling handshake: %d %v", code, err)
			return
		}
		s, err := sid(body)
		if err != nil {
			errs <- err
			return
		}
		// Long-polls (each GET held until the node has packets, up to its ping interval) until
		// the session is gone: a close packet, or an error status for an unknown sid.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			hc := &http.Client{Timeout: time.Until(deadline)}
			resp, err := hc.Get(n.url + "/socket.io/?EIO=4&transport=polling&sid=" + s)
			if err != nil {
				break
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return // gone
			}
			for _, p := range strings.Split(string(b), "\x1e") {
				switch p {
				case "1":
					return // closed
				case "2":
					hc.Post(n.url+"/socket.io/?EIO=4&transport=polling&sid="+s, "text/plain;charset=UTF-8", strings.NewReader("3"))
				}
			}
		}
		errs <- errors.New("polling: a session without CONNECT still served after 10s")
	})
	wg.Go(func() { // a POST body that trickles, one byte per 100 ms
		nc, err := net.Dial("tcp", n.host)
		if err != nil {
			errs <- err
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		fmt.Fprintf(nc, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n\r\n", n.host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			errs <- fmt.Errorf("trickle handshake: %w", err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s, err := sid(string(b))
		if err != nil {
			errs <- err
			return
		}
		fmt.Fprintf(nc, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 1000\r\n\r\n4", s, n.host)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					if _, err := nc.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = http.ReadResponse(br, nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			errs <- errors.New("trickling POST: still being read after 10s; want it cut")
		}
	})
	n.receives(t, v, user)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n.receives(t, v, user)
	n.waitNoPreAuth(t)
}

const (
	topicConcepts = "concept-notifications"
	topicDLQ      = "realtime-service.dlq"
)

// TestPoisonBurst produces 2,000 records that fail validation straight to the consumed topic,
// with valid ones for an authenticated user interleaved: every valid one arrives, the
// dead-letter topic holds the 2,000, and the node's log does not grow by a line per poison
// record (floods are sampled in logs and counted in /metrics).
func TestPoisonBurst(t *testing.T) {
	n := startNode(t, 500*time.Millisecond)
	v, user := n.victim(t)
	const poison, valid = 2000, 20
	before := n.endOffsets(t, topicDLQ)
	linesBefore := strings.Count(n.out.String(), topicDLQ)
	var recs []*kgo.Record
	want := map[string]bool{}
	for i := range poison {
		recs = append(recs, &kgo.Record{Topic: topicConcepts, Key: []byte("p" + strconv.Itoa(i)),
			Value: []byte(`{"conceptId":"poison-` + strconv.Itoa(i) + `","userIds":[],"conceptName":"poison","masteryLevel":2}`)})
		if i%(poison/valid) == poison/valid/2 {
			id := "valid-" + strconv.Itoa(i)
			want[id] = true
			recs = append(recs, &kgo.Record{Topic: topicConcepts, Key: []byte("v" + strconv.Itoa(i)),
				Value: []byte(`{"conceptId":"` + id + `","userIds":["` + user + `"],"conceptName":"valid","masteryLevel":0.5}`)})
		}
	}
	n.produce(t, recs...)
	timeout := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case f, ok := <-v.frames:
			if !ok {
				t.Fatalf("the authenticated user's connection ended: %v", <-v.ended)
			}
			delete(want, f.conceptID())
		case <-timeout:
			t.Fatalf("%d of %d valid records never arrived among the poison ones", len(want), valid)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var dlq int64
	for dlq = n.endOffsets(t, topicDLQ) - before; dlq < poison && time.Now().Before(deadline); dlq = n.endOffsets(t, topicDLQ) - before {
		time.Sleep(50 * time.Millisecond)
	}
	if dlq != poison {
		t.Errorf("the dead-letter topic grew by %d; want %d", dlq, poison)
	}
	n.receives(t, v, user)
	if lines := strings.Count(n.out.String(), topicDLQ) - linesBefore; lines > poison/20 {
		t.Errorf("the node's output names %s %d times for %d poison records; want at most %d (sampled)", topicDLQ, lines, poison, poison/20)
	}
	n.waitNoPreAuth(t)
}

// TestReplayBurst has one user open many simultaneous resumes from an old cursor, replayed
// from Kafka (REALTIME_HISTORY_SIZE is 5, the user missed 50 events), while another user
// resumes once from its own old cursor: that resume succeeds and brings exactly its missed
// events, and a third user keeps receiving live ones.
func TestReplayBurst(t *testing.T) {
	n := startNode(t, 500*time.Millisecond, "REALTIME_HISTORY_SIZE=5")
	v, vuser := n.victim(t)
	userA, userB := "a-"+randomHex(6), "b-"+randomHex(6)
	const missedA, missedB, resumesA = 50, 20, 60

	// Cursors: each connects and receives one event, then leaves.
	cursor := func(user string) string {
		c, err := n.dialWS(t, user, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.c.Close()
		id := n.notify(t, user)
		for f := range c.frames {
			if f.conceptID() == id && f.Cursor != "" {
				return f.Cursor
			}
		}
		t.Fatalf("%s's connection ended before its first event: %v", user, <-c.ended)
		return ""
	}
	cursorA, cursorB := cursor(userA), cursor(userB)

	published := func() float64 { return n.metrics(t)["realtime_events_published_total"] }
	pub0 := published()
	var recs []*kgo.Record
	wantB := map[string]bool{}
	for i := range missedA + missedB {
		u, id := userA, "a-"+strconv.Itoa(i)
		if i%((missedA+missedB)/missedB) == 0 && len(wantB) < missedB {
			u, id = userB, "b-"+strconv.Itoa(i)
			wantB[id] = true
		}
		recs = append(recs, &kgo.Record{Topic: topicConcepts, Key: []byte(id),
			Value: []byte(`{"conceptId":"` + id + `","userIds":["` + u + `"],"conceptName":"missed","masteryLevel":0.5}`)})
	}
	n.produce(t, recs...)
	for deadline := time.Now().Add(30 * time.Second); published()-pub0 < float64(len(recs)); {
		if time.Now().After(deadline) {
			t.Fatalf("the node published %v of %d records within 30s", published()-pub0, len(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range resumesA {
		wg.Go(func() {
			<-start
			c, err := n.dialWS(t, userA, cursorA)
			if err != nil {
				return // refused: A's burst may be turned away, B's resume may not
			}
			defer c.c.Close()
			got := 0
			timeout := time.After(20 * time.Second)
			for got < missedA {
				select {
				case _, ok := <-c.frames:
					if !ok {
						return
					}
					got++
				case <-timeout:
					return
				}
			}
		})
	}
	close(start)
	c, err := n.dialWS(t, userB, cursorB)
	if err != nil {
		t.Fatalf("B's resume during A's burst: %v", err)
	}
	timeout := time.After(30 * time.Second)
	got := map[string]bool{}
	for len(got) < missedB {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("B's resume ended after %d of %d events: %v", len(got), missedB, <-c.ended)
			}
			id := f.conceptID()
			switch {
			case f.Event == "resync":
				t.Fatalf("B's resume answered resync after %d of %d events", len(got), missedB)
			case !wantB[id] || got[id]:
				t.Fatalf("B's resume brought %q (%s): not one of its missed events, or twice", id, f.ID)
			}
			got[id] = true
		case <-timeout:
			t.Fatalf("B's resume brought %d of %d missed events within 30s", len(got), missedB)
		}
	}
	c.c.Close()
	if m := n.metrics(t); m[`realtime_replays_total{source="kafka"}`] < 1 {
		t.Errorf("no resume was replayed from Kafka (realtime_replays_total %v); the test wants old cursors", m[`realtime_replays_total{source="kafka"}`])
	}
	n.receives(t, v, vuser)
	wg.Wait()
	n.receives(t, v, vuser)
	n.waitNoPreAuth(t)
}

// TestConnectionCap fills the node to REALTIME_MAX_CONNECTIONS with authenticated
// connections: a further /v1/ws, /v1/events or Socket.IO handshake gets 503 with Retry-After
// (RFC 9110 §15.6.4), a client without a token still gets 401 (authentication comes first), the
// connected user keeps receiving, and once connections close new ones are admitted again.
func TestConnectionCap(t *testing.T) {
	const maxConns = 4
	n := startNode(t, 500*time.Millisecond, "REALTIME_MAX_CONNECTIONS="+strconv.Itoa(maxConns))
	v, user := n.victim(t)
	var held []*client
	for i := 1; i < maxConns; i++ {
		c, err := n.dialWS(t, "cap-"+strconv.Itoa(i), "")
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, maxConns, err)
		}
		held = append(held, c)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://"+n.host+"/v1/ws", http.Header{"Authorization": {"Bearer " + n.token(t, "one-too-many")}})
	if err == nil {
		c.Close()
		t.Errorf("/v1/ws past REALTIME_MAX_CONNECTIONS: connected; want 503")
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("/v1/ws past REALTIME_MAX_CONNECTIONS: %v (%v); want 503 with Retry-After", err, resp)
	}
	req, _ := http.NewRequest(http.MethodGet, n.url+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+n.token(t, "one-too-many"))
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err != nil {
		t.Errorf("/v1/events past REALTIME_MAX_CONNECTIONS: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("/v1/events past REALTIME_MAX_CONNECTIONS: %s (Retry-After %q); want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
		}
	}
	if code, retry, _, err := n.handshake(net.IPv4(127, 5, 0, 1)); err != nil || code != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("Socket.IO handshake past REALTIME_MAX_CONNECTIONS: %d (Retry-After %q) %v; want 503 with Retry-After", code, retry, err)
	}
	if resp, err := http.Get(n.url + "/v1/events"); err != nil {
		t.Errorf("/v1/events without a token: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/v1/events without a token on a full node: %s; want 401", resp.Status)
		}
	}
	n.receives(t, v, user)

	for _, c := range held {
		c.c.Close()
	}
	n.waitNoPreAuth(t) // the refused handshake left nothing; then only the victim holds a slot
	deadline := time.Now().Add(10 * time.Second)
	for n.metrics(t)["realtime_admission_connections"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("realtime_admission_connections is %v 10s after all but one connection closed; want 1", n.metrics(t)["realtime_admission_connections"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	again, err := n.dialWS(t, "again", "")
	if err != nil {
		t.Fatalf("a connection after the others closed: %v", err)
	}
	defer again.c.Close()
	n.receives(t, again, "again")
	n.waitNoPreAuth(t)
}
