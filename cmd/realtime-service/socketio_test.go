package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// End-to-end tests of the Socket.IO endpoint with npm socket.io-client@4 (test/interop pins
// 4.8.4): the scripts in test/interop/e2e (socketio.mjs, socketio-recovery.mjs) connect to the
// whole service, KafkaJS produces the records, and these tests check every event each socket
// received against what was produced (docs/design.md "Client frames": Socket.IO clients receive
// socket.emit(event, data) exactly as the NestJS gateway sent it, plus a trailing {"id"}, and
// `cursor` events whose cursor connection state recovery keeps as its offset).

// sioEvent is one event a socket received: socket.onAny(event, ...args).
type sioEvent struct {
	Event string            `json:"event"`
	Args  []json.RawMessage `json:"args"`
}

// sioSocket is what a script reports of one socket.io-client socket (siolib.mjs, track).
type sioSocket struct {
	Name     string     `json:"name"`
	Events   []sioEvent `json:"events"`
	Connects []struct {
		Recovered json.RawMessage `json:"recovered"` // socket.recovered: true, false or absent
		Transport string          `json:"transport"`
		PID       string          `json:"pid"`
		AtEvent   int             `json:"atEvent"` // events received before this connect
	} `json:"connects"`
	ConnectErrors []struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"connectErrors"`
	Disconnects []struct {
		Reason  string `json:"reason"`
		AtEvent int    `json:"atEvent"`
	} `json:"disconnects"`
	InitialTransport string              `json:"initialTransport"` // socketio.mjs: the engine's first transport
	Transport        []string            `json:"transport"`        // socketio.mjs: the transport at the end of each round
	Acks             [][]json.RawMessage `json:"acks"`             // socketio.mjs: [whoami, unknown event] per round
}

// reconnectedBetween reports whether the socket connected again between its events i and j.
func (s sioSocket) reconnectedBetween(i, j int) bool {
	for _, c := range s.Connects[min(1, len(s.Connects)):] {
		if c.AtEvent > i && c.AtEvent <= j {
			return true
		}
	}
	return false
}

// recovered reports whether the socket's i-th connect was a recovery (socket.recovered === true).
func (s sioSocket) recovered(i int) bool {
	return i < len(s.Connects) && string(s.Connects[i].Recovered) == "true"
}

// sioRecord is a record of a plan: produced by KafkaJS, to reach the sockets of users to as the
// event named event.
type sioRecord struct {
	Topic     string            `json:"topic"`
	Key       string            `json:"key,omitempty"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
	Partition *int32            `json:"partition,omitempty"`
	to        []string
	event     string
}

// conceptRecord is a concept-mastered record whose conceptId is id (the key scripts and tests
// tell records apart by) for users.
func conceptRecord(id string, users ...string) sioRecord {
	return sioRecord{Topic: "concept-notifications", Key: id, to: users, event: "concept-mastered",
		Value: fmt.Sprintf(`{"conceptId":%q,"userIds":%s,"conceptName":"Concept %s","masteryLevel":0.75}`, id, mustJSON(users), id)}
}

// sessionRecord is a session-starting-soon record whose sessionId is id, for users.
func sessionRecord(id string, users ...string) sioRecord {
	return sioRecord{Topic: "session-notifications", Key: id, to: users, event: "session-starting-soon",
		Value: fmt.Sprintf(`{"sessionId":%q,"userIds":%s,"message":"Session %s starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`, id, mustJSON(users), id)}
}

// dataKey returns the conceptId or sessionId of an event's data ("" if it has neither).
func dataKey(data json.RawMessage) string {
	var v struct{ ConceptID, SessionID *string }
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	if v.ConceptID != nil {
		return *v.ConceptID
	}
	if v.SessionID != nil {
		return *v.SessionID
	}
	return ""
}

// sioPlace is where a record went: its key and offset in a partition.
type sioPlace struct {
	partition string // topic:partition
	offset    int64
}

// cursorEvery is REALTIME_CURSOR_EVERY's default: a socket.io-client socket, whose recovery sends
// only its offset (the cursor of the last cursor packet), gets at most cursorEvery-1 events again
// after a recovery (docs/socketio-conformance.md, "The cursor").
const cursorEvery = 32

// checkSIOEvents checks the events one socket of user received: cursor packets
// `42["cursor",null,"<cursor>"]` (the opening one at least), and exactly the records naming user
// (with the expected event name, data deep-equal to the record value, and a trailing argument
// {"id":"<topic>:<partition>:<offset>"} naming where KafkaJS put the record) plus every
// sentinel, in offset order within each partition. An event comes once, or again with the same
// ID after a recovery (the replay starts at the client's last cursor; at most cursorEvery-1 of
// them): the client de-duplicates on ID. places maps record keys to where KafkaJS put them. It
// returns the keys of the non-sentinel events in the order first received.
func checkSIOEvents(t *testing.T, s sioSocket, user string, records []sioRecord, places map[string]sioPlace, sentinels []string) []string {
	t.Helper()
	byKey := map[string]sioRecord{}
	for _, r := range records {
		byKey[dataKey(json.RawMessage(r.Value))] = r
	}
	isSentinel := map[string]bool{}
	for _, k := range sentinels {
		isSentinel[k] = true
	}
	seen := map[string]int{} // key -> index of its first event
	ids := map[string]string{}
	last := map[string]int64{}
	var got []string
	cursors, again := 0, 0
	for i, e := range s.Events {
		if e.Event == "cursor" {
			var cursor string
			if len(e.Args) != 2 || string(e.Args[0]) != "null" || json.Unmarshal(e.Args[1], &cursor) != nil || cursor == "" {
				t.Errorf("%s: cursor packet %s, want [null, <cursor>]", s.Name, mustJSON(e.Args))
			}
			cursors++
			continue
		}
		var meta struct{ ID string }
		if len(e.Args) != 2 || json.Unmarshal(e.Args[1], &meta) != nil || meta.ID == "" {
			t.Errorf("%s: event %s %s, want 2 arguments: data, {\"id\"}", s.Name, e.Event, mustJSON(e.Args))
			continue
		}
		k := dataKey(e.Args[0])
		if first, ok := seen[k]; ok {
			if ids[k] != meta.ID || !s.reconnectedBetween(first, i) {
				t.Errorf("%s: event %s %s (%s) received twice, not as a replay after a reconnection", s.Name, e.Event, e.Args[0], meta.ID)
			}
			again++
			continue
		}
		seen[k], ids[k] = i, meta.ID
		if isSentinel[k] {
			continue
		}
		r, ok := byKey[k]
		if !ok {
			t.Errorf("%s (user %s): unexpected event %s %s", s.Name, user, e.Event, e.Args[0])
			continue
		}
		got = append(got, k)
		if !slices.Contains(r.to, user) {
			t.Errorf("%s (user %s) got %s, meant for %v", s.Name, user, k, r.to)
		}
		if e.Event != r.event {
			t.Errorf("%s: %s arrived as event %q, want %q", s.Name, k, e.Event, r.event)
		}
		var gotData, wantData any
		json.Unmarshal(e.Args[0], &gotData)
		wantData = clientData(t, r.Value)
		if !reflect.DeepEqual(gotData, wantData) {
			t.Errorf("%s: %s data %s, want the record value without userIds %s", s.Name, k, e.Args[0], r.Value)
		}
		if p, ok := places[k]; ok {
			if want := fmt.Sprintf("%s:%d", p.partition, p.offset); meta.ID != want {
				t.Errorf("%s: %s has ID %s, want %s", s.Name, k, meta.ID, want)
			}
			if prev, ok := last[p.partition]; ok && p.offset <= prev {
				t.Errorf("%s: %s (%s@%d) after offset %d of the same partition", s.Name, k, p.partition, p.offset, prev)
			}
			last[p.partition] = p.offset
		}
	}
	if cursors == 0 {
		t.Errorf("%s: no cursor packet (the opening one comes right after the CONNECT)", s.Name)
	}
	if again > 0 {
		t.Logf("%s: %d events again after a recovery (the client de-duplicates them on ID)", s.Name, again)
	}
	if again > (len(s.Connects)-1)*(cursorEvery-1) {
		t.Errorf("%s: %d events again after %d reconnections, want at most %d each", s.Name, again, len(s.Connects)-1, cursorEvery-1)
	}
	var want []string
	for _, r := range records {
		if slices.Contains(r.to, user) {
			want = append(want, dataKey(json.RawMessage(r.Value)))
		}
	}
	for _, k := range sentinels {
		if _, ok := seen[k]; !ok {
			t.Errorf("%s: sentinel %s missing", s.Name, k)
		}
	}
	sorted := slices.Sorted(slices.Values(got))
	slices.Sort(want)
	if !slices.Equal(sorted, want) {
		t.Errorf("%s (user %s) got %v, want %v", s.Name, user, sorted, want)
	}
	return got
}

// placesOf maps the keys of records to where KafkaJS reported producing them.
func placesOf(t *testing.T, records []sioRecord, produced []e2eProduced) map[string]sioPlace {
	t.Helper()
	if len(produced) != len(records) {
		t.Fatalf("%d records produced, want %d", len(produced), len(records))
	}
	m := map[string]sioPlace{}
	for i, r := range records {
		p := produced[i]
		if p.Topic != r.Topic || p.ValueLen != len(r.Value) {
			t.Fatalf("record %d reported as %+v", i, p)
		}
		m[dataKey(json.RawMessage(r.Value))] = sioPlace{fmt.Sprintf("%s:%d", p.Topic, p.Partition), p.Offset}
	}
	return m
}

// runSteps runs a node script that uses siolib.mjs's step(): at each step line it runs the
// step's function, then answers; it returns the script's report (its last line), failing the
// test if the script fails.
func runSteps(t *testing.T, script string, env map[string]string, steps map[string]func()) string {
	t.Helper()
	p := startScript(t, script, env)
	for {
		line := p.next(t)
		var st struct{ Step string }
		if json.Unmarshal([]byte(line), &st) != nil || st.Step == "" {
			if err := p.wait(); err != nil {
				t.Fatalf("%s: %v\n%.8000s\nstderr:\n%s", script, err, line, p.stderr)
			}
			return line
		}
		f, ok := steps[st.Step]
		if !ok {
			t.Fatalf("%s: unknown step %s", script, line)
		}
		f()
		p.send(t, "done")
	}
}

// TestSocketIOClientsGetKafkaJSRecords: socket.io-client@4 sockets (token in the handshake's
// auth) in the three transport setups — the default (long-polling, then the upgrade to
// WebSocket), WebSocket only and long-polling only — get the records KafkaJS produces as
// socket.emit(event, data, {id}): session-starting-soon and concept-mastered, and a custom
// event named by an event-type header under that name, data deep-equal to the record value,
// each once, in partition order; bob's sockets get only bob's. A missing, an expired and a
// wrongly signed token get connect_error with a message a UI can show and data {code:
// "unauthorized"}, and never connect. emitWithAck("whoami") answers {userId}. Then the service
// stops and a new one starts on the same HTTP address and broker: every socket reconnects by
// itself, recovered, and gets the record produced while the service was down and a new one.
func TestSocketIOClientsGetKafkaJSRecords(t *testing.T) {
	nodeModules(t)
	broker := startBroker(t) // outlives the service's restart, as Kafka would
	env := map[string]string{"KAFKA_BROKERS": broker, "HTTP_ADDR": freeAddr(t)}
	s := startService(t, env)
	s.waitConsuming()

	now := time.Now()
	sign := func(secret string, claims jwt.RegisteredClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice, bob := clientToken(t, "alice"), clientToken(t, "bob")
	expired := sign(testSecret, jwt.RegisteredClaims{Subject: "alice", IssuedAt: jwt.NewNumericDate(now.Add(-2 * time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(-time.Hour))})
	wronglySigned := sign("another-secret-another-secret-another", jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))})

	type conn struct {
		Name       string   `json:"name"`
		Token      *string  `json:"token"`
		Transports []string `json:"transports,omitempty"`
		Expect     string   `json:"expect,omitempty"`
		user       string
		refusal    string // what the connect_error message must say
	}
	conns := []conn{
		{Name: "alice-default", Token: &alice, user: "alice"},
		{Name: "alice-websocket", Token: &alice, Transports: []string{"websocket"}, user: "alice"},
		{Name: "alice-polling", Token: &alice, Transports: []string{"polling"}, user: "alice"},
		{Name: "bob-default", Token: &bob, user: "bob"},
		{Name: "bob-websocket", Token: &bob, Transports: []string{"websocket"}, user: "bob"},
		{Name: "bob-polling", Token: &bob, Transports: []string{"polling"}, user: "bob"},
		{Name: "no-token", Expect: "connect_error", refusal: "token"},
		{Name: "expired-token", Token: &expired, Expect: "connect_error", refusal: "expired"},
		{Name: "wrongly-signed-token", Token: &wronglySigned, Transports: []string{"websocket"}, Expect: "connect_error", refusal: "signature"},
	}
	custom := conceptRecord("closures", "alice")
	custom.Headers, custom.event = map[string]string{"event-type": "concept-reviewed"}, "concept-reviewed"
	rescheduled := sessionRecord("session-7", "bob")
	rescheduled.Headers, rescheduled.event = map[string]string{"event-type": "session-rescheduled"}, "session-rescheduled"
	records := []sioRecord{
		conceptRecord("js-arrays", "alice"),
		sessionRecord("session-42", "carol", "alice"),
		custom,
		rescheduled,
		conceptRecord("recursion", "bob", "alice"),
	}
	down := []sioRecord{conceptRecord("while-down", "alice", "bob")}
	after := []sioRecord{sessionRecord("after-restart", "alice"), conceptRecord("after-restart-bob", "bob")}
	plan := map[string]any{
		"connections":   conns,
		"records":       records,
		"sentinelUsers": []string{"alice", "bob"},
		"restart":       map[string]any{"down": down, "after": after},
	}

	line := runSteps(t, "e2e/socketio.mjs", map[string]string{"E2E_URL": s.URL, "E2E_BROKER": broker, "E2E_PLAN": mustJSON(plan)}, map[string]func(){
		"stop":  s.Stop,
		"start": func() { startService(t, env) }, // the same HTTP address, broker and consumer group
	})
	var res struct {
		Produced          []e2eProduced `json:"produced"`
		ProducedWhileDown []e2eProduced `json:"producedWhileDown"`
		Sentinels         [][]string    `json:"sentinels"`
		Connections       []sioSocket   `json:"connections"`
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil || len(res.Connections) != len(conns) || len(res.Sentinels) != 2 {
		t.Fatalf("socketio.mjs output: %v\n%.6000s", err, line)
	}
	all := slices.Concat(records, after)
	places := placesOf(t, all, res.Produced)
	for k, v := range placesOf(t, down, res.ProducedWhileDown) {
		places[k] = v
	}
	all = append(all, down...)
	sentinels := slices.Concat(res.Sentinels...)

	for i, c := range conns {
		got := res.Connections[i]
		if got.Name != c.Name {
			t.Fatalf("report %d is %s, want %s", i, got.Name, c.Name)
		}
		if c.Expect == "connect_error" {
			if len(got.Connects) != 0 || len(got.Events) != 0 || len(got.ConnectErrors) != 1 {
				t.Errorf("%s: connects %+v, events %d, connect errors %+v; want exactly one connect_error and nothing else", c.Name, got.Connects, len(got.Events), got.ConnectErrors)
				continue
			}
			e := got.ConnectErrors[0]
			var data map[string]any
			json.Unmarshal(e.Data, &data)
			if !strings.Contains(e.Message, c.refusal) || !reflect.DeepEqual(data, map[string]any{"code": "unauthorized"}) {
				t.Errorf("%s: connect_error %q with data %s, want a message saying %q and data {\"code\":\"unauthorized\"}", c.Name, e.Message, e.Data, c.refusal)
			}
			t.Logf("%s: connect_error %q %s", c.Name, e.Message, e.Data)
			continue
		}
		checkSIOEvents(t, got, c.user, all, places, sentinels)

		// Transports: the default setup starts with long-polling and upgrades.
		wantFirst, wantLater := "polling", "websocket"
		if len(c.Transports) == 1 {
			wantFirst, wantLater = c.Transports[0], c.Transports[0]
		}
		if len(got.Connects) != 2 || got.InitialTransport != wantFirst || !slices.Equal(got.Transport, []string{wantLater, wantLater}) {
			t.Errorf("%s: %d connects, first transport %s, transports %v at the end of each round; want two connects, first %s, and %s at the end of both rounds", c.Name, len(got.Connects), got.InitialTransport, got.Transport, wantFirst, wantLater)
		}
		// The restart: a disconnect, then a reconnection by the client itself that recovered
		// the session (the server sent pid and offsets), after every event of the first round.
		if len(got.Disconnects) != 1 || !got.recovered(1) {
			t.Errorf("%s: disconnects %+v and connects %+v, want one disconnect (the restart) and a recovered reconnection", c.Name, got.Disconnects, got.Connects)
		}
		for round, acks := range got.Acks {
			if len(acks) != 2 || string(acks[0]) != fmt.Sprintf(`{"userId":%q}`, c.user) || string(acks[1]) != `{"error":"unknown-event"}` {
				t.Errorf("%s: round %d: acks of whoami and of an unknown event %s, want {\"userId\":%q} and {\"error\":\"unknown-event\"}", c.Name, round+1, mustJSON(acks), c.user)
			}
		}
		if len(got.Acks) != 2 {
			t.Errorf("%s: %d rounds of acks, want 2", c.Name, len(got.Acks))
		}
		t.Logf("%s (%s): %d events, connects %+v, disconnects %+v", c.Name, c.user, len(got.Events), got.Connects, got.Disconnects)
	}
}

// planRecords is records as socketio-recovery.mjs takes them: to says whether a record names user.
func planRecords(records []sioRecord, user string) []map[string]any {
	out := make([]map[string]any, len(records))
	for i, r := range records {
		m := map[string]any{"topic": r.Topic, "key": r.Key, "value": r.Value, "to": slices.Contains(r.to, user)}
		if r.Headers != nil {
			m["headers"] = r.Headers
		}
		if r.Partition != nil {
			m["partition"] = *r.Partition
		}
		out[i] = m
	}
	return out
}

// onPartition returns r produced to partition p.
func onPartition(r sioRecord, p int32) sioRecord {
	r.Partition = &p
	return r
}

// recoveryReport is socketio-recovery.mjs's output.
type recoveryReport struct {
	Produced struct {
		Before, Missed, Live, Resync []e2eProduced
	} `json:"produced"`
	Sentinels []string    `json:"sentinels"`
	Sockets   []sioSocket `json:"sockets"`
}

func (r recoveryReport) socket(t *testing.T, name string) sioSocket {
	t.Helper()
	for _, s := range r.Sockets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no socket %s in the report", name)
	return sioSocket{}
}

// checkRecovered checks a socket that lost its connection after the before events and came back
// (firstBack: the index of the connect that came back): that connect recovered the session (same
// pid), and the socket got exactly the user's before events, then exactly the missed ones, then
// the live ones, each once, in partition order, and every sentinel.
func checkRecovered(t *testing.T, s sioSocket, user string, firstBack int, before, missed, live []sioRecord, places map[string]sioPlace, sentinels []string) {
	t.Helper()
	got := checkSIOEvents(t, s, user, slices.Concat(before, missed, live), places, sentinels)
	if len(s.Connects) != firstBack+1 || !s.recovered(firstBack) || (firstBack > 0 && s.Connects[firstBack].PID != s.Connects[0].PID) {
		t.Errorf("%s: connects %+v, want the reconnection to recover the session (socket.recovered true, the same pid)", s.Name, s.Connects)
	}
	var segments [][]string
	for _, rs := range [][]sioRecord{before, missed, live} {
		var keys []string
		for _, r := range rs {
			if slices.Contains(r.to, user) {
				keys = append(keys, dataKey(json.RawMessage(r.Value)))
			}
		}
		segments = append(segments, keys)
	}
	for i, what := range []string{"before the drop", "missed", "live"} {
		n := min(len(segments[i]), len(got))
		seg := got[:n]
		got = got[n:]
		if !slices.Equal(slices.Sorted(slices.Values(seg)), slices.Sorted(slices.Values(segments[i]))) {
			t.Errorf("%s: the events %s are %v, want %v (in any order across partitions)", s.Name, what, seg, segments[i])
		}
	}
	t.Logf("%s: %d events, connects %+v, disconnects %+v", s.Name, len(s.Events), s.Connects, s.Disconnects)
}

// metric returns the value of the Prometheus sample name{labels} (e.g. `source="kafka"`) that the
// service at url exposes, 0 if it has none.
func metric(t *testing.T, url, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return f
		}
	}
	return 0
}

// TestSocketIORecoveryGetsExactlyWhatWasMissed: a socket.io-client@4 socket with the default
// options (long-polling upgraded to WebSocket, reconnection on) gets events, then loses the
// network under it (socketio-recovery.mjs's proxy destroys its TCP connections and refuses new
// ones); KafkaJS produces records meanwhile (to both topics and several partitions, some for
// others) and the service publishes them; the proxy lets connections through again, and the
// socket reconnects by itself, sending its pid and offset (the cursor of its last cursor packet):
// socket.recovered is true (same pid) and it gets exactly the events it missed, in partition
// order, then live ones, none twice once de-duplicated on ID (those it had since its last cursor
// may come again) — from the node's memory, and from Kafka when the history is off.
func TestSocketIORecoveryGetsExactlyWhatWasMissed(t *testing.T) {
	nodeModules(t)
	for _, tc := range []struct {
		name, source string
		env          map[string]string
	}{
		{"from memory", "memory", nil},
		{"from Kafka", "kafka", map[string]string{"REALTIME_HISTORY_SIZE": "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startService(t, tc.env)
			s.waitConsuming()
			before := []sioRecord{
				onPartition(conceptRecord("before-1", "alice"), 0),
				onPartition(sessionRecord("before-2", "alice", "bob"), 1),
				onPartition(sessionRecord("before-3", "bob"), 1),
			}
			missed := []sioRecord{
				onPartition(conceptRecord("missed-1", "alice"), 0),
				onPartition(conceptRecord("missed-2", "bob"), 0),
				onPartition(sessionRecord("missed-3", "carol", "alice"), 1),
				onPartition(conceptRecord("missed-4", "alice"), 2),
				onPartition(conceptRecord("missed-5", "alice"), 0),
				onPartition(sessionRecord("missed-6", "bob"), 2),
			}
			live := []sioRecord{
				onPartition(conceptRecord("live-1", "alice"), 0),
				onPartition(conceptRecord("live-2", "bob"), 0),
				onPartition(sessionRecord("live-3", "alice"), 2),
			}
			plan := map[string]any{
				"url": s.URL, "witnessUrl": s.URL, "token": clientToken(t, "alice"), "drop": "network",
				"before": planRecords(before, "alice"), "missed": planRecords(missed, "alice"), "live": planRecords(live, "alice"),
				"sentinelUsers": []string{"alice"},
			}
			var res recoveryReport
			out := runSteps(t, "e2e/socketio-recovery.mjs", map[string]string{"E2E_BROKER": s.Broker, "E2E_PLAN": mustJSON(plan)}, nil)
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("socketio-recovery.mjs output: %v\n%.4000s", err, out)
			}
			places := placesOf(t, slices.Concat(before, missed, live), slices.Concat(res.Produced.Before, res.Produced.Missed, res.Produced.Live))
			checkRecovered(t, res.socket(t, "client"), "alice", 1, before, missed, live, places, res.Sentinels)
			if w := res.socket(t, "witness"); len(w.Connects) != 1 || len(w.Disconnects) != 0 {
				t.Errorf("witness: connects %+v, disconnects %+v, want one connection throughout", w.Connects, w.Disconnects)
			} else {
				checkSIOEvents(t, w, "alice", slices.Concat(before, missed, live), places, res.Sentinels)
			}
			if n := metric(t, s.URL, "realtime_replays_total", `source="`+tc.source+`"`); n < 1 {
				t.Errorf("realtime_replays_total{source=%q} is %v: the missed events did not come from %s", tc.source, n, tc.source)
			}
		})
	}
}

// TestSocketIOUnusableOffsetGetsResync: socket.io-client@4 sockets whose recovery state is set
// by hand (socket._pid and socket._lastOffset, so that the CONNECT carries
// {"pid":"x","offset":...,"token":...}) with an offset the server cannot honour — garbage, a
// cursor of another cluster, a cursor whose missed records Kafka has deleted — connect with
// socket.recovered false and a new pid, and get a "resync" event (data {reason, message}, then a
// cursor) before anything else, then live events:
// docs/design.md, "Delivery semantics" (never silence): a cursor the server cannot honour gets
// an explicit resync event, and the connection goes on fresh.
func TestSocketIOUnusableOffsetGetsResync(t *testing.T) {
	nodeModules(t)
	s := startService(t, map[string]string{"REALTIME_HISTORY_SIZE": "0"}) // missed events come from Kafka
	s.waitConsuming()
	otherCluster, err := realtime.NewCursorCodec("another-cluster", []string{"session-notifications", "concept-notifications"})
	if err != nil {
		t.Fatal(err)
	}
	// An offset the server wrote, whose missed records retention has deleted since: erin's
	// opening cursor, then three events she missed, then Kafka deleted everything up to the end
	// of the partition.
	p := newProducer(t, s.Broker)
	_, frames := openWS(t, s, "erin", "")
	waitConnected(t, s, 1)
	opening := next(t, frames)
	if opening.Event != "cursor" || opening.Cursor == "" {
		t.Fatalf("first frame %+v, want the opening cursor", opening)
	}
	expiredOffset := opening.Cursor
	for range 3 {
		p.send("erin")
	}
	for got := 0; got < 3; { // consumed: the node's position is past them
		if f := next(t, frames); f.Event != "cursor" {
			got++
		}
	}
	p.deleteAll(0)

	resync := []struct {
		name, user, pid, offset, reason string
		record                          sioRecord
	}{
		{"garbage-offset", "dave", "x", "garbage", "malformed", conceptRecord("after-garbage", "dave")},
		{"other-cluster-offset", "dave", "x", otherCluster.Encode([]realtime.Position{{Topic: "concept-notifications", Partition: 0, Offset: 1}}), "other-cluster", conceptRecord("after-other-cluster", "dave")},
		{"expired-offset", "erin", "x", expiredOffset, "expired", conceptRecord("after-expired", "erin")},
	}
	var resyncPlan []map[string]any
	for _, r := range resync {
		resyncPlan = append(resyncPlan, map[string]any{"name": r.name, "token": clientToken(t, r.user), "pid": r.pid, "offset": r.offset,
			"record": planRecords([]sioRecord{r.record}, r.user)[0]})
	}
	plan := map[string]any{"url": s.URL, "resync": resyncPlan}
	var res recoveryReport
	out := runSteps(t, "e2e/socketio-recovery.mjs", map[string]string{"E2E_BROKER": s.Broker, "E2E_PLAN": mustJSON(plan)}, nil)
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Produced.Resync) != len(resync) {
		t.Fatalf("socketio-recovery.mjs output: %v\n%.4000s", err, out)
	}
	for _, r := range resync {
		sock := res.socket(t, r.name)
		if len(sock.Connects) != 1 || string(sock.Connects[0].Recovered) != "false" || sock.Connects[0].PID == r.pid {
			t.Errorf("%s: connects %+v, want one connect that did not recover (socket.recovered false, a new pid)", r.name, sock.Connects)
		}
		var names []string
		sock.Events = slices.DeleteFunc(sock.Events, func(e sioEvent) bool { return e.Event == "cursor" }) // a ping's
		for _, e := range sock.Events {
			names = append(names, e.Event)
		}
		t.Logf("%s (offset %.40q): events %v", r.name, r.offset, names)
		if len(sock.Events) != 2 || sock.Events[0].Event != "resync" {
			t.Errorf("%s (offset %.40q): events %v, want a resync event, then the live one", r.name, r.offset, names)
			continue
		}
		var data map[string]string
		var cursor string
		if e := sock.Events[0]; len(e.Args) != 2 || json.Unmarshal(e.Args[0], &data) != nil || data["reason"] != r.reason || data["message"] == "" ||
			json.Unmarshal(e.Args[1], &cursor) != nil || cursor == "" {
			t.Errorf("%s: resync %s, want data {reason: %q, message} and a cursor", r.name, mustJSON(e.Args), r.reason)
		}
		if e := sock.Events[1]; e.Event != "concept-mastered" || dataKey(e.Args[0]) != dataKey(json.RawMessage(r.record.Value)) {
			t.Errorf("%s: after the resync %s %s, want the live record %s", r.name, e.Event, e.Args[0], r.record.Value)
		}
	}
	if n := metric(t, s.URL, "realtime_resyncs_total", `reason="malformed"`); n != 1 {
		t.Errorf("realtime_resyncs_total{reason=\"malformed\"} is %v, want 1", n)
	}
}

// TestSocketIORecoveryOnAnotherNode: two service processes share a broker; node 2 keeps no
// history (REALTIME_HISTORY_SIZE=0). A socket.io-client@4 socket (WebSocket only) reaches node 1
// through a load balancer (socketio-recovery.mjs's proxy) and gets events; a second socket is
// connected straight to node 1. Node 1 is killed (SIGKILL) while the balancer refuses new
// connections; KafkaJS produces records meanwhile and node 2 publishes them; then the balancer
// sends new connections to node 2. The first socket reconnects by itself through the balancer,
// the second is replaced by a new io() to node 2 carrying its pid and offset (socket.io-client
// keeps them on the Socket: _pid, _lastOffset). Both recover (socket.recovered, the same pid)
// and get exactly the missed events, read from Kafka by node 2, then live ones, none twice once
// de-duplicated on ID.
func TestSocketIORecoveryOnAnotherNode(t *testing.T) {
	nodeModules(t)
	broker := startBroker(t)
	n1, n2 := startNode(t, broker, "n1"), startNode(t, broker, "n2", "REALTIME_HISTORY_SIZE=0")
	n1.waitConsuming()
	n2.waitConsuming()
	before := []sioRecord{
		onPartition(conceptRecord("before-1", "alice"), 0),
		onPartition(sessionRecord("before-2", "bob", "alice"), 2),
	}
	missed := []sioRecord{
		onPartition(conceptRecord("missed-1", "alice"), 0),
		onPartition(sessionRecord("missed-2", "alice"), 1),
		onPartition(conceptRecord("missed-3", "bob"), 0),
		onPartition(conceptRecord("missed-4", "carol", "alice"), 1),
		onPartition(sessionRecord("missed-5", "alice"), 2),
	}
	live := []sioRecord{onPartition(conceptRecord("live-1", "alice"), 2), onPartition(conceptRecord("live-2", "bob"), 2)}
	plan := map[string]any{
		"url": n1.URL, "witnessUrl": n2.URL, "moveTo": n2.URL, "token": clientToken(t, "alice"),
		"transports": []string{"websocket"}, "drop": "node",
		"before": planRecords(before, "alice"), "missed": planRecords(missed, "alice"), "live": planRecords(live, "alice"),
		"sentinelUsers": []string{"alice"},
	}
	kafkaReplays := metric(t, n2.URL, "realtime_replays_total", `source="kafka"`)
	out := runSteps(t, "e2e/socketio-recovery.mjs", map[string]string{"E2E_BROKER": broker, "E2E_PLAN": mustJSON(plan)}, map[string]func(){
		"stop-node": func() { n1.kill(t) },
	})
	var res recoveryReport
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("socketio-recovery.mjs output: %v\n%.4000s", err, out)
	}
	places := placesOf(t, slices.Concat(before, missed, live), slices.Concat(res.Produced.Before, res.Produced.Missed, res.Produced.Live))
	checkRecovered(t, res.socket(t, "client"), "alice", 1, before, missed, live, places, res.Sentinels)
	// The moved socket is a new Socket: its only connect recovered the direct socket's session.
	direct, moved := res.socket(t, "direct"), res.socket(t, "moved")
	if len(direct.Connects) != 1 || len(moved.Connects) != 1 || moved.Connects[0].PID != direct.Connects[0].PID {
		t.Errorf("direct socket connects %+v, moved socket connects %+v: want the moved one to keep the direct one's pid", direct.Connects, moved.Connects)
	}
	for i := range moved.Connects { // counted from the moved socket's first event
		moved.Connects[i].AtEvent += len(direct.Events)
	}
	moved.Events = slices.Concat(direct.Events, moved.Events) // one client's view across the move
	moved.Connects = slices.Concat(direct.Connects, moved.Connects)
	checkRecovered(t, moved, "alice", 1, before, missed, live, places, res.Sentinels)
	if n := metric(t, n2.URL, "realtime_replays_total", `source="kafka"`) - kafkaReplays; n != 2 {
		t.Errorf("node 2 served %v resumes from Kafka, want 2 (its history is off)", n)
	}
}

// TestSocketIOLimitsFromTheEnvironment: REALTIME_MAX_MESSAGE_BYTES, REALTIME_PING_INTERVAL and
// REALTIME_PONG_TIMEOUT are the announced maxPayload, pingInterval and pingTimeout,
// REALTIME_PREAUTH_MAX_MESSAGE_BYTES refuses a larger POST before the CONNECT with 413, and
// REALTIME_AUTH_TIMEOUT closes a session that never connects (its long-poll gets the close
// packet, not the ping that would come after REALTIME_PING_INTERVAL); the closes are counted.
func TestSocketIOLimitsFromTheEnvironment(t *testing.T) {
	s := startService(t, map[string]string{
		"REALTIME_MAX_MESSAGE_BYTES":         "2048",
		"REALTIME_PREAUTH_MAX_MESSAGE_BYTES": "1024",
		"REALTIME_AUTH_TIMEOUT":              "200",
		"REALTIME_PING_INTERVAL":             "60000",
		"REALTIME_PONG_TIMEOUT":              "7000",
	})
	handshake := func() string {
		t.Helper()
		resp, err := http.Get(s.URL + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var open struct {
			SID          string `json:"sid"`
			MaxPayload   int    `json:"maxPayload"`
			PingInterval int    `json:"pingInterval"`
			PingTimeout  int    `json:"pingTimeout"`
		}
		if resp.StatusCode != http.StatusOK || len(body) == 0 || json.Unmarshal(body[1:], &open) != nil {
			t.Fatalf("handshake: %d %s", resp.StatusCode, body)
		}
		if open.MaxPayload != 2048 || open.PingInterval != 60000 || open.PingTimeout != 7000 {
			t.Errorf("open packet %+v, want maxPayload 2048, pingInterval 60000, pingTimeout 7000 (the environment's)", open)
		}
		return s.URL + "/socket.io/?EIO=4&transport=polling&sid=" + open.SID
	}

	// Through the whole HTTP stack (router, middleware), a refused Engine.IO request gets the
	// protocol's 400 and error body, not the router's 404 or 405.
	for query, want := range map[string]string{
		"?transport=polling":                `{"code":5,"message":"Unsupported protocol version"}`,
		"?EIO=3&transport=polling":          `{"code":5,"message":"Unsupported protocol version"}`,
		"?EIO=4&transport=abc":              `{"code":0,"message":"Transport unknown"}`,
		"?EIO=4&transport=polling&sid=nope": `{"code":1,"message":"Session ID unknown"}`,
	} {
		resp, err := http.Get(s.URL + "/socket.io/" + query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || string(body) != want {
			t.Errorf("GET /socket.io/%s: %d %s, want 400 %s", query, resp.StatusCode, body, want)
		}
	}

	resp, err := http.Post(handshake(), "text/plain", strings.NewReader(strings.Repeat("6", 1025)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 1025 bytes before the CONNECT: %d, want 413", resp.StatusCode)
	}

	// 3 s: 15 times REALTIME_AUTH_TIMEOUT, and below the 5 s default that a serve.go which did
	// not pass the variable would use
	resp, err = (&http.Client{Timeout: 3 * time.Second}).Get(handshake())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "1" {
		t.Errorf("long-poll of a session that never connects: %d %q, want the close packet", resp.StatusCode, body)
	}
	if got := metric(t, s.URL, "realtime_socketio_protocol_errors_total", `reason="auth_timeout"`); got != 1 {
		t.Errorf("auth_timeout protocol errors = %v, want 1", got)
	}
}

// TestSocketIOCursorArgFromTheEnvironment: REALTIME_SOCKETIO_CURSOR_ARG=false reaches Socket.IO:
// the cursor control event a connected client gets at a ping carries the cursor as its one
// argument, `42["cursor","<cursor>"]`, where the default sends `42["cursor",null,"<cursor>"]`.
func TestSocketIOCursorArgFromTheEnvironment(t *testing.T) {
	s := startService(t, map[string]string{
		"REALTIME_SOCKETIO_CURSOR_ARG": "false",
		"REALTIME_PING_INTERVAL":       "200",
	})
	s.waitConsuming()
	get := func(url string) []string {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		return strings.Split(string(body), "\x1e")
	}
	post := func(url, body string) {
		t.Helper()
		resp, err := http.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	open := get(s.URL + "/socket.io/?EIO=4&transport=polling")
	var o struct{ SID string }
	if err := json.Unmarshal([]byte(open[0][1:]), &o); err != nil {
		t.Fatalf("open packet %q: %v", open, err)
	}
	url := s.URL + "/socket.io/?EIO=4&transport=polling&sid=" + o.SID
	post(url, `40{"token":"`+clientToken(t, "alice")+`"}`)
	for range 50 { // a few pings at most: the first one after the CONNECT brings the cursor
		for _, p := range get(url) {
			switch {
			case p == "2":
				post(url, "3")
			case strings.HasPrefix(p, `42["cursor",`):
				if !strings.HasPrefix(p, `42["cursor","`) {
					t.Fatalf("cursor event %q, want the cursor as its only argument", p)
				}
				return
			}
		}
	}
	t.Fatal("no cursor event")
}
