package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/dedup"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// onceHeaders are the record headers the consumer reads and refuses repeated (dead-letter).
var onceHeaders = [...]string{notification.HeaderEventType, notification.HeaderExpiresAt, notification.HeaderTTLMs, notification.HeaderCollapseKey}

// maxBatchRecords is the most records one POST /v1/topics/{topic}/records may carry.
const maxBatchRecords = 10_000

// recordResult is one record's outcome in a batch: where Kafka wrote it, or why it was not.
// It encodes as {"partition":0,"offset":12} or {"error":{...}}.
type recordResult struct {
	Partition *int32       `json:"partition,omitempty"`
	Offset    *int64       `json:"offset,omitempty"`
	Error     *recordError `json:"error,omitempty"`
}

// recordError says why a record was not produced: the code of the problem the record alone would
// have got (problem.go), a message, and for invalid records the failing fields.
type recordError struct {
	Code    string                    `json:"code"`
	Message string                    `json:"message"`
	Errors  []notification.FieldError `json:"errors,omitempty"`
}

// handleProduceRecords serves POST /v1/topics/{topic}/records: produce any JSON to any topic
// that exists, as Confluent REST Proxy v3 does. The body is one record or a batch:
//
//	{"key":"k1","value":<any JSON but null>,"headers":[{"key":"h","value":"v"}]}
//	{"records":[<record>, ...]}                                 1 to 10,000 records
//
// "key" (a string, optional; its UTF-8 bytes are the record key), "headers" (optional; "key" a
// non-empty string, "value" a string or null; an "event-type" header's value must pass
// notification.CheckEventName; "expires-at", "ttl-ms" and "collapse-key" values must pass
// notification.CheckDeliveryHeader, failing with the field error code expires_at, ttl_ms or
// collapse_key; each of these four may appear at most once: each repeat is a "unique" field
// error on its key) and "value" (required) are all a record may have;
// unknown fields are errors. The record value is the value's JSON text byte for byte as sent. The
// topic must already exist: producing never creates it. Kafka's internal topics (names starting
// with "__", such as __consumer_offsets and __transaction_state) and the dead-letter topic
// (settings.dlqTopic) are refused with 403 internal-topic: a dead letter would then be
// indistinguishable from a forged one; so are the presence and receipts topics
// (settings.internalTopics), for the same reason. Reading (GET /v1/topics/{topic}) and creating
// (POST /v1/topics, e.g. to give it its own partitions and retention) the dead-letter topic are allowed.
//
// With an Idempotency-Key request header (see answers.idempotent), the record carries it in its
// idempotency-key header (replacing one the body gave); record i of a batch carries "<key>#<i>",
// so that each is de-duplicated on its own.
//
// One record is answered like the notification endpoints:
//
//	201 {"id":"<topic>:<partition>:<offset>","topic":"...","partition":0,"offset":12}
//	400 validation-error | invalid-json | invalid-topic-name    403 internal-topic
//	404 topic-not-found    413    415    503 kafka-unavailable
//
// A batch produces its valid records and not its invalid ones, and answers per record, in
// request order:
//
//	{"results":[{"partition":0,"offset":12},
//	            {"error":{"code":"validation-error","message":"...","errors":[{"field":"records[1].value","code":"required","message":"is required"}]}},
//	            {"error":{"code":"kafka-unavailable","message":"..."}}]}
//
// with status 201 when every record was produced, 207 Multi-Status when some were and some were
// not, and when none was, the problem of the most severe cause (503 kafka-unavailable, then 500,
// then 404 topic-not-found, then 400) carrying the same "results" and every field error in "errors".
// A malformed batch as a whole (not JSON, no records, more than 10,000, "records" next to "value")
// gets 400 and nothing is produced.
func handleProduceRecords(log *slog.Logger, v *notification.Validator, p producer, s settings) http.Handler {
	type header struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	type record struct {
		Key     *string         `json:"key"`
		Value   json.RawMessage `json:"value"`
		Headers []header        `json:"headers"`
	}
	// envelope tells a batch from a single record; the single record is decoded again as a record.
	type envelope struct {
		Key     json.RawMessage   `json:"key"`
		Value   json.RawMessage   `json:"value"`
		Headers json.RawMessage   `json:"headers"`
		Records []json.RawMessage `json:"records"`
	}
	type batchResponse struct {
		Results []recordResult `json:"results"`
	}

	// parse decodes and checks one record for topic; path prefixes its field names.
	parse := func(raw []byte, topic, path string) (*kgo.Record, []notification.FieldError) {
		var in record
		if err := v.DecodeJSON(raw, &in, true); err != nil {
			return nil, prefixFields(path, fieldsOf(err))
		}
		var fields []notification.FieldError
		switch string(in.Value) {
		case "":
			fields = append(fields, notification.FieldError{Field: join(path, "value"), Code: "required", Message: "is required"})
		case "null":
			fields = append(fields, notification.FieldError{Field: join(path, "value"), Code: "required", Message: "is required and must not be null"})
		}
		var counts [len(onceHeaders)]int
		for _, h := range in.Headers {
			if j := slices.Index(onceHeaders[:], h.Key); j >= 0 {
				counts[j]++
			}
		}
		var seen [len(onceHeaders)]bool
		for i, h := range in.Headers {
			at := join(path, "headers["+strconv.Itoa(i)+"]")
			if j := slices.Index(onceHeaders[:], h.Key); j >= 0 {
				if seen[j] { // the consumer would dead-letter the record: refuse it now
					fields = append(fields, notification.FieldError{Field: at + ".key", Code: "unique",
						Message: fmt.Sprintf("the %s header may appear at most once; it appears %d times", h.Key, counts[j])})
				}
				seen[j] = true
			}
			if h.Key == "" {
				fields = append(fields, notification.FieldError{Field: at + ".key", Code: "required", Message: "is required"})
			}
			switch h.Key {
			case notification.HeaderEventType:
				if h.Value != nil && *h.Value != "" {
					if err := notification.CheckEventName(*h.Value); err != nil {
						fields = append(fields, notification.FieldError{Field: at + ".value", Code: "event_type", Message: err.Error()})
					}
				}
			case notification.HeaderExpiresAt, notification.HeaderTTLMs, notification.HeaderCollapseKey:
				var v []byte
				if h.Value != nil {
					v = []byte(*h.Value)
				}
				if err := notification.CheckDeliveryHeader(h.Key, v); err != nil {
					fields = append(fields, notification.FieldError{Field: at + ".value", Code: strings.ReplaceAll(h.Key, "-", "_"), Message: err.Error()})
				}
			}
		}
		if fields != nil {
			return nil, fields
		}
		rec := &kgo.Record{Topic: topic, Value: in.Value}
		if in.Key != nil {
			rec.Key = []byte(*in.Key)
		}
		for _, h := range in.Headers {
			rh := kgo.RecordHeader{Key: h.Key}
			if h.Value != nil {
				rh.Value = []byte(*h.Value)
			}
			rec.Headers = append(rec.Headers, rh)
		}
		return rec, nil
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topic := r.PathValue("topic")
		if pr, bad := topicNameProblem("topic", topic); bad {
			writeProblem(w, r, pr)
			return
		}
		if topic == s.dlqTopic {
			writeProblem(w, r, newProblem(codeInternalTopic, fmt.Sprintf("Topic %q is this service's dead-letter topic (REALTIME_DLQ_TOPIC): only its consumer writes there.", topic)))
			return
		}
		if slices.Contains(s.internalTopics, topic) {
			writeProblem(w, r, newProblem(codeInternalTopic, fmt.Sprintf("Topic %q is this service's presence or receipts topic (REALTIME_PRESENCE_TOPIC, REALTIME_RECEIPTS_TOPIC): only its nodes write there, so that nobody can forge presence or receipts.", topic)))
			return
		}
		data, err := readBody(w, r, s.maxBodyBytes, s.requestTimeout)
		if err != nil {
			writeError(w, r, log, err, topic)
			return
		}
		var env envelope
		if err := v.DecodeJSON(data, &env, true); err != nil {
			writeProblem(w, r, validationProblem(fieldsOf(err)))
			return
		}

		if env.Records == nil { // one record (or "records":null)
			rec, fields := parse(data, topic, "")
			if slices.ContainsFunc(fields, func(f notification.FieldError) bool { return f.Field == "records" }) {
				fields = []notification.FieldError{{Field: "records", Code: "type", Message: "must be an array of records, not null"}}
			}
			if fields != nil {
				p.rejected(1)
				writeProblem(w, r, validationProblem(fields))
				return
			}
			if k := idempotencyKey(r); k != "" {
				withIdempotencyKey(rec, k)
			}
			if err := p.produce(r.Context(), "records", []*kgo.Record{rec})[0]; err != nil {
				writeError(w, r, log, err, topic)
				return
			}
			encode(w, r, http.StatusCreated, positionOf(rec))
			return
		}

		records := env.Records
		if fields := checkBatch(env.Key, env.Value, env.Headers, len(records)); fields != nil {
			writeProblem(w, r, validationProblem(fields))
			return
		}
		results := make([]recordResult, len(records))
		var (
			send      []*kgo.Record
			sendIndex []int // sendIndex[j] is the position in the batch of send[j]
			allFields []notification.FieldError
			worst     *problem
			failed    int
		)
		fail := func(i int, pr problem) {
			results[i] = recordResult{Error: &recordError{Code: pr.Code, Message: pr.summary(), Errors: pr.fieldErrors()}}
			failed++
			if worst == nil || severity(pr.Status) > severity(worst.Status) {
				worst = &pr
			}
		}
		for i, raw := range records {
			rec, fields := parse(raw, topic, "records["+strconv.Itoa(i)+"]")
			if fields != nil {
				fail(i, validationProblem(fields))
				allFields = append(allFields, fields...)
				continue
			}
			if k := idempotencyKey(r); k != "" {
				withIdempotencyKey(rec, batchKey(k, i))
			}
			send = append(send, rec)
			sendIndex = append(sendIndex, i)
		}
		p.rejected(len(records) - len(send))
		if len(send) > 0 {
			logged := false
			for j, err := range p.produce(r.Context(), "records", send) {
				i, rec := sendIndex[j], send[j]
				if err == nil {
					results[i] = recordResult{Partition: &rec.Partition, Offset: &rec.Offset}
					continue
				}
				pr := problemFor(err, topic)
				if !logged && pr.Status >= 500 { // one line per batch is enough
					logProblem(r, log, pr, fmt.Errorf("records[%d]: %w", i, err))
					logged = true
				}
				fail(i, pr)
			}
		}

		switch {
		case failed == 0:
			encode(w, r, http.StatusCreated, batchResponse{Results: results})
		case failed < len(results):
			encode(w, r, http.StatusMultiStatus, batchResponse{Results: results})
		default:
			pr := *worst
			if pr.Status == http.StatusBadRequest && len(allFields) > 0 {
				pr = validationProblem(allFields)
			} else {
				pr.Errors = allFields
			}
			pr.Results = results
			writeProblem(w, r, pr)
		}
	})
}

// withIdempotencyKey sets rec's idempotency-key header to key, replacing any the body gave.
func withIdempotencyKey(rec *kgo.Record, key string) {
	rec.Headers = slices.DeleteFunc(rec.Headers, func(h kgo.RecordHeader) bool { return h.Key == dedup.Header })
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: dedup.Header, Value: []byte(key)})
}

// checkBatch checks a batch as a whole: its record count, and that no single-record member sits
// beside "records".
func checkBatch(key, value, headers json.RawMessage, n int) []notification.FieldError {
	var fields []notification.FieldError
	for _, m := range []struct {
		name string
		raw  json.RawMessage
	}{{"key", key}, {"value", value}, {"headers", headers}} {
		if len(m.raw) > 0 {
			fields = append(fields, notification.FieldError{Field: m.name, Code: "exclusive", Message: "cannot be given with records: put it inside each record"})
		}
	}
	switch {
	case n == 0:
		fields = append(fields, notification.FieldError{Field: "records", Code: "min", Message: "must have at least 1 entry"})
	case n > maxBatchRecords:
		fields = append(fields, notification.FieldError{Field: "records", Code: "max", Message: "must have at most " + strconv.Itoa(maxBatchRecords) + " entries"})
	}
	return fields
}

// severity orders the causes of a failed record: the most severe decides the status of a batch
// in which every record failed.
func severity(status int) int {
	switch status {
	case http.StatusServiceUnavailable:
		return 4
	case http.StatusInternalServerError:
		return 3
	case http.StatusNotFound:
		return 2
	}
	return 1
}

// fieldsOf returns the failing fields of a *notification.ValidationError (what
// notification.Validator.DecodeJSON returns), or err as one document-level field error.
func fieldsOf(err error) []notification.FieldError {
	var verr *notification.ValidationError
	if errors.As(err, &verr) {
		return verr.Fields
	}
	return []notification.FieldError{{Code: "invalid", Message: err.Error()}}
}

// prefixFields puts path in front of every field name: "value" in "records[2]" is "records[2].value".
func prefixFields(path string, fields []notification.FieldError) []notification.FieldError {
	if path == "" {
		return fields
	}
	out := make([]notification.FieldError, len(fields))
	for i, f := range fields {
		f.Field = join(path, f.Field)
		out[i] = f
	}
	return out
}

// join joins a path and a field name with a dot; either may be empty.
func join(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}
