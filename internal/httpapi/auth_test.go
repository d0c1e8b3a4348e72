package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

func TestAPIKey(t *testing.T) {
	tests := []struct {
		name      string
		headers   map[string]string
		wantOK    bool
		wantError bool // WWW-Authenticate carries error="invalid_token"
	}{
		{"no credentials", nil, false, false},
		{"bearer, wrong key", map[string]string{"Authorization": "Bearer wrong-key-0123456789"}, false, true},
		{"bearer, key prefix", map[string]string{"Authorization": "Bearer " + testKey[:10]}, false, true},
		{"bearer, key plus suffix", map[string]string{"Authorization": "Bearer " + testKey + "x"}, false, true},
		{"X-API-Key, wrong key", map[string]string{"X-API-Key": "wrong-key-0123456789"}, false, true},
		{"basic scheme", map[string]string{"Authorization": "Basic " + testKey}, false, false},
		{"bearer without token", map[string]string{"Authorization": "Bearer "}, false, false},
		{"key without scheme", map[string]string{"Authorization": testKey}, false, false},
		{"bearer", map[string]string{"Authorization": "Bearer " + testKey}, true, false},
		{"bearer, scheme in lower case", map[string]string{"Authorization": "bearer " + testKey}, true, false},
		{"bearer, second key", map[string]string{"Authorization": "Bearer " + otherKey}, true, false},
		{"X-API-Key", map[string]string{"X-API-Key": testKey}, true, false},
		{"X-API-Key, second key", map[string]string{"X-API-Key": otherKey}, true, false},
		{"wrong bearer, right X-API-Key", map[string]string{"Authorization": "Bearer nope", "X-API-Key": testKey}, true, false},
	}
	routes := []struct {
		method, path, body string
		okStatus           int
	}{
		{http.MethodPost, sessionPath, validSession, http.StatusCreated},
		{http.MethodPost, conceptPath, validConcept, http.StatusCreated},
		{http.MethodPost, "/v1/topics/t/records", `{"value":1}`, http.StatusCreated},
		{http.MethodGet, "/v1/topics", ``, http.StatusOK},
		{http.MethodPost, "/v1/topics", `{"name":"t","partitions":1,"replicationFactor":1}`, http.StatusCreated},
	}
	for _, rt := range routes {
		for _, tc := range tests {
			t.Run(rt.method+" "+rt.path+" "+tc.name, func(t *testing.T) {
				s := newServer(t)
				r := request(rt.method, rt.path, rt.body)
				r.Header.Del("Authorization")
				for k, v := range tc.headers {
					r.Header.Set(k, v)
				}
				w := s.serve(r)
				if tc.wantOK {
					if w.Code != rt.okStatus {
						t.Fatalf("status = %d, want %d: %s", w.Code, rt.okStatus, w.Body)
					}
					return
				}
				problemOf(t, w, http.StatusUnauthorized, "unauthorized")
				challenge := w.Header().Get("WWW-Authenticate")
				if !strings.HasPrefix(challenge, "Bearer ") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", challenge)
				}
				if got := strings.Contains(challenge, `error="invalid_token"`); got != tc.wantError {
					t.Errorf("WWW-Authenticate = %q, want invalid_token %v", challenge, tc.wantError)
				}
				if s.kafka.calls() != 0 || len(s.kafka.created) != 0 {
					t.Error("Kafka was called for an unauthorised request")
				}
			})
		}
	}
}

func TestOpenWithoutKeys(t *testing.T) {
	s := newServer(t, func(c *config.Config, _ *httpapi.Deps) { c.HTTP.APIKeys = nil })
	r := request(http.MethodPost, conceptPath, validConcept)
	r.Header.Del("Authorization")
	if w := s.serve(r); w.Code != http.StatusCreated {
		t.Fatalf("status = %d, want 201 with no keys configured: %s", w.Code, w.Body)
	}
	s.kafka.topics = []kafka.TopicInfo{{Name: "t", Partitions: 1, ReplicationFactor: 1}}
	r = request(http.MethodGet, "/v1/topics", "")
	r.Header.Set("Authorization", "Bearer anything-at-all-here")
	if w := s.serve(r); w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200: %s", w.Code, w.Body)
	}
}
