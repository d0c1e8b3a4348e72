package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

const userSecret = "user-secret-user-secret-user-secret!"

var userToken = mustToken("alice", time.Hour)

func mustToken(user string, ttl time.Duration) string {
	tok, err := auth.Issue([]byte(userSecret), user, ttl, time.Now())
	if err != nil {
		panic(err)
	}
	return tok
}

// whoami stands in for a client endpoint: it answers with the user the HTTP layer authenticated.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := auth.FromContext(r.Context())
	if !ok {
		http.Error(w, "no claims", 500)
		return
	}
	w.Write([]byte(c.UserID))
})

func withUsers(origins ...string) func(*config.Config, *httpapi.Deps) {
	return func(c *config.Config, d *httpapi.Deps) {
		c.Realtime.AllowedOrigins = origins
		d.Users = auth.NewVerifier([]byte(userSecret))
		d.WebSocket = whoami
		d.SSE = whoami
	}
}

func TestClientEndpointsNeedAValidUserToken(t *testing.T) {
	expired, _ := auth.Issue([]byte(userSecret), "alice", time.Minute, time.Now().Add(-time.Hour))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	wrongKey, _ := auth.Issue([]byte(strings.Repeat("x", 32)), "alice", time.Hour, time.Now())
	for _, path := range []string{"/v1/ws", "/v1/events"} {
		for name, query := range map[string]string{
			"missing":   "",
			"expired":   "?access_token=" + expired,
			"alg none":  "?access_token=" + none,
			"wrong key": "?access_token=" + wrongKey,
			"garbage":   "?access_token=garbage",
		} {
			t.Run(path+" "+name, func(t *testing.T) {
				s := newServer(t, withUsers())
				w := s.serve(httptest.NewRequest("GET", path+query, nil))
				problemOf(t, w, http.StatusUnauthorized, "user-unauthorized")
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
				}
			})
		}
	}
}

func TestUserComesFromTheTokenAlone(t *testing.T) {
	s := newServer(t, withUsers())
	w := s.serve(httptest.NewRequest("GET", "/v1/events?userId=bob&access_token="+userToken, nil))
	if w.Code != 200 || w.Body.String() != "alice" {
		t.Errorf("got %d %q, want alice", w.Code, w.Body)
	}
}

func TestClientEndpointOrigins(t *testing.T) {
	for _, tc := range []struct {
		name, origin string
		allowed      []string
		status       int
		acao         string
	}{
		{"no origin", "", nil, 200, ""},
		{"same origin", "http://example.com", nil, 200, "http://example.com"},
		{"foreign origin refused", "https://evil.example", nil, 403, ""},
		{"same host, other scheme refused", "https://example.com", nil, 403, ""},
		{"same host, ftp refused", "ftp://example.com", nil, 403, ""},
		{"null refused", "null", nil, 403, ""},
		{"listed origin", "https://app.example", []string{"https://app.example"}, 200, "https://app.example"},
		{"wildcard", "https://any.example", []string{"*"}, 200, "https://any.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, withUsers(tc.allowed...))
			r := httptest.NewRequest("GET", "http://example.com/v1/events?access_token="+userToken, nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			w := s.serve(r)
			if tc.status == 403 {
				problemOf(t, w, 403, "forbidden-origin")
				return
			}
			if w.Code != tc.status || w.Header().Get("Access-Control-Allow-Origin") != tc.acao {
				t.Errorf("got %d ACAO %q, want %d %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"), tc.status, tc.acao)
			}
		})
	}
}

func TestDevToken(t *testing.T) {
	s := newServer(t, func(_ *config.Config, d *httpapi.Deps) { d.DevToken = httpapi.DevTokenHandler([]byte(userSecret)) })
	w := s.serve(httptest.NewRequest("GET", "/v1/dev/token?user=carol&ttl=10m", nil))
	var out struct {
		Token     string
		UserID    string
		ExpiresAt time.Time
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	c, err := auth.NewVerifier([]byte(userSecret)).Verify(out.Token)
	if err != nil || c.UserID != "carol" || out.UserID != "carol" || time.Until(out.ExpiresAt) > 10*time.Minute {
		t.Errorf("token %+v: %+v %v", out, c, err)
	}
	problemOf(t, s.serve(httptest.NewRequest("GET", "/v1/dev/token", nil)), 400, "validation-error")
	problemOf(t, s.serve(httptest.NewRequest("GET", "/v1/dev/token?user=a&ttl=forever", nil)), 400, "validation-error")
}

func TestDescribeTopic(t *testing.T) {
	s := newServer(t)
	s.kafka.topics = []kafka.TopicInfo{{Name: "orders", Partitions: 2, ReplicationFactor: 1}}
	s.post("/v1/topics/orders/records", `{"value":1}`)
	w := s.serve(request("GET", "/v1/topics/orders", ""))
	want := `{"name":"orders","partitions":[{"partition":0,"startOffset":0,"endOffset":1},{"partition":1,"startOffset":0,"endOffset":1}]}`
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("got %d %s, want %s", w.Code, w.Body, want)
	}
	problemOf(t, s.serve(request("GET", "/v1/topics/missing", "")), 404, "topic-not-found")
	problemOf(t, s.serve(request("GET", "/v1/topics/__consumer_offsets", "")), 403, "internal-topic")
	r := request("GET", "/v1/topics/orders", "")
	r.Header.Del("Authorization")
	problemOf(t, s.serve(r), 401, "unauthorized")
}
