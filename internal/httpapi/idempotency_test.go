package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A retry with the same Idempotency-Key and body is answered with the first answer, without a
// second record; each record carries the key in its idempotency-key header.
func TestIdempotencyKeyRetry(t *testing.T) {
	s := newServer(t)
	send := func(path, body string) *http.Response {
		r := request(http.MethodPost, path, body)
		r.Header.Set("Idempotency-Key", `"retry-1"`)
		return s.serve(r).Result()
	}
	first := send("/v1/notifications/concept-mastered", oaConcept)
	second := send("/v1/notifications/concept-mastered", oaConcept)
	if first.StatusCode != 201 || second.StatusCode != 201 || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("statuses %d, %d (replayed %q), want 201 twice, the second replayed", first.StatusCode, second.StatusCode, second.Header.Get("Idempotent-Replayed"))
	}
	if len(s.kafka.produced) != 1 {
		t.Fatalf("%d records produced, want 1", len(s.kafka.produced))
	}
	if got := headerOf(s.kafka.produced[0].Headers, "idempotency-key"); got != "retry-1" {
		t.Errorf("idempotency-key header %q, want retry-1", got)
	}
	// The same key on another route is another request.
	if w := send("/v1/topics/orders/records", `{"records":[{"value":1},{"value":2,"headers":[{"key":"idempotency-key","value":"mine"}]}]}`); w.StatusCode != 201 {
		t.Fatalf("batch: %d", w.StatusCode)
	}
	for i, want := range []string{"retry-1#0", "retry-1#1"} {
		if got := headerOf(s.kafka.produced[1+i].Headers, "idempotency-key"); got != want {
			t.Errorf("batch record %d: idempotency-key %q, want %q", i, got, want)
		}
	}
	want := `
# HELP http_idempotent_requests_total Produce requests with an Idempotency-Key header, by result: first, replayed (the first answer again), mismatch (422) or in-progress (409).
# TYPE http_idempotent_requests_total counter
http_idempotent_requests_total{result="first"} 2
http_idempotent_requests_total{result="replayed"} 1
`
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want), "http_idempotent_requests_total"); err != nil {
		t.Error(err)
	}
}

func headerOf(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
