package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
)

const recordsPath = "/v1/topics/test-realtime-service/records"

func TestRecordSingle(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantKey     []byte // nil: no key
		wantValue   string // byte for byte
		wantHeaders []kgo.RecordHeader
	}{
		{
			name:      "object value kept byte for byte",
			body:      `{"key":"k-1","value": {"b" : [1, 2.50, "x\u0041"],  "a":{}} }`,
			wantKey:   []byte("k-1"),
			wantValue: `{"b" : [1, 2.50, "x\u0041"],  "a":{}}`,
		},
		{name: "number", body: `{"value":42}`, wantValue: `42`},
		{name: "string", body: `{"value":"hello"}`, wantValue: `"hello"`},
		{name: "null key", body: `{"key":null,"value":true}`, wantValue: `true`},
		{name: "utf-8 key", body: `{"key":"clé","value":[]}`, wantKey: []byte("clé"), wantValue: `[]`},
		{
			name:      "headers",
			body:      `{"value":{},"headers":[{"key":"event-type","value":"concept-mastered"},{"key":"trace","value":null}]}`,
			wantValue: `{}`,
			wantHeaders: []kgo.RecordHeader{
				{Key: "event-type", Value: []byte("concept-mastered")},
				{Key: "trace"},
			},
		},
		{
			name:      "expiry and collapse headers",
			body:      `{"value":{},"headers":[{"key":"expires-at","value":"2026-11-29T10:00:00+01:00"},{"key":"ttl-ms","value":"60000"},{"key":"collapse-key","value":"mastery:c1"}]}`,
			wantValue: `{}`,
			wantHeaders: []kgo.RecordHeader{
				{Key: "expires-at", Value: []byte("2026-11-29T10:00:00+01:00")},
				{Key: "ttl-ms", Value: []byte("60000")},
				{Key: "collapse-key", Value: []byte("mastery:c1")},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			w := s.post(recordsPath, tc.body)
			if w.Code != http.StatusCreated {
				t.Fatalf("status = %d, want 201: %s", w.Code, w.Body)
			}
			want := `{"id":"test-realtime-service:2:40","topic":"test-realtime-service","partition":2,"offset":40}`
			if !jsonEqual(t, w.Body.Bytes(), want) {
				t.Errorf("body = %s, want %s", w.Body, want)
			}
			recs := s.kafka.records()
			if len(recs) != 1 {
				t.Fatalf("produced %d records", len(recs))
			}
			rec := recs[0]
			if rec.Topic != "test-realtime-service" || string(rec.Value) != tc.wantValue || !slices.Equal(rec.Key, tc.wantKey) {
				t.Errorf("record = %s key %q value %s; want key %q value %s", rec.Topic, rec.Key, rec.Value, tc.wantKey, tc.wantValue)
			}
			if (rec.Key == nil) != (tc.wantKey == nil) {
				t.Errorf("key = %#v, want %#v", rec.Key, tc.wantKey)
			}
			if !slices.EqualFunc(rec.Headers, tc.wantHeaders, func(a, b kgo.RecordHeader) bool {
				return a.Key == b.Key && string(a.Value) == string(b.Value) && (a.Value == nil) == (b.Value == nil)
			}) {
				t.Errorf("headers = %v, want %v", rec.Headers, tc.wantHeaders)
			}
		})
	}
}

func TestRecordSingleInvalid(t *testing.T) {
	tests := []struct {
		name, body string
		wantCode   string
		wantFields []string
	}{
		{"no value", `{"key":"k"}`, "validation-error", []string{"value:required"}},
		{"null value", `{"value":null}`, "validation-error", []string{"value:required"}},
		{"key a number", `{"key":7,"value":1}`, "validation-error", []string{"key:type"}},
		{"header without key", `{"value":1,"headers":[{"value":"v"},{"key":"ok"},{"key":""}]}`, "validation-error", []string{"headers[0].key:required", "headers[2].key:required"}},
		{"no value and a header without key", `{"headers":[{"key":""}]}`, "validation-error", []string{"value:required", "headers[0].key:required"}},
		{"unknown field", `{"value":1,"partition":3}`, "validation-error", []string{"partition:unknown_field"}},
		{"malformed", `{"value":`, "invalid-json", []string{":syntax"}},
		{"trailing garbage", `{"value":1}}`, "invalid-json", []string{":syntax"}},
		{"not an object", `[{"value":1}]`, "validation-error", []string{":type"}},
		{"reserved event-type", `{"value":{"userIds":["u"]},"headers":[{"key":"event-type","value":"connect_error"}]}`, "validation-error", []string{"headers[0].value:event_type"}},
		{"event-type twice", `{"value":{"userIds":["u"]},"headers":[{"key":"event-type","value":"a"},{"key":"x","value":"1"},{"key":"event-type","value":"a"}]}`, "validation-error", []string{"headers[2].key:unique"}},
		{"event-type three times", `{"value":{"userIds":["u"]},"headers":[{"key":"event-type","value":"a"},{"key":"event-type"},{"key":"event-type","value":"b"}]}`, "validation-error", []string{"headers[1].key:unique", "headers[2].key:unique"}},
		{"invalid UTF-8", "{\"value\":\"\xc3\x28\"}", "invalid-json", []string{":syntax"}},
		{"expiry and collapse headers malformed", `{"value":{},"headers":[{"key":"expires-at","value":"soon"},{"key":"ttl-ms","value":"-5"},{"key":"collapse-key","value":""}]}`,
			"validation-error", []string{"headers[0].value:expires_at", "headers[1].value:ttl_ms", "headers[2].value:collapse_key"}},
		{"ttl-ms without a value", `{"value":{},"headers":[{"key":"ttl-ms"}]}`, "validation-error", []string{"headers[0].value:ttl_ms"}},
		{"collapse-key of 257 bytes", `{"value":{},"headers":[{"key":"collapse-key","value":"` + strings.Repeat("k", 257) + `"}]}`, "validation-error", []string{"headers[0].value:collapse_key"}},
		{"collapse-key twice", `{"value":{},"headers":[{"key":"collapse-key","value":"a"},{"key":"collapse-key","value":"a"}]}`, "validation-error", []string{"headers[1].key:unique"}},
		{"expires-at twice", `{"value":{},"headers":[{"key":"expires-at","value":"2026-11-29T10:00:00Z"},{"key":"expires-at","value":"2026-11-29T10:00:00Z"}]}`, "validation-error", []string{"headers[1].key:unique"}},
		{"header with an unknown member", `{"value":{},"headers":[{"key":"a","value":"b","extra":1}]}`, "validation-error", []string{"headers:unknown_field"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			p := problemOf(t, s.post(recordsPath, tc.body), http.StatusBadRequest, tc.wantCode)
			if got := fieldCodes(p.Errors); !slices.Equal(got, tc.wantFields) {
				t.Errorf("errors = %v, want %v", got, tc.wantFields)
			}
			if n := s.kafka.calls(); n != 0 {
				t.Errorf("Produce called %d times", n)
			}
		})
	}
}

func TestRecordTopicName(t *testing.T) {
	tests := []struct {
		name, topic string
		status      int
		code        string
	}{
		{"space", "bad%20topic", http.StatusBadRequest, "invalid-topic-name"},
		{"dollar", "bad$topic", http.StatusBadRequest, "invalid-topic-name"},
		{"too long", strings.Repeat("t", 250), http.StatusBadRequest, "invalid-topic-name"},
		{"internal", "__consumer_offsets", http.StatusForbidden, "internal-topic"},
		{"looks internal", "__mine", http.StatusForbidden, "internal-topic"},
		{"transaction state", "__transaction_state", http.StatusForbidden, "internal-topic"},
		{"the dead-letter topic", "realtime-service.dlq", http.StatusForbidden, "internal-topic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			p := problemOf(t, s.post("/v1/topics/"+tc.topic+"/records", `{"value":1}`), tc.status, tc.code)
			if tc.code == "invalid-topic-name" && !slices.Equal(fieldCodes(p.Errors), []string{"topic:topic_name"}) {
				t.Errorf("errors = %v", fieldCodes(p.Errors))
			}
			if n := s.kafka.calls(); n != 0 {
				t.Errorf("Produce called %d times", n)
			}
		})
	}
	t.Run("249 characters is fine", func(t *testing.T) {
		s := newServer(t)
		if w := s.post("/v1/topics/"+strings.Repeat("t", 249)+"/records", `{"value":1}`); w.Code != http.StatusCreated {
			t.Errorf("status = %d: %s", w.Code, w.Body)
		}
	})
}

func TestRecordKafkaFails(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"topic not found", fmt.Errorf("produce to test-realtime-service: %w", kafka.ErrTopicNotFound), http.StatusNotFound, "topic-not-found"},
		{"unavailable", fmt.Errorf("produce: %w", kafka.ErrUnavailable), http.StatusServiceUnavailable, "kafka-unavailable"},
		{"refused", &kafka.RequestError{Code: "MESSAGE_TOO_LARGE", Message: "the record is too large"}, http.StatusBadRequest, "kafka-rejected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.kafka.produceErr = func(*kgo.Record) error { return tc.err }
			p := problemOf(t, s.post(recordsPath, `{"value":1}`), tc.status, tc.code)
			if tc.code == "topic-not-found" && !strings.Contains(p.Detail, `"test-realtime-service"`) {
				t.Errorf("detail %q does not name the topic", p.Detail)
			}
		})
	}
}

// failValues fails the records whose value is in fail with err.
func failValues(err error, fail ...string) func(*kgo.Record) error {
	return func(rec *kgo.Record) error {
		if slices.Contains(fail, string(rec.Value)) {
			return err
		}
		return nil
	}
}

func TestRecordBatch(t *testing.T) {
	unavailable := fmt.Errorf("produce: %w", kafka.ErrUnavailable)
	notFound := fmt.Errorf("produce: %w", kafka.ErrTopicNotFound)
	tests := []struct {
		name        string
		body        string
		produceErr  func(*kgo.Record) error
		wantStatus  int
		wantProblem string   // problem code when every record failed
		wantResults []string // per record: "p:o" or the error code
		wantFields  []string // field errors of the failed records, in order
		wantValues  []string // values produced, in order
	}{
		{
			name:        "all produced, in order",
			body:        `{"records":[{"key":"a","value":{"n":1}},{"value":2},{"value":"three","headers":[{"key":"h","value":"v"}]}]}`,
			wantStatus:  http.StatusCreated,
			wantResults: []string{"2:40", "2:41", "2:42"},
			wantValues:  []string{`{"n":1}`, `2`, `"three"`},
		},
		{
			name:        "one invalid record: the others are produced, 207",
			body:        `{"records":[{"value":1},{"key":"k"},{"value":3}]}`,
			wantStatus:  http.StatusMultiStatus,
			wantResults: []string{"2:40", "validation-error", "2:41"},
			wantFields:  []string{"records[1].value:required"},
			wantValues:  []string{`1`, `3`},
		},
		{
			name:        "one record refused by Kafka: 207",
			body:        `{"records":[{"value":1},{"value":2},{"value":3}]}`,
			produceErr:  failValues(unavailable, "2"),
			wantStatus:  http.StatusMultiStatus,
			wantResults: []string{"2:40", "kafka-unavailable", "2:41"},
			wantValues:  []string{`1`, `3`},
		},
		{
			name:        "every record invalid: 400 with every field",
			body:        `{"records":[{"key":"k"},{"value":null,"extra":1},{"key":5,"value":1},{"value":1,"headers":[{"key":""}]}]}`,
			wantStatus:  http.StatusBadRequest,
			wantProblem: "validation-error",
			wantResults: []string{"validation-error", "validation-error", "validation-error", "validation-error"},
			wantFields:  []string{"records[0].value:required", "records[1].extra:unknown_field", "records[2].key:type", "records[3].headers[0].key:required"},
		},
		{
			name:        "topic missing: 404",
			body:        `{"records":[{"value":1},{"value":2}]}`,
			produceErr:  failValues(notFound, "1", "2"),
			wantStatus:  http.StatusNotFound,
			wantProblem: "topic-not-found",
			wantResults: []string{"topic-not-found", "topic-not-found"},
		},
		{
			name:        "Kafka down: 503",
			body:        `{"records":[{"value":1},{"value":2}]}`,
			produceErr:  failValues(unavailable, "1", "2"),
			wantStatus:  http.StatusServiceUnavailable,
			wantProblem: "kafka-unavailable",
			wantResults: []string{"kafka-unavailable", "kafka-unavailable"},
		},
		{
			name:        "invalid and Kafka down: the most severe cause, 503",
			body:        `{"records":[{"key":"k"},{"value":2}]}`,
			produceErr:  failValues(unavailable, "2"),
			wantStatus:  http.StatusServiceUnavailable,
			wantProblem: "kafka-unavailable",
			wantResults: []string{"validation-error", "kafka-unavailable"},
			wantFields:  []string{"records[0].value:required"},
		},
		{
			name:        "invalid and topic missing: 404",
			body:        `{"records":[{"value":1},{}]}`,
			produceErr:  failValues(notFound, "1"),
			wantStatus:  http.StatusNotFound,
			wantProblem: "topic-not-found",
			wantResults: []string{"topic-not-found", "validation-error"},
			wantFields:  []string{"records[1].value:required"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.kafka.produceErr = tc.produceErr
			w := s.post(recordsPath, tc.body)

			var results []resultBody
			var fields []string
			if tc.wantProblem != "" {
				p := problemOf(t, w, tc.wantStatus, tc.wantProblem)
				results = p.Results
				fields = fieldCodes(p.Errors)
			} else {
				if w.Code != tc.wantStatus {
					t.Fatalf("status = %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				var resp struct {
					Results []resultBody `json:"results"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
					t.Fatal(err)
				}
				results = resp.Results
				for _, r := range results {
					if r.Error != nil {
						fields = append(fields, fieldCodes(r.Error.Errors)...)
					}
				}
			}
			var got []string
			for _, r := range results {
				switch {
				case r.Error != nil && r.Partition == nil && r.Offset == nil && r.Error.Message != "":
					got = append(got, r.Error.Code)
				case r.Error == nil && r.Partition != nil && r.Offset != nil:
					got = append(got, fmt.Sprintf("%d:%d", *r.Partition, *r.Offset))
				default:
					got = append(got, fmt.Sprintf("malformed %+v", r))
				}
			}
			if !slices.Equal(got, tc.wantResults) {
				t.Errorf("results = %v, want %v\nbody %s", got, tc.wantResults, w.Body)
			}
			if !slices.Equal(fields, tc.wantFields) {
				t.Errorf("field errors = %v, want %v", fields, tc.wantFields)
			}
			var values []string
			for _, rec := range s.kafka.records() {
				values = append(values, string(rec.Value))
			}
			if !slices.Equal(values, tc.wantValues) {
				t.Errorf("produced %v, want %v", values, tc.wantValues)
			}
		})
	}
}

func TestRecordBatchMalformed(t *testing.T) {
	many := `{"records":[` + strings.Repeat(`{"value":1},`, 10_000) + `{"value":1}]}`
	tests := []struct {
		name, body string
		wantFields []string
	}{
		{"no records", `{"records":[]}`, []string{"records:min"}},
		{"too many records", many, []string{"records:max"}},
		{"records with value beside", `{"records":[{"value":1}],"value":2,"key":"k"}`, []string{"key:exclusive", "value:exclusive"}},
		{"records not an array", `{"records":{"value":1}}`, []string{"records:type"}},
		{"records null", `{"records":null}`, []string{"records:type"}},
		{"unknown member", `{"records":[{"value":1}],"topic":"x"}`, []string{"topic:unknown_field"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(c *config.Config, _ *httpapi.Deps) { c.HTTP.MaxBodyBytes = 1 << 20 })
			p := problemOf(t, s.post(recordsPath, tc.body), http.StatusBadRequest, "validation-error")
			if got := fieldCodes(p.Errors); !slices.Equal(got, tc.wantFields) {
				t.Errorf("errors = %v, want %v", got, tc.wantFields)
			}
			if n := s.kafka.calls(); n != 0 {
				t.Errorf("Produce called %d times", n)
			}
		})
	}
	t.Run("10,000 records are fine", func(t *testing.T) {
		s := newServer(t, func(c *config.Config, _ *httpapi.Deps) { c.HTTP.MaxBodyBytes = 1 << 20 })
		body := `{"records":[` + strings.Repeat(`{"value":1},`, 9_999) + `{"value":1}]}`
		if w := s.post(recordsPath, body); w.Code != http.StatusCreated {
			t.Fatalf("status = %d", w.Code)
		}
		if n := len(s.kafka.records()); n != 10_000 {
			t.Errorf("produced %d records", n)
		}
	})
}
