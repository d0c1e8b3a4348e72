package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// End-to-end tests of "Realtime delivery" with independent clients: KafkaJS (the original
// service's Kafka library) produces straight to the topics, and the node `ws` and `eventsource`
// clients are the users' connections. The scripts are in test/interop/e2e; they report what they
// produced and every frame they received, and these tests check it against docs/design.md ("Topics and
// records", "Delivery semantics", "Client frames").

// e2eConn is one client connection of a deliver.mjs plan.
type e2eConn struct {
	Name      string `json:"name"`
	Transport string `json:"transport"`       // "ws" or "sse"
	Token     string `json:"token"`           // the user's token
	Auth      string `json:"auth,omitempty"`  // ws: "query" (?access_token=, default) or "subprotocol"
	Query     string `json:"query,omitempty"` // extra query parameters, e.g. "userId=bob"
	user      string // whose token it is: the user whose events it must get
}

// e2eRecord is one record KafkaJS produces; to and event are what the test expects of it.
type e2eRecord struct {
	Topic     string            `json:"topic"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Tombstone bool              `json:"tombstone,omitempty"` // a null value instead of Value
	Headers   map[string]string `json:"headers,omitempty"`
	Partition *int32            `json:"partition,omitempty"`
	to        []string          // users whose connections must get it (none: it is poison)
	event     string            // the frame's event name
}

type e2ePlan struct {
	Connections   []e2eConn   `json:"connections"`
	Records       []e2eRecord `json:"records"`
	SentinelUsers []string    `json:"sentinelUsers"`
}

// e2eProduced is a record as KafkaJS reported it produced.
type e2eProduced struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	ID        string            `json:"id"`
	Key       *string           `json:"key"`
	ValueNull bool              `json:"valueNull"`
	ValueLen  int               `json:"valueBytes"`
	Headers   map[string]string `json:"headers"`
	Timestamp int64             `json:"timestamp"` // ms since the epoch
}

// e2eFrame is one message a client received: a WebSocket message or an SSE event.
type e2eFrame struct {
	Raw         string  `json:"raw"`
	Binary      bool    `json:"binary"`      // ws
	LastEventID *string `json:"lastEventId"` // sse: the id: line, as EventSource saw it
	Type        string  `json:"type"`        // sse: the event type
}

type e2eConnReport struct {
	Name      string     `json:"name"`
	Transport string     `json:"transport"`
	Frames    []e2eFrame `json:"frames"`
	Protocol  *string    `json:"protocol"`
	Closed    *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"closed"`
}

type e2eResult struct {
	Produced    []e2eProduced   `json:"produced"`
	Sentinels   []string        `json:"sentinels"`
	Connections []e2eConnReport `json:"connections"`
	Error       string          `json:"error"`
}

// deliver runs test/interop/e2e/deliver.mjs with plan against s and returns its report.
func deliver(t *testing.T, s *service, plan e2ePlan) e2eResult {
	t.Helper()
	js, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	out := runNode(t, "e2e/deliver.mjs", map[string]string{"E2E_URL": s.URL, "E2E_BROKER": s.Broker, "E2E_PLAN": string(js)})
	var res e2eResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("deliver.mjs output: %v\n%.4000s", err, out)
	}
	if len(res.Produced) != len(plan.Records) || len(res.Connections) != len(plan.Connections) {
		t.Fatalf("deliver.mjs reported %d records and %d connections, want %d and %d", len(res.Produced), len(res.Connections), len(plan.Records), len(plan.Connections))
	}
	return res
}

// frameFields are the keys of a client frame (docs/design.md, "Client frames"), exactly.
var frameFields = []string{"data", "event", "id", "time"}

// cursorFrameFields are a WebSocket cursor frame's fields (docs/design.md, "Cursor"); on SSE the
// cursor is the id: line and the JSON has frameFields.
var cursorFrameFields = []string{"cursor", "data", "event", "id", "time"}

// clientFrame is a decoded client frame.
type clientFrame struct {
	ID, Event, Time, Cursor string
	Data                    json.RawMessage
}

// parseFrame decodes a received frame and checks its shape: a text message (ws) or an unnamed
// "message" event (sse), holding a JSON object with exactly the frame fields (a WebSocket cursor
// frame also "cursor"), the strings being strings and time RFC 3339. A cursor frame's Cursor is
// its "cursor" field (ws) or its id: line (sse), and must not be empty.
func parseFrame(t *testing.T, conn string, f e2eFrame) (clientFrame, bool) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(f.Raw), &fields); err != nil {
		t.Errorf("%s: frame is not a JSON object: %v: %s", conn, err, f.Raw)
		return clientFrame{}, false
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var c clientFrame
	c.Data = fields["data"]
	for k, dst := range map[string]*string{"id": &c.ID, "event": &c.Event, "time": &c.Time} {
		if err := json.Unmarshal(fields[k], dst); err != nil {
			t.Errorf("%s: frame field %s is not a string: %s", conn, k, f.Raw)
		}
	}
	isCursor := c.Event == "cursor" && c.ID == ""
	want := frameFields
	if isCursor && f.LastEventID == nil {
		want = cursorFrameFields
		if err := json.Unmarshal(fields["cursor"], &c.Cursor); err != nil {
			t.Errorf("%s: frame field cursor is not a string: %s", conn, f.Raw)
		}
	}
	if !slices.Equal(keys, want) {
		t.Errorf("%s: frame has fields %v, want exactly %v: %s", conn, keys, want, f.Raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, c.Time); err != nil {
		t.Errorf("%s: frame time %q is not RFC 3339: %v", conn, c.Time, err)
	}
	if f.Binary {
		t.Errorf("%s: binary WebSocket message, want text: %s", conn, f.Raw)
	}
	if f.LastEventID != nil { // SSE
		if f.Type != "message" {
			t.Errorf("%s: SSE event type %q, want message (no event: line)", conn, f.Type)
		}
		if isCursor {
			c.Cursor = *f.LastEventID
		}
	}
	if isCursor && c.Cursor == "" {
		t.Errorf("%s: cursor frame without a cursor: %s", conn, f.Raw)
	}
	return c, true
}

// checkDelivery checks that each connection got exactly the events of the records naming its
// user (plus the sentinels), each once, per partition in offset order, with exact frames: id
// from the partition and offset KafkaJS got back, the expected event name, data deep-equal to
// the produced value, time the record's timestamp, after the opening cursor frame (on SSE the
// browser's lastEventId stays the last cursor frame's id: line: events have none).
func checkDelivery(t *testing.T, plan e2ePlan, res e2eResult) {
	t.Helper()
	byID := map[string]int{} // event ID -> record index
	for i, p := range res.Produced {
		r := plan.Records[i]
		if want := fmt.Sprintf("%s:%d:%d", p.Topic, p.Partition, p.Offset); p.ID != want || p.Topic != r.Topic || p.ValueNull != r.Tombstone || (!r.Tombstone && p.ValueLen != len(r.Value)) {
			t.Fatalf("record %d reported as %+v", i, p)
		}
		byID[p.ID] = i
	}
	sentinel := map[string]bool{}
	for _, id := range res.Sentinels {
		sentinel[id] = true
	}
	for ci, rep := range res.Connections {
		conn := plan.Connections[ci]
		if rep.Name != conn.Name {
			t.Fatalf("report %d is %s, want %s", ci, rep.Name, conn.Name)
		}
		var want []string
		for i, r := range plan.Records {
			if slices.Contains(r.to, conn.user) {
				want = append(want, res.Produced[i].ID)
			}
		}
		var got []string
		seen := map[string]bool{}
		last := map[string]int64{} // topic:partition -> last offset received
		cursor := ""               // the last cursor frame's
		for _, f := range rep.Frames {
			c, ok := parseFrame(t, conn.Name, f)
			if !ok {
				continue
			}
			if c.Event == "cursor" && c.ID == "" {
				cursor = c.Cursor
				continue
			}
			if cursor == "" {
				t.Errorf("%s: event %s before any cursor frame (the opening cursor comes first)", conn.Name, c.ID)
			}
			// An event has no id: line, so its lastEventId is the last cursor's (WHATWG HTML keeps
			// the last id for every later message) or, from the eventsource package, which
			// reports only a message's own id line, "".
			if f.LastEventID != nil && *f.LastEventID != cursor && *f.LastEventID != "" {
				t.Errorf("%s: event %s with lastEventId %q: an id: line of its own (want none; the last cursor is %q)", conn.Name, c.ID, *f.LastEventID, cursor)
			}
			if seen[c.ID] {
				t.Errorf("%s: event %s received twice", conn.Name, c.ID)
			}
			seen[c.ID] = true
			var off int64
			var part string
			if i := strings.LastIndexByte(c.ID, ':'); i > 0 {
				part = c.ID[:i]
				fmt.Sscan(c.ID[i+1:], &off)
			}
			if prev, ok := last[part]; ok && off <= prev {
				t.Errorf("%s: event %s after offset %d of the same partition", conn.Name, c.ID, prev)
			}
			last[part] = off
			if sentinel[c.ID] {
				continue
			}
			i, ok := byID[c.ID]
			if !ok {
				t.Errorf("%s (user %s): unexpected frame %s", conn.Name, conn.user, f.Raw)
				continue
			}
			got = append(got, c.ID)
			rec, p := plan.Records[i], res.Produced[i]
			if !slices.Contains(rec.to, conn.user) {
				t.Errorf("%s (user %s) got event %s meant for %v", conn.Name, conn.user, c.ID, rec.to)
			}
			if c.Event != rec.event {
				t.Errorf("%s: event %s is %q, want %q", conn.Name, c.ID, c.Event, rec.event)
			}
			var gotData, wantData any
			if err := json.Unmarshal(c.Data, &gotData); err != nil {
				t.Errorf("%s: event %s data: %v", conn.Name, c.ID, err)
			}
			wantData = clientData(t, rec.Value)
			if !reflect.DeepEqual(gotData, wantData) {
				t.Errorf("%s: event %s data %s, want the record value without userIds %s", conn.Name, c.ID, c.Data, rec.Value)
			}
			if tm, err := time.Parse(time.RFC3339Nano, c.Time); err == nil && tm.UnixMilli() != p.Timestamp {
				t.Errorf("%s: event %s time %s, want the record timestamp %s", conn.Name, c.ID, c.Time, time.UnixMilli(p.Timestamp).UTC().Format(time.RFC3339Nano))
			}
		}
		for _, id := range res.Sentinels {
			if !seen[id] {
				t.Errorf("%s: sentinel %s missing", conn.Name, id)
			}
		}
		t.Logf("%s (user %s): %d frames: events %v and %d sentinels", conn.Name, conn.user, len(rep.Frames), got, len(res.Sentinels))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s (user %s) got events %v, want %v", conn.Name, conn.user, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestKafkaJSRecordsReachEveryConnectionOfEachNamedUser: records KafkaJS produces to both topics
// (keyed or not, with or without an event-type header, pretty-printed, non-ASCII, an unknown
// field, a repeated user) reach, as exact frames, every WebSocket (token in ?access_token= or in
// the subprotocol pair) and SSE connection of each user they name, alice's WebSocket and SSE
// connections alike, and nobody else's: dave, connected, gets nothing.
func TestKafkaJSRecordsReachEveryConnectionOfEachNamedUser(t *testing.T) {
	nodeModules(t)
	s := startService(t, nil)
	s.waitConsuming()
	tok := func(u string) string { return clientToken(t, u) }
	plan := e2ePlan{
		Connections: []e2eConn{
			{Name: "alice-ws", Transport: "ws", Token: tok("alice"), user: "alice"},
			{Name: "alice-sse", Transport: "sse", Token: tok("alice"), user: "alice"},
			{Name: "bob-ws-subprotocol", Transport: "ws", Token: tok("bob"), Auth: "subprotocol", user: "bob"},
			{Name: "carol-sse", Transport: "sse", Token: tok("carol"), user: "carol"},
			{Name: "dave-ws", Transport: "ws", Token: tok("dave"), user: "dave"},
		},
		Records: []e2eRecord{
			{Topic: "concept-notifications", Key: ptr("js-arrays"),
				Value: `{"conceptId":"js-arrays","userIds":["alice","bob"],"conceptName":"JavaScript Arrays","masteryLevel":0.92}`,
				to:    []string{"alice", "bob"}, event: "concept-mastered"},
			{Topic: "session-notifications",
				Value: `{"sessionId":"session-42","userIds":["carol","alice"],"message":"Your session starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`,
				to:    []string{"carol", "alice"}, event: "session-starting-soon"},
			{Topic: "concept-notifications", Headers: map[string]string{"event-type": "concept-reviewed", "trace-id": "t-3"},
				Value: "{\n  \"conceptId\": \"closures\",\n  \"userIds\": [\"bob\", \"carol\", \"bob\"],\n  \"conceptName\": \"Closures — “scope” ✓ 日本語\",\n  \"masteryLevel\": 1,\n  \"source\": {\"service\": \"grader\", \"attempt\": 3}\n}",
				to:    []string{"bob", "carol"}, event: "concept-reviewed"},
			{Topic: "session-notifications", Key: ptr("session-7"), Headers: map[string]string{"event-type": "session-rescheduled"},
				Value: `{"sessionId":"session-7","userIds":["alice"],"message":"Moved to 11:00","scheduledTime":"2026-11-29T11:00:00+01:00"}`,
				to:    []string{"alice"}, event: "session-rescheduled"},
			{Topic: "concept-notifications", Key: ptr("js-arrays"), Headers: map[string]string{"event-type": "concept-mastered"},
				Value: `{"conceptId":"js-arrays","userIds":["carol"],"conceptName":"JavaScript Arrays","masteryLevel":0}`,
				to:    []string{"carol"}, event: "concept-mastered"},
		},
		SentinelUsers: []string{"alice", "bob", "carol", "dave"},
	}
	res := deliver(t, s, plan)
	checkDelivery(t, plan, res)
	for _, c := range res.Connections {
		if c.Name == "bob-ws-subprotocol" && (c.Protocol == nil || *c.Protocol != "realtime.v1") {
			t.Errorf("bob's WebSocket subprotocol is %v, want realtime.v1 selected (never the token)", c.Protocol)
		}
	}
}

// TestUserIDParameterCannotSelectAnotherUser: a connection with alice's token and ?userId=bob
// gets alice's events only; bob's own connection shows bob's events were delivered.
func TestUserIDParameterCannotSelectAnotherUser(t *testing.T) {
	nodeModules(t)
	s := startService(t, nil)
	s.waitConsuming()
	alice := clientToken(t, "alice")
	plan := e2ePlan{
		Connections: []e2eConn{
			{Name: "alice-as-bob-ws", Transport: "ws", Token: alice, Query: "userId=bob", user: "alice"},
			{Name: "alice-as-bob-ws-subprotocol", Transport: "ws", Token: alice, Auth: "subprotocol", Query: "userId=bob", user: "alice"},
			{Name: "alice-as-bob-sse", Transport: "sse", Token: alice, Query: "userId=bob", user: "alice"},
			{Name: "bob-ws", Transport: "ws", Token: clientToken(t, "bob"), user: "bob"},
		},
		Records: []e2eRecord{
			{Topic: "concept-notifications", Key: ptr("c-bob"),
				Value: `{"conceptId":"c-bob","userIds":["bob"],"conceptName":"For bob","masteryLevel":0.5}`,
				to:    []string{"bob"}, event: "concept-mastered"},
			{Topic: "session-notifications", Key: ptr("s-bob"),
				Value: `{"sessionId":"s-bob","userIds":["bob"],"message":"For bob","scheduledTime":"2026-11-29T10:00:00Z"}`,
				to:    []string{"bob"}, event: "session-starting-soon"},
			{Topic: "concept-notifications", Key: ptr("c-alice"),
				Value: `{"conceptId":"c-alice","userIds":["alice"],"conceptName":"For alice","masteryLevel":0.5}`,
				to:    []string{"alice"}, event: "concept-mastered"},
			{Topic: "session-notifications",
				Value: `{"sessionId":"s-both","userIds":["bob","alice"],"message":"For both","scheduledTime":"2026-11-29T10:00:00Z"}`,
				to:    []string{"alice", "bob"}, event: "session-starting-soon"},
		},
		SentinelUsers: []string{"alice", "bob"},
	}
	checkDelivery(t, plan, deliver(t, s, plan))
}

// TestBadTokensAre401BeforeAnyUpgradeOrStream: a missing, expired, wrongly signed, alg-none,
// HS512 or malformed token gets 401 application/problem+json (code user-unauthorized, a Bearer
// challenge) from /v1/ws, whether the token came in ?access_token= or in the subprotocol pair:
// the ws client sees the HTTP answer in 'unexpected-response', never an upgrade; and from
// /v1/events: EventSource gets the 401 instead of a stream and gives up. A valid token connects
// on every path, so the 401s are about the tokens.
func TestBadTokensAre401BeforeAnyUpgradeOrStream(t *testing.T) {
	nodeModules(t)
	s := startService(t, nil)
	now := time.Now()
	sign := func(method jwt.SigningMethod, key any, claims jwt.Claims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	b64 := base64.RawURLEncoding.EncodeToString
	tokens := map[string]string{
		"valid":   clientToken(t, "alice"),
		"missing": "",
		"expired": sign(jwt.SigningMethodHS256, []byte(testSecret), jwt.RegisteredClaims{Subject: "alice",
			IssuedAt: jwt.NewNumericDate(now.Add(-2 * time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(-time.Hour))}),
		"wrongly-signed": sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), jwt.RegisteredClaims{Subject: "alice",
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}),
		"alg-none": b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
			b64(fmt.Appendf(nil, `{"sub":"alice","exp":%d}`, now.Add(time.Hour).Unix())) + ".",
		"hs512-same-secret": sign(jwt.SigningMethodHS512, []byte(testSecret), jwt.RegisteredClaims{Subject: "alice",
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}),
		"malformed": "not-a-jwt",
	}
	js, _ := json.Marshal(tokens)
	out := runNode(t, "e2e/auth.mjs", map[string]string{"E2E_URL": s.URL, "E2E_TOKENS": string(js)})
	var res struct {
		Results []struct {
			Case, Endpoint, Via string
			Opened              bool
			Status              *int
			ContentType         *string
			WWWAuthenticate     *string
			Upgrade             *string
			Body                *string
			Protocol            *string
			EventSourceError    *struct {
				Code   *int
				Closed bool
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("auth.mjs output: %v\n%s", err, out)
	}
	if want := 3*len(tokens) - 1; len(res.Results) != want { // no subprotocol try without a token
		t.Fatalf("%d results, want %d:\n%s", len(res.Results), want, out)
	}
	str := func(p *string) string {
		if p == nil {
			return "<none>"
		}
		return *p
	}
	for _, r := range res.Results {
		what := r.Case + " token, " + r.Endpoint + " via " + r.Via
		if r.Case == "valid" {
			if !r.Opened {
				t.Errorf("%s: did not connect: %+v", what, r)
			}
			if r.Endpoint == "/v1/ws" && r.Via == "subprotocol" && str(r.Protocol) != "realtime.v1" {
				t.Errorf("%s: subprotocol %s, want realtime.v1", what, str(r.Protocol))
			}
			if r.Endpoint == "/v1/events" && !strings.HasPrefix(str(r.ContentType), "text/event-stream") {
				t.Errorf("%s: Content-Type %s", what, str(r.ContentType))
			}
			continue
		}
		if r.Opened || r.Status == nil || *r.Status != http.StatusUnauthorized {
			status := "none"
			if r.Status != nil {
				status = strconv.Itoa(*r.Status)
			}
			t.Errorf("%s: opened %v, status %s; want a 401 and no connection", what, r.Opened, status)
			continue
		}
		if mt, _, err := mime.ParseMediaType(str(r.ContentType)); err != nil || mt != "application/problem+json" {
			t.Errorf("%s: Content-Type %s, want application/problem+json", what, str(r.ContentType))
		}
		if !strings.HasPrefix(str(r.WWWAuthenticate), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %s, want a Bearer challenge", what, str(r.WWWAuthenticate))
		}
		if r.Upgrade != nil {
			t.Errorf("%s: the 401 carries Upgrade: %s", what, *r.Upgrade)
		}
		var p struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(str(r.Body)), &p); err != nil || p.Status != 401 || p.Code != "user-unauthorized" || p.Detail == "" {
			t.Errorf("%s: body %s, want a problem with status 401 and code user-unauthorized", what, str(r.Body))
		}
		if r.Endpoint == "/v1/events" && (r.EventSourceError == nil || r.EventSourceError.Code == nil || *r.EventSourceError.Code != 401 || !r.EventSourceError.Closed) {
			t.Errorf("%s: EventSource error %+v, want code 401 and the source closed (no retry)", what, r.EventSourceError)
		}
	}
	if n := s.do("GET", "/health", nil, nil); n.StatusCode != http.StatusOK {
		t.Errorf("health after the refusals: %d", n.StatusCode)
	}
}

// kcatRecord is a record as kcat -J prints it.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Headers   []string `json:"headers"` // key, value, key, value...
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// kcatAll reads every record of topic with kcat (librdkafka), from the beginning to the end.
func kcatAll(t *testing.T, broker, topic string) []kcatRecord {
	t.Helper()
	kcat := interopTool(t, "kcat", "apt-get install kcat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kcat, "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C -t %s: %v\n%s", topic, err, stderr.String())
	}
	var recs []kcatRecord
	for line := range strings.Lines(string(out)) {
		var r kcatRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("kcat output line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestPoisonRecordsGoToTheDeadLetterTopicAndDeliveryGoesOn: KafkaJS produces to one partition
// of concept-notifications a good record, truncated JSON, a good record, then records that
// parse but are invalid (userIds not a list, masteryLevel 1.7, no userIds), a tombstone (null
// value), 10,001 users, a concept value under an event-type header naming session-starting-soon
// (validated as that event), then a good one.
// The user gets the three good ones, in order, and nothing else; kcat finds each poison record
// exactly once in realtime-service.dlq, byte-identical (key, value, the original headers first)
// plus the dlq-* headers saying why and where from.
func TestPoisonRecordsGoToTheDeadLetterTopicAndDeliveryGoesOn(t *testing.T) {
	nodeModules(t)
	interopTool(t, "kcat", "apt-get install kcat")
	s := startService(t, nil)
	s.waitConsuming()
	const topic = "concept-notifications"
	p0 := ptr(int32(0)) // one partition: a total order, so "in order" and "after" mean something
	good := func(id, name string) e2eRecord {
		return e2eRecord{Topic: topic, Partition: p0, Key: ptr(id), to: []string{"alice"}, event: "concept-mastered",
			Value: fmt.Sprintf(`{"conceptId":%q,"userIds":["alice"],"conceptName":%q,"masteryLevel":0.8}`, id, name)}
	}
	type poison struct {
		index  int // in plan.Records
		code   string
		fields []string // the fields dlq-reason must name
	}
	plan := e2ePlan{
		Connections: []e2eConn{{Name: "alice-ws", Transport: "ws", Token: clientToken(t, "alice"), user: "alice"}},
		Records: []e2eRecord{
			good("c-1", "First"),
			{Topic: topic, Partition: p0, Key: ptr("c-bad"), Headers: map[string]string{"trace-id": "abc-123", "event-type": "concept-mastered", "origin": "grader ✓"},
				Value: `{"conceptId":"c-2","userIds":["alice"],"conceptName":"Fermat’s Last Th`},
			good("c-3", "Second"),
			{Topic: topic, Partition: p0, Headers: map[string]string{"origin": "grader"},
				Value: `{"conceptId":"c-4","userIds":"alice","conceptName":"Not a list","masteryLevel":0.5}`},
			{Topic: topic, Partition: p0, Key: ptr("c-5"),
				Value: `{"conceptId":"c-5","userIds":["alice"],"conceptName":"Too much","masteryLevel":1.7}`},
			{Topic: topic, Partition: p0, Key: ptr("c-6"),
				Value: `{"conceptId":"c-6","userIds":[],"conceptName":"Nobody","masteryLevel":0.5}`},
			{Topic: topic, Partition: p0, Key: ptr("c-7"), Tombstone: true},
			{Topic: topic, Partition: p0, Key: ptr("c-8"),
				Value: fmt.Sprintf(`{"conceptId":"c-8","userIds":%s,"conceptName":"Too many","masteryLevel":0.5}`, mustJSON(manyUsers(10_001)))},
			{Topic: topic, Partition: p0, Key: ptr("c-9"), Headers: map[string]string{"event-type": "session-starting-soon"},
				Value: `{"conceptId":"c-9","userIds":["alice"],"conceptName":"Not a session","masteryLevel":0.5}`},
			good("c-10", "Third"),
		},
		SentinelUsers: []string{"alice"},
	}
	poisons := []poison{
		{1, "invalid-json", nil},
		{3, "invalid-value", []string{"userIds"}},
		{4, "invalid-value", []string{"masteryLevel"}},
		{5, "invalid-value", []string{"userIds"}},
		{6, "invalid-json", nil},
		{7, "invalid-value", []string{"userIds"}},
		{8, "invalid-value", []string{"sessionId", "message", "scheduledTime"}},
	}
	res := deliver(t, s, plan)
	checkDelivery(t, plan, res) // the good ones, in partition order; no poison

	// alice has every sentinel, so the node's consumer has handed off every record; the
	// dead-letter duty (its own group) copies the poison ones: it is done once its group
	// committed past the last record (commits never pass an unresolved copy).
	waitDeadLetterDuty(t, s.Broker, s.DLQGroup, topic)
	dlq := kcatAll(t, s.Broker, "realtime-service.dlq")
	bySource := map[int64][]kcatRecord{}
	for _, r := range dlq {
		h := headerMap(r.Headers)
		if h["dlq-source-topic"] != topic || h["dlq-source-partition"] != "0" {
			t.Errorf("dead letter from elsewhere: %+v", r)
			continue
		}
		off, _ := strconv.ParseInt(h["dlq-source-offset"], 10, 64)
		bySource[off] = append(bySource[off], r)
	}
	if len(dlq) != len(poisons) {
		t.Errorf("%d dead letters, want %d (one per poison record)", len(dlq), len(poisons))
	}
	for _, p := range poisons {
		rec, prod := plan.Records[p.index], res.Produced[p.index]
		got := bySource[prod.Offset]
		if len(got) != 1 {
			t.Errorf("record %s: %d dead letters, want exactly 1", prod.ID, len(got))
			continue
		}
		d := got[0]
		if !reflect.DeepEqual(d.Key, rec.Key) {
			t.Errorf("%s: dead letter key %v, want %v", prod.ID, strPtr(d.Key), strPtr(rec.Key))
		}
		want := &rec.Value
		if rec.Tombstone {
			want = nil
		}
		if !reflect.DeepEqual(d.Payload, want) {
			t.Errorf("%s: dead letter value %.200s, want the original %.200s", prod.ID, strPtr(d.Payload), strPtr(want))
		}
		// The original headers first, in their order (KafkaJS sends them in insertion order),
		// then exactly the dlq-* headers.
		var wantKeys []string
		for k := range strings.SplitSeq(headerOrder(p.index, plan), ",") {
			if k != "" {
				wantKeys = append(wantKeys, k)
			}
		}
		var gotKeys []string
		for i := 0; i+1 < len(d.Headers); i += 2 {
			gotKeys = append(gotKeys, d.Headers[i])
		}
		dlqKeys := []string{"dlq-reason", "dlq-error-code", "dlq-source-topic", "dlq-source-partition", "dlq-source-offset", "dlq-source-timestamp"}
		if want := append(slices.Clone(wantKeys), dlqKeys...); !slices.Equal(gotKeys, want) {
			t.Errorf("%s: dead letter header keys %v, want %v", prod.ID, gotKeys, want)
		}
		h := headerMap(d.Headers)
		for k, v := range rec.Headers {
			if h[k] != v {
				t.Errorf("%s: dead letter header %s = %q, want the original %q", prod.ID, k, h[k], v)
			}
		}
		if h["dlq-error-code"] != p.code {
			t.Errorf("%s: dlq-error-code %q, want %q", prod.ID, h["dlq-error-code"], p.code)
		}
		if h["dlq-reason"] == "" {
			t.Errorf("%s: empty dlq-reason", prod.ID)
		}
		for _, f := range p.fields {
			if !strings.Contains(h["dlq-reason"], f) {
				t.Errorf("%s: dlq-reason %q does not name %s", prod.ID, h["dlq-reason"], f)
			}
		}
		if want := time.UnixMilli(prod.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z07:00"); h["dlq-source-timestamp"] != want {
			t.Errorf("%s: dlq-source-timestamp %q, want %q", prod.ID, h["dlq-source-timestamp"], want)
		}
		t.Logf("%s -> dead letter %d@%d: %s: %.200s", prod.ID, d.Partition, d.Offset, h["dlq-error-code"], h["dlq-reason"])
	}
}

// manyUsers returns n distinct user IDs.
func manyUsers(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "u" + strconv.Itoa(i)
	}
	return ids
}

// headerOrder lists, comma-separated, the header keys of plan.Records[i] in the order KafkaJS
// sends them: the plan's map is JSON-encoded with sorted keys, and JavaScript objects keep that
// insertion order.
func headerOrder(i int, plan e2ePlan) string {
	keys := make([]string, 0, len(plan.Records[i].Headers))
	for k := range plan.Records[i].Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

func headerMap(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func strPtr(p *string) string {
	if p == nil {
		return "<null>"
	}
	return strconv.Quote(*p)
}

// nodeProcess is a node script of test/interop running in the background.
type nodeProcess struct {
	lines  chan string // stdout, line by line; closed at EOF
	stdin  io.WriteCloser
	stderr *syncBuffer
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
}

// startScript starts a node script of test/interop with env, bounded by a minute and killed when
// the test ends.
func startScript(t *testing.T, script string, env map[string]string) *nodeProcess {
	t.Helper()
	dir := nodeModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &nodeProcess{lines: make(chan string, 16), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.exited
	})
	return p
}

// wait waits for the script to exit and returns its error.
func (p *nodeProcess) wait() error {
	<-p.exited
	return p.err
}

// send writes line to the script's stdin (the answer to a step of e2e/siolib.mjs).
func (p *nodeProcess) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("write to the node script: %v\nstderr:\n%s", err, p.stderr)
	}
}

// next returns the script's next line of output, failing the test if it ends first.
func (p *nodeProcess) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("node script ended (%v) without output\nstderr:\n%s", p.wait(), p.stderr)
		}
		return l
	case <-time.After(time.Minute):
		t.Fatalf("no output from the node script in a minute\nstderr:\n%s", p.stderr)
	}
	return ""
}

// TestWebSocketClosesWith1001WhenTheServiceStops: when the service shuts down (the harness's
// equivalent of SIGTERM) while clients are connected, each node ws client gets a close frame
// 1001 Going Away with a reason, and the EventSource client a final "disconnect" frame saying
// the same, and run returns nil.
func TestWebSocketClosesWith1001WhenTheServiceStops(t *testing.T) {
	nodeModules(t)
	s := startService(t, nil)
	p := startScript(t, "e2e/shutdown.mjs", map[string]string{"E2E_URL": s.URL, "E2E_TOKEN": clientToken(t, "alice")})
	if l := p.next(t); l != `{"ready":true}` {
		t.Fatalf("shutdown.mjs: %s\nstderr:\n%s", l, p.stderr)
	}
	s.Stop()
	last := p.next(t)
	if err := p.wait(); err != nil {
		t.Fatalf("shutdown.mjs: %v\n%s\nstderr:\n%s", err, last, p.stderr)
	}
	var res e2eResult
	if err := json.Unmarshal([]byte(last), &res); err != nil || len(res.Connections) != 3 {
		t.Fatalf("shutdown.mjs output: %v\n%s", err, last)
	}
	for _, c := range res.Connections {
		switch c.Transport {
		case "ws":
			if c.Closed == nil || c.Closed.Code != 1001 || c.Closed.Reason == "" {
				t.Errorf("%s: closed with %+v, want code 1001 (going away) and a reason", c.Name, c.Closed)
			} else {
				t.Logf("%s: close %d %q", c.Name, c.Closed.Code, c.Closed.Reason)
			}
		case "sse":
			var others []e2eFrame // all but cursor frames (the opening one, the final one)
			for _, f := range c.Frames {
				if g, ok := parseFrame(t, c.Name, f); !ok || g.Event != "cursor" {
					others = append(others, f)
				}
			}
			if len(others) != 1 {
				t.Fatalf("%s: frames %+v, want only cursor frames and the disconnect frame", c.Name, c.Frames)
			}
			f, ok := parseFrame(t, c.Name, others[0])
			var d struct {
				Code      int    `json:"code"`
				Reason    string `json:"reason"`
				Reconnect bool   `json:"reconnect"`
			}
			if ok {
				json.Unmarshal(f.Data, &d)
			}
			if f.Event != "disconnect" || f.ID != "" || d.Code != 1001 || d.Reason == "" || !d.Reconnect {
				t.Errorf("%s: last frame %s, want a disconnect control frame (no id) with code 1001, a reason and reconnect true", c.Name, c.Frames[0].Raw)
			}
		}
	}
}

// waitDeadLetterDuty waits until the dead-letter duty's group has committed the end of every
// partition of topics: every poison record produced before the call was copied (or skipped
// after a failed copy).
func waitDeadLetterDuty(t *testing.T, broker, group string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitUntil(t, "the dead-letter duty to commit the end of "+strings.Join(topics, ", "), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil || ends.Error() != nil {
			return false
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup(o.Topic, o.Partition); !ok || c.Err != nil || c.At < o.Offset {
				done = false
			}
		})
		return done
	})
}
