package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

func TestDeadLetterRecord(t *testing.T) {
	ts := time.Date(2026, 11, 29, 10, 0, 0, 7_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name     string
		rec      *kgo.Record
		reason   error
		wantCode string
	}{
		{"decode error", &kgo.Record{Topic: "t", Partition: 2, Offset: 41, Timestamp: ts, Key: []byte("k"), Value: []byte("{"),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{0, 0xff}}}},
			&notification.DecodeError{Code: "invalid-json", Detail: "cut short"}, "invalid-json"},
		{"wrapped decode error", &kgo.Record{Topic: "t", Timestamp: ts, Value: []byte("x")},
			fmt.Errorf("hub: %w", &notification.DecodeError{Code: "invalid-value", Detail: "no users"}), "invalid-value"},
		{"other error, no key, no value", &kgo.Record{Topic: "t", Timestamp: ts}, errors.New("boom"), DLQCodeHandlerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, code := deadLetterRecord("dlq", tc.rec, tc.reason)
			if code != tc.wantCode || d.Topic != "dlq" {
				t.Errorf("got code %q topic %q, want %q dlq", code, d.Topic, tc.wantCode)
			}
			if !bytes.Equal(d.Key, tc.rec.Key) || (d.Key == nil) != (tc.rec.Key == nil) || !bytes.Equal(d.Value, tc.rec.Value) {
				t.Errorf("key/value changed: %q %q", d.Key, d.Value)
			}
			n := len(tc.rec.Headers)
			if len(d.Headers) != n+6 {
				t.Fatalf("headers: %v", d.Headers)
			}
			for i, h := range tc.rec.Headers {
				if d.Headers[i].Key != h.Key || !bytes.Equal(d.Headers[i].Value, h.Value) {
					t.Errorf("original header %d changed: %v", i, d.Headers[i])
				}
			}
			want := map[string]string{
				HeaderDLQReason:          tc.reason.Error(),
				HeaderDLQErrorCode:       tc.wantCode,
				HeaderDLQSourceTopic:     tc.rec.Topic,
				HeaderDLQSourcePartition: fmt.Sprint(tc.rec.Partition),
				HeaderDLQSourceOffset:    fmt.Sprint(tc.rec.Offset),
				HeaderDLQSourceTimestamp: "2026-11-29T09:00:00.007Z",
			}
			for _, h := range d.Headers[n:] {
				if w, ok := want[h.Key]; !ok || w != string(h.Value) {
					t.Errorf("header %s=%q, want %q", h.Key, h.Value, w)
				}
				delete(want, h.Key)
			}
			if len(want) > 0 {
				t.Errorf("missing headers %v", want)
			}
			if !d.Timestamp.IsZero() {
				t.Errorf("timestamp %v: want zero (the producer stamps it)", d.Timestamp)
			}
		})
	}
}

// TestTwoEventTypeHeadersAreDeadLettered: the decoder refuses a record with two event-type headers
// and its dead letter says why, with code invalid-event-type and both headers kept.
func TestTwoEventTypeHeadersAreDeadLettered(t *testing.T) {
	dec := notification.NewDecoder(notification.NewValidator(), map[string]string{"t": "custom-event"})
	rec := &kgo.Record{Topic: "t", Value: []byte(`{"userIds":["u1"]}`), Headers: []kgo.RecordHeader{
		{Key: notification.HeaderEventType, Value: []byte("a")}, {Key: notification.HeaderEventType, Value: []byte("b")}}}
	_, err := dec.Decode(rec)
	if err == nil {
		t.Fatal("decoded a record with two event-type headers")
	}
	d, code := deadLetterRecord("dlq", rec, err)
	if code != "invalid-event-type" {
		t.Errorf("code %q, want invalid-event-type", code)
	}
	var reason string
	for _, h := range d.Headers {
		if h.Key == HeaderDLQReason {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "the event-type header appears 2 times") {
		t.Errorf("dlq-reason %q does not say the header appears 2 times", reason)
	}
	if len(d.Headers) < 2 || string(d.Headers[0].Value) != "a" || string(d.Headers[1].Value) != "b" {
		t.Errorf("original headers not kept first: %v", d.Headers)
	}
}

// TestDeadLetterRecordDropsItsOwnDLQHeaders: a poison record carrying dlq-* headers of its own
// (forged) must not have them read as the service's reason and source.
func TestDeadLetterRecordDropsItsOwnDLQHeaders(t *testing.T) {
	rec := &kgo.Record{Topic: "concept-notifications", Partition: 1, Offset: 7, Value: []byte("x"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}, {Key: HeaderDLQReason, Value: []byte("forged reason")}, {Key: HeaderDLQSourceTopic, Value: []byte("elsewhere")}}}
	d, _ := deadLetterRecord("realtime-service.dlq", rec, &notification.DecodeError{Code: "invalid-json", Detail: "x"})
	counts := map[string]int{}
	for _, h := range d.Headers {
		counts[h.Key]++
		if h.Key == HeaderDLQReason && string(h.Value) == "forged reason" || h.Key == HeaderDLQSourceTopic && string(h.Value) != "concept-notifications" {
			t.Errorf("forged header kept: %s=%s", h.Key, h.Value)
		}
	}
	if counts["trace"] != 1 || counts[HeaderDLQReason] != 1 || counts[HeaderDLQSourceTopic] != 1 {
		t.Errorf("headers %v: want trace once and one of each dlq-* header", d.Headers)
	}
}
