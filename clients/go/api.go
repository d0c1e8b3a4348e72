package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// API sends notifications and records through the service's HTTP API (docs/http-api.md;
// the reference is /openapi.json). Its methods return a *Problem for every error answer, and
// the transport's error otherwise. Safe for concurrent use.
type API struct {
	// URL is the service's base URL, http(s)://host[:port][/prefix]. Required.
	URL string
	// Key is an API key of REALTIME_API_KEYS, sent as X-API-Key; empty sends none (a service
	// with the API open).
	Key string
	// HTTPClient sends the requests (default: one with a 30 s timeout).
	HTTPClient *http.Client
	// Retries is how many times a retryable problem ([Problem.Retryable]) is retried, after
	// its Retry-After when given, else after a full-jitter backoff from 100 ms up to 5 s
	// (default 0: none). Give requests an [IdempotencyKey] so that a retry cannot produce a
	// record twice.
	Retries int
}

// CallOption sets something on one request.
type CallOption func(*http.Request)

// IdempotencyKey sends the Idempotency-Key header (1 to 255 printable ASCII characters, e.g. a
// UUID): the same request sent again with the same key produces nothing more, on any node,
// within REALTIME_IDEMPOTENCY_WINDOW (docs/http-api.md, "Retries: `Idempotency-Key`").
func IdempotencyKey(key string) CallOption {
	return func(r *http.Request) { r.Header.Set("Idempotency-Key", key) }
}

// Position is where Kafka wrote a record; ID is the event ID clients will see.
type Position struct {
	ID        string `json:"id"` // "<topic>:<partition>:<offset>"
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Delivery holds the optional members of both notification bodies, which become record headers
// (docs/http-api.md, "Notifications"; docs/design.md, "Delivery semantics: expiry and collapse").
type Delivery struct {
	// ExpiresAt: from then on the notification is delivered to nobody (RFC 3339 on the wire).
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// TTLMs: the same, that many milliseconds after the record's timestamp (0 to 9223372036854).
	TTLMs *int64 `json:"ttlMs,omitempty"`
	// CollapseKey (1 to 256 bytes): a resume replays only the newest of this key.
	CollapseKey string `json:"collapseKey,omitempty"`
}

// ConceptMastered is the body of POST /v1/notifications/concept-mastered.
type ConceptMastered struct {
	ConceptID    string   `json:"conceptId"`    // 1 to 256 characters
	UserIDs      []string `json:"userIds"`      // 1 to 10,000 non-empty IDs
	ConceptName  string   `json:"conceptName"`  // 1 to 1024 characters
	MasteryLevel float64  `json:"masteryLevel"` // 0 to 1
	Delivery
}

// SessionStartingSoon is the body of POST /v1/notifications/session-starting-soon.
type SessionStartingSoon struct {
	SessionID     string    `json:"sessionId"` // 1 to 256 characters
	UserIDs       []string  `json:"userIds"`   // 1 to 10,000 non-empty IDs
	Message       string    `json:"message"`   // 1 to 4096 characters
	ScheduledTime time.Time `json:"scheduledTime"`
	Delivery
}

// Record is one record for POST /v1/topics/{topic}/records.
type Record struct {
	Key *string `json:"key,omitempty"` // UTF-8; nil: no key
	// Value is any JSON but null; the record value is its text byte for byte.
	Value json.RawMessage `json:"value"`
	// Headers: event-type names the event; expires-at, ttl-ms, collapse-key as in Delivery.
	Headers []Header `json:"headers,omitempty"`
}

// Header is a record header; a nil Value is a header without a value.
type Header struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// RecordResult is one record's outcome in a batch: its position, or why it was not produced.
type RecordResult struct {
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Error     *RecordError `json:"error,omitempty"`
}

// RecordError is why one record of a batch was not produced.
type RecordError struct {
	Code    string       `json:"code"` // a problem code: validation-error, kafka-unavailable, ...
	Message string       `json:"message"`
	Errors  []FieldError `json:"errors,omitempty"`
}

func (e *RecordError) Error() string { return e.Code + ": " + e.Message }

// ConceptMastered sends a concept-mastered notification; the answer is its position (201).
func (a *API) ConceptMastered(ctx context.Context, n ConceptMastered, opts ...CallOption) (Position, error) {
	return a.Notify(ctx, "concept-mastered", n, opts...)
}

// SessionStartingSoon sends a session-starting-soon notification; the answer is its position.
func (a *API) SessionStartingSoon(ctx context.Context, n SessionStartingSoon, opts ...CallOption) (Position, error) {
	return a.Notify(ctx, "session-starting-soon", n, opts...)
}

// Notify posts body (anything that encodes to the event's JSON shape) to
// POST /v1/notifications/{event}, answered 201 with the record's position once Kafka
// acknowledged it. Errors: *Problem (400 validation-error with Errors, 401, 409
// topic-shape-mismatch, 413, 503 kafka-unavailable, ...).
func (a *API) Notify(ctx context.Context, event string, body any, opts ...CallOption) (Position, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Position{}, err
	}
	var p Position
	_, err = a.Do(ctx, http.MethodPost, "/v1/notifications/"+url.PathEscape(event), b, &p, opts...)
	return p, err
}

// Produce writes one record to topic (POST /v1/topics/{topic}/records); the answer is its
// position. Errors: *Problem (404 topic-not-found, 403 internal-topic, 400, 503, ...).
func (a *API) Produce(ctx context.Context, topic string, r Record, opts ...CallOption) (Position, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return Position{}, err
	}
	var p Position
	_, err = a.Do(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/records", b, &p, opts...)
	return p, err
}

// ProduceBatch writes 1 to 10,000 records to topic in one request. The results are per record,
// in request order: all produced (201), or some (207: the others carry an Error). When none was
// produced the error is a *Problem whose Results hold them.
func (a *API) ProduceBatch(ctx context.Context, topic string, rs []Record, opts ...CallOption) ([]RecordResult, error) {
	b, err := json.Marshal(struct {
		Records []Record `json:"records"`
	}{rs})
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []RecordResult `json:"results"`
	}
	_, err = a.Do(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/records", b, &out, opts...)
	return out.Results, err
}

// Do sends one request with body (JSON, nil for none) to path under URL and decodes a 2xx answer
// into out (nil: discarded), retrying as Retries says. It returns the status; an error answer is
// a *Problem. The load tool calls it with bodies it built itself.
func (a *API) Do(ctx context.Context, method, path string, body []byte, out any, opts ...CallOption) (int, error) {
	hc := a.HTTPClient
	if hc == nil {
		hc = defaultAPIClient
	}
	for attempt := 0; ; attempt++ {
		status, err := a.do(ctx, hc, method, path, body, out, opts)
		var p *Problem
		if err == nil || attempt >= a.Retries || !errors.As(err, &p) || !p.Retryable() {
			return status, err
		}
		wait := p.RetryAfter
		if wait == 0 {
			wait = backoff(attempt, 100*time.Millisecond, 5*time.Second, rand.Float64)
		}
		select {
		case <-ctx.Done():
			return status, err
		case <-time.After(wait):
		}
	}
}

var defaultAPIClient = &http.Client{Timeout: 30 * time.Second}

func (a *API) do(ctx context.Context, hc *http.Client, method, path string, body []byte, out any, opts []CallOption) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.URL, "/")+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if a.Key != "" {
		req.Header.Set("X-API-Key", a.Key)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.StatusCode, readProblem(resp)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("realtime API: %s %s: answer %d: %w", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
