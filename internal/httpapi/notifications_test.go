package httpapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
)

const (
	sessionPath = "/v1/notifications/session-starting-soon"
	conceptPath = "/v1/notifications/concept-mastered"

	validSession = `{"sessionId":"s-1","userIds":["u1","u2"],"message":"Starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`
	validConcept = `{"conceptId":"c-9","userIds":["u1"],"conceptName":"Fractions","masteryLevel":0.85}`
)

func TestNotificationCreated(t *testing.T) {
	tests := []struct {
		name      string
		topics    []config.TopicEvent // nil: the defaults of testConfig
		path      string
		body      string
		wantTopic string
		wantKey   string
		wantValue string
		wantEvent string
	}{
		{
			name: "session starting soon", path: sessionPath,
			body:      "{\n  \"sessionId\": \"s-1\",\n  \"userIds\": [\"u1\", \"u2\"],\n  \"message\": \"Starts in 5 minutes\",\n  \"scheduledTime\": \"2026-11-29T10:00:00Z\"\n}",
			wantTopic: "session-notifications", wantKey: "s-1", wantValue: validSession,
			wantEvent: "session-starting-soon",
		},
		{
			name: "concept mastered", path: conceptPath, body: validConcept,
			wantTopic: "concept-notifications", wantKey: "c-9", wantValue: validConcept,
			wantEvent: "concept-mastered",
		},
		{
			name:   "topic mapped in config",
			topics: []config.TopicEvent{{Topic: "other", Event: "x"}, {Topic: "concepts-v2", Event: notification.EventConceptMastered}},
			path:   conceptPath, body: validConcept,
			wantTopic: "concepts-v2", wantKey: "c-9", wantValue: validConcept, wantEvent: "concept-mastered",
		},
		{
			name: "a topic of the event that names its recipients elsewhere is skipped",
			topics: []config.TopicEvent{{Topic: "concepts-by-key", Event: notification.EventConceptMastered, Shape: notification.Shape{Recipients: "key"}},
				{Topic: "concepts-v2", Event: notification.EventConceptMastered, Shape: notification.Shape{Keep: true}}},
			path: conceptPath, body: validConcept,
			wantTopic: "concepts-v2", wantKey: "c-9", wantValue: validConcept, wantEvent: "concept-mastered",
		},
		{
			name:   "event not mapped in config: default topic",
			topics: []config.TopicEvent{{Topic: "other", Event: "x"}},
			path:   sessionPath, body: validSession,
			wantTopic: "session-notifications", wantKey: "s-1", wantValue: validSession, wantEvent: "session-starting-soon",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(c *config.Config, _ *httpapi.Deps) {
				if tc.topics != nil {
					c.Kafka.Topics = tc.topics
				}
			})
			w := s.post(tc.path, tc.body)
			if w.Code != http.StatusCreated {
				t.Fatalf("status = %d, want 201; body %s", w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			want := fmt.Sprintf(`{"id":"%s:2:40","topic":%q,"partition":2,"offset":40}`, tc.wantTopic, tc.wantTopic)
			if !jsonEqual(t, w.Body.Bytes(), want) {
				t.Errorf("body = %s, want %s", w.Body, want)
			}
			recs := s.kafka.records()
			if len(recs) != 1 {
				t.Fatalf("produced %d records, want 1", len(recs))
			}
			rec := recs[0]
			if rec.Topic != tc.wantTopic || string(rec.Key) != tc.wantKey || string(rec.Value) != tc.wantValue {
				t.Errorf("record = topic %q key %q value %s; want %q %q %s", rec.Topic, rec.Key, rec.Value, tc.wantTopic, tc.wantKey, tc.wantValue)
			}
			if len(rec.Headers) != 1 || rec.Headers[0].Key != "event-type" || string(rec.Headers[0].Value) != tc.wantEvent {
				t.Errorf("headers = %v, want event-type: %s", rec.Headers, tc.wantEvent)
			}
		})
	}
}

// The delivery options of a notification become record headers and leave the value as it would
// be without them.
func TestNotificationDeliveryOptions(t *testing.T) {
	s := newServer(t)
	body := `{"expiresAt":"2026-11-29T10:05:00Z","conceptId":"c-9","userIds":["u1"],"ttlMs":60000,"conceptName":"Fractions","masteryLevel":0.85,"collapseKey":"mastery:c-9"}`
	if w := s.post(conceptPath, body); w.Code != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", w.Code, w.Body)
	}
	recs := s.kafka.records()
	if len(recs) != 1 {
		t.Fatalf("produced %d records, want 1", len(recs))
	}
	if string(recs[0].Value) != validConcept {
		t.Errorf("value %s, want %s", recs[0].Value, validConcept)
	}
	var got []string
	for _, h := range recs[0].Headers {
		got = append(got, h.Key+"="+string(h.Value))
	}
	want := []string{"event-type=concept-mastered", "expires-at=2026-11-29T10:05:00Z", "ttl-ms=60000", "collapse-key=mastery:c-9"}
	if !slices.Equal(got, want) {
		t.Errorf("headers %v, want %v", got, want)
	}
}

func TestNotificationInvalid(t *testing.T) {
	tests := []struct {
		name       string
		path, body string
		wantCode   string   // problem code
		wantFields []string // field:code, in order
	}{
		{"empty userIds and missing scheduledTime", sessionPath,
			`{"sessionId":"s","userIds":[],"message":"m"}`,
			"validation-error", []string{"userIds:min", "scheduledTime:required"}},
		{"scheduledTime not RFC 3339", sessionPath,
			`{"sessionId":"s","userIds":["u"],"message":"m","scheduledTime":"tomorrow"}`,
			"validation-error", []string{"scheduledTime:rfc3339"}},
		{"userIds a string", sessionPath,
			`{"sessionId":"s","userIds":"abc","message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`,
			"validation-error", []string{"userIds:type"}},
		{"empty user id", sessionPath,
			`{"sessionId":"s","userIds":["u",""],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`,
			"validation-error", []string{"userIds[1]:required"}},
		{"every field missing", sessionPath, `{}`,
			"validation-error", []string{"sessionId:required", "userIds:required", "message:required", "scheduledTime:required"}},
		{"masteryLevel above 1", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":1.7}`,
			"validation-error", []string{"masteryLevel:lte"}},
		{"masteryLevel below 0", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":-0.1}`,
			"validation-error", []string{"masteryLevel:gte"}},
		{"masteryLevel missing", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n"}`,
			"validation-error", []string{"masteryLevel:required"}},
		{"four fields wrong", conceptPath,
			`{"conceptId":"","userIds":[],"conceptName":"","masteryLevel":1.7}`,
			"validation-error", []string{"conceptId:required", "userIds:min", "conceptName:required", "masteryLevel:lte"}},
		{"unknown field", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":0.5,"level":1}`,
			"validation-error", []string{"level:unknown_field"}},
		{"not an object", conceptPath, `["c"]`, "validation-error", []string{":type"}},
		{"malformed JSON", conceptPath, `{"conceptId":"c",`, "invalid-json", []string{":syntax"}},
		{"bad token", conceptPath, `{"conceptId":c}`, "invalid-json", []string{":syntax"}},
		{"trailing garbage", conceptPath, validConcept + ` {"x":1}`, "invalid-json", []string{":syntax"}},
		{"empty body", conceptPath, ``, "invalid-json", []string{":syntax"}},
		{"invalid UTF-8", conceptPath, "{\"conceptId\":\"c\",\"userIds\":[\"u\"],\"conceptName\":\"bad\xff\",\"masteryLevel\":0.5}", "invalid-json", []string{":syntax"}},
		{"recipients under a case variant", conceptPath,
			`{"conceptId":"c","userIds":["pbob"],"USERIDS":["palice"],"conceptName":"n","masteryLevel":0.5}`,
			"validation-error", []string{"USERIDS:name"}},
		{"delivery options malformed", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":0.5,"expiresAt":"soon","ttlMs":-1,"collapseKey":""}`,
			"validation-error", []string{"expiresAt:rfc3339", "ttlMs:gte", "collapseKey:collapsekey"}},
		{"ttlMs a string, and a body error beside it", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":1.5,"ttlMs":"60000"}`,
			"validation-error", []string{"masteryLevel:lte", "ttlMs:type"}},
		{"ttlMs fractional", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":0.5,"ttlMs":1.5}`,
			"validation-error", []string{"ttlMs:type"}},
		{"ttlMs past a duration", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":0.5,"ttlMs":9223372036855}`,
			"validation-error", []string{"ttlMs:lte"}},
		{"collapseKey of 129 two-byte characters", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":0.5,"collapseKey":"` + strings.Repeat("é", 129) + `"}`,
			"validation-error", []string{"collapseKey:collapsekey"}},
		{"delivery option in a case variant", conceptPath,
			`{"conceptId":"c","userIds":["u"],"conceptName":"n","masteryLevel":0.5,"TTLMs":5}`,
			"validation-error", []string{"TTLMs:unknown_field", "TTLMs:name"}},
		{"recipients twice", conceptPath,
			`{"conceptId":"c","userIds":["pbob"],"userIds":["palice"],"conceptName":"n","masteryLevel":0.5}`,
			"validation-error", []string{"userIds:duplicate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			p := problemOf(t, s.post(tc.path, tc.body), http.StatusBadRequest, tc.wantCode)
			if got := fieldCodes(p.Errors); !slices.Equal(got, tc.wantFields) {
				t.Errorf("errors = %v, want %v", got, tc.wantFields)
			}
			if p.Instance != tc.path {
				t.Errorf("instance = %q, want %q", p.Instance, tc.path)
			}
			if p.Detail == "" {
				t.Error("no detail")
			}
			if n := s.kafka.calls(); n != 0 {
				t.Errorf("Produce called %d times for an invalid body", n)
			}
		})
	}
}

func TestNotificationKafkaFails(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"unavailable", fmt.Errorf("produce to concept-notifications: %w: dial tcp: refused", kafka.ErrUnavailable), http.StatusServiceUnavailable, "kafka-unavailable"},
		{"deadline", fmt.Errorf("produce: %w", errors.Join(errors.New("x"), contextDeadline())), http.StatusServiceUnavailable, "kafka-unavailable"},
		{"topic missing", fmt.Errorf("produce to concept-notifications: %w", kafka.ErrTopicNotFound), http.StatusNotFound, "topic-not-found"},
		{"record refused", fmt.Errorf("produce: %w", &kafka.RequestError{Code: "MESSAGE_TOO_LARGE", Message: "too big"}), http.StatusBadRequest, "kafka-rejected"},
		{"unknown error", errors.New("something odd"), http.StatusInternalServerError, "internal-error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.kafka.produceErr = func(*kgoRecord) error { return tc.err }
			p := problemOf(t, s.post(conceptPath, validConcept), tc.wantStatus, tc.wantCode)
			if tc.wantCode == "topic-not-found" && !strings.Contains(p.Detail, `"concept-notifications"`) {
				t.Errorf("detail %q does not name the topic", p.Detail)
			}
			if tc.wantCode == "kafka-rejected" && (p.KafkaError == nil || p.KafkaError.Code != "MESSAGE_TOO_LARGE") {
				t.Errorf("kafkaError = %+v, want code MESSAGE_TOO_LARGE", p.KafkaError)
			}
		})
	}
}

func TestNotificationWaitsForKafkaAtMostRequestTimeout(t *testing.T) {
	s := newServer(t, func(c *config.Config, _ *httpapi.Deps) { c.Kafka.RequestTimeout = 20 * time.Millisecond })
	s.kafka.waitForContext = true // Kafka never answers
	problemOf(t, s.post(sessionPath, validSession), http.StatusServiceUnavailable, "kafka-unavailable")
	if len(s.kafka.records()) != 0 {
		t.Error("a record was acknowledged")
	}
}

func TestProduceHasDeadline(t *testing.T) {
	s := newServer(t) // RequestTimeout 5s
	if w := s.post(sessionPath, validSession); w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	s.kafka.mu.Lock()
	defer s.kafka.mu.Unlock()
	if d := s.kafka.deadlines[0]; d <= 0 || d > 5*time.Second {
		t.Errorf("Produce context deadline in %v, want within the request timeout of 5s", d)
	}
}

// TestValidationProblemBody pins one whole problem body, as the README shows it.
func TestValidationProblemBody(t *testing.T) {
	s := newServer(t)
	w := s.post(conceptPath, `{"conceptId":"c","userIds":[],"conceptName":"n","masteryLevel":1.7}`)
	want := `{"type":"/problems/validation-error","title":"The request has invalid fields","status":400,` +
		`"detail":"userIds must have at least 1 entry; masteryLevel must be at most 1.",` +
		`"instance":"/v1/notifications/concept-mastered","code":"validation-error",` +
		`"errors":[{"field":"userIds","code":"min","message":"must have at least 1 entry"},` +
		`{"field":"masteryLevel","code":"lte","message":"must be at most 1"}]}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("body:\n got %s\nwant %s", got, want)
	}
}
