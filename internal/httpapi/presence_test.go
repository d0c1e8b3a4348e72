package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/presence"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// viewWith returns a presence view in which node n1 is alive and holds the users' connections
// (one WebSocket each).
func viewWith(users ...string) *presence.View {
	v := presence.NewView(presence.ViewConfig{})
	now := time.Now()
	v.Apply(&kgo.Record{Key: []byte("/n1"), Value: []byte(`{"nodeId":"n1","boot":"b1","heartbeatAt":"2026-11-29T10:00:00Z","users":1}`), Timestamp: now})
	for _, u := range users {
		v.Apply(&kgo.Record{Key: []byte(u + "/n1"), Timestamp: now, Value: []byte(`{"userId":"` + u + `","nodeId":"n1","online":true,"connections":1,` +
			`"transports":{"websocket":1,"sse":0,"socketio":0},"since":"2026-11-29T10:00:00Z","boot":"b1"}`)})
	}
	return v
}

func TestPresenceQueryAnswersInTheOrderAsked(t *testing.T) {
	s := newServer(t, func(_ *config.Config, d *httpapi.Deps) { d.Presence = viewWith("bob") })
	w := s.post("/v1/presence/query", `{"userIds":["alice","bob","alice"]}`)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got struct {
		Users []struct {
			UserID      string   `json:"userId"`
			Online      bool     `json:"online"`
			Connections int      `json:"connections"`
			Nodes       []string `json:"nodes"`
			Since       *string  `json:"since"`
		} `json:"users"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Users) != 3 || got.Users[0].UserID != "alice" || got.Users[1].UserID != "bob" || got.Users[2].UserID != "alice" {
		t.Fatalf("users = %+v, want alice, bob, alice", got.Users)
	}
	if u := got.Users[1]; !u.Online || u.Connections != 1 || len(u.Nodes) != 1 || u.Nodes[0] != "n1" || u.Since == nil || *u.Since != "2026-11-29T10:00:00.000Z" {
		t.Errorf("bob = %+v", u)
	}
	if u := got.Users[0]; u.Online || u.Connections != 0 || u.Since != nil {
		t.Errorf("alice = %+v, want offline", u)
	}
	w = s.serve(request(http.MethodGet, "/v1/users/bob/presence", ""))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"online":true`) {
		t.Errorf("GET bob: %d %s", w.Code, w.Body)
	}
}

func TestPresenceQueryLimitIsCounted(t *testing.T) {
	s := newServer(t, func(c *config.Config, d *httpapi.Deps) {
		d.Presence = viewWith()
		c.Realtime.PresenceQueryMaxUsers = 2
	})
	p := problemOf(t, s.post("/v1/presence/query", `{"userIds":["a","b","c"]}`), 400, "validation-error")
	if len(p.Errors) != 1 || p.Errors[0].Field != "userIds" || p.Errors[0].Code != "max" {
		t.Errorf("errors = %+v", p.Errors)
	}
	if w := s.post("/v1/presence/query", `{"userIds":["a","b"]}`); w.Code != http.StatusOK {
		t.Errorf("two users: %d", w.Code)
	}
	if got := counter(t, s, "http_presence_queries_refused_total"); got != 1 {
		t.Errorf("http_presence_queries_refused_total = %v, want 1", got)
	}
}

func counter(t *testing.T, s *testServer, name string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// recorder keeps the read receipts it is told of.
type recorder struct {
	mu   sync.Mutex
	read []string
}

func (r *recorder) Delivered(string, string, []string) {}
func (r *recorder) Read(user, transport, id string) {
	r.mu.Lock()
	r.read = append(r.read, user+" "+transport+" "+id)
	r.mu.Unlock()
}

func TestReadReceiptsAreTheTokensUsers(t *testing.T) {
	rec := &recorder{}
	s := newServer(t, func(c *config.Config, d *httpapi.Deps) {
		d.Users = auth.NewVerifier([]byte(userSecret))
		d.Receipts = realtime.NewHub(realtime.HubConfig{Receipts: rec})
		c.Realtime.ReadMaxIDs = 2
	})
	post := func(body string) int {
		r := request(http.MethodPost, "/v1/events/read", body)
		r.Header.Set("Authorization", "Bearer "+userToken)
		return s.serve(r).Code
	}
	if code := post(`{"ids":["concept-notifications:0:42","t:2:7"]}`); code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", code)
	}
	for _, body := range []string{`{"ids":["a:0:1","a:0:2","a:0:3"]}`, `{"ids":["a:0:1","nope"]}`, `{"ids":[]}`, `{"ids":["a:x:1"]}`, `{"userId":"bob","ids":["a:0:1"]}`} {
		if code := post(body); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, code)
		}
	}
	want := []string{"alice http concept-notifications:0:42", "alice http t:2:7"}
	if strings.Join(rec.read, ",") != strings.Join(want, ",") {
		t.Errorf("receipts = %q, want %q", rec.read, want)
	}
	if got := counter(t, s, "http_read_receipts_refused_total"); got != 1 {
		t.Errorf("http_read_receipts_refused_total = %v, want 1", got)
	}
}

func TestRecordsAPIRefusesPresenceAndReceiptsTopics(t *testing.T) {
	s := newServer(t, func(c *config.Config, _ *httpapi.Deps) {
		c.Kafka.PresenceTopic = "realtime-service.presence"
		c.Kafka.ReceiptsTopic = "receipts"
	})
	for _, topic := range []string{"realtime-service.presence", "receipts"} {
		problemOf(t, s.post("/v1/topics/"+topic+"/records", `{"key":"alice/n1","value":{}}`), http.StatusForbidden, "internal-topic")
	}
	if s.kafka.calls() != 0 {
		t.Errorf("%d produces, want none", s.kafka.calls())
	}
}

// BenchmarkPresenceQuery is POST /v1/presence/query through the whole handler (API key, body
// read and decode, answer), for 1 and 1,000 users, half of them online, in a view of 100,000.
func BenchmarkPresenceQuery(b *testing.B) {
	var online []string
	for i := 0; i < 100_000; i += 2 {
		online = append(online, "user-"+strconv.Itoa(i))
	}
	view := viewWith(online...)
	for _, n := range []int{1, 1000} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "user-" + strconv.Itoa(i*37%100_000)
		}
		body, _ := json.Marshal(map[string][]string{"userIds": ids})
		s := newServer(&testing.T{}, func(c *config.Config, d *httpapi.Deps) {
			d.Presence = view
			c.HTTP.MaxBodyBytes = 1 << 20
		})
		b.Run(strconv.Itoa(n)+"-users", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := s.post("/v1/presence/query", string(body))
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
