package client

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Problem is an error answer of the service: an application/problem+json body (RFC 9457) with
// the extension members of docs/http-api.md, "Problems". Every error of [API] that the server
// answered is a *Problem (errors.As); Code is stable and clients may branch on it.
type Problem struct {
	Type     string `json:"type"`  // "/problems/<code>"
	Title    string `json:"title"` // a fixed summary of the code
	Status   int    `json:"status"`
	Detail   string `json:"detail"`   // what went wrong this time
	Instance string `json:"instance"` // the request path
	// Code is validation-error, invalid-json, kafka-unavailable, node-full, ... (the code enum
	// of /openapi.json).
	Code string `json:"code"`
	// Errors lists every failing field (validation-error); empty otherwise.
	Errors []FieldError `json:"errors"`
	// KafkaError is Kafka's reason, for kafka-rejected.
	KafkaError *KafkaError `json:"kafkaError,omitempty"`
	// Results are a batch's per-record results when no record was produced.
	Results []RecordResult `json:"results,omitempty"`
	// RetryAfter is the answer's Retry-After header (seconds or an HTTP date), zero when absent.
	RetryAfter time.Duration `json:"-"`
}

// FieldError is one failing field of a validation-error.
type FieldError struct {
	// Field is the JSON path ("userIds[2]", "records[1].value"); empty for the whole document.
	Field   string `json:"field"`
	Code    string `json:"code"` // required, min, max, gte, lte, rfc3339, type, unknown_field, ...
	Message string `json:"message"`
}

// KafkaError is Kafka's own error code and message (kafka-rejected).
type KafkaError struct {
	Code    string `json:"code"` // e.g. INVALID_REPLICATION_FACTOR
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	s := "realtime API: " + http.StatusText(p.Status)
	if p.Code != "" {
		s += " (" + p.Code + ")"
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	} else if p.Title != "" {
		s += ": " + p.Title
	}
	return s
}

// Retryable reports whether the same request may succeed later: 429, 503 (kafka-unavailable,
// node-full), 500, and 409 idempotency-key-in-use (the first request is still being handled).
// A retry after a 503 or 500 may produce the record twice unless the request carried an
// Idempotency-Key ([IdempotencyKey]); then it is safe (docs/http-api.md, "Retries: `Idempotency-Key`").
func (p *Problem) Retryable() bool {
	switch p.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return p.Code == "idempotency-key-in-use"
}

// readProblem decodes an error answer's body (at most 64 KiB) into a Problem. A body that is
// not problem+json (a proxy's page) gives a Problem with the status and its text as Title.
func readProblem(resp *http.Response) *Problem {
	p := &Problem{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		if json.Unmarshal(body, p) == nil {
			if p.Status == 0 {
				p.Status = resp.StatusCode
			}
			if p.Code == "" {
				p.Code = strings.TrimPrefix(p.Type, "/problems/")
			}
			return p
		}
		*p = Problem{Status: resp.StatusCode, RetryAfter: p.RetryAfter}
	}
	p.Title = http.StatusText(resp.StatusCode)
	if s := strings.TrimSpace(string(body)); s != "" {
		p.Detail = s[:min(len(s), 200)]
	}
	return p
}
