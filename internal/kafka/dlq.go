package kafka

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// Headers added to a dead-letter record (the record is copied, with its
// original headers plus the reason), after the original headers.
const (
	HeaderDLQReason          = "dlq-reason"           // the Handler's error text
	HeaderDLQErrorCode       = "dlq-error-code"       // notification.DecodeError.Code, or DLQCodeHandlerError
	HeaderDLQSourceTopic     = "dlq-source-topic"     // where the record came from
	HeaderDLQSourcePartition = "dlq-source-partition" // decimal
	HeaderDLQSourceOffset    = "dlq-source-offset"    // decimal
	HeaderDLQSourceTimestamp = "dlq-source-timestamp" // the record's timestamp, RFC 3339 in UTC with milliseconds

	// DLQCodeHandlerError is the dlq-error-code of a Handler error that is not a
	// *notification.DecodeError.
	DLQCodeHandlerError = "handler-error"
)

// rfc3339Millis is RFC 3339 with exactly three fractional digits.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// deadLetterRecord returns the copy of rec for the dead-letter topic: the same key, value and
// headers (byte for byte; a nil key stays nil) except any dlq-* header of its own, plus the
// service's dlq-* headers, and the error code.
// Its timestamp is left to the producer (now); the original one is in dlq-source-timestamp.
func deadLetterRecord(topic string, rec *kgo.Record, reason error) (*kgo.Record, string) {
	code := DLQCodeHandlerError
	var de *notification.DecodeError
	if errors.As(reason, &de) && de.Code != "" {
		code = de.Code
	}
	headers := make([]kgo.RecordHeader, 0, len(rec.Headers)+6)
	for _, h := range rec.Headers {
		// A record's own dlq-* headers (forged, or left by an earlier dead-lettering before
		// the record was put back) would be read as this copy's: only the service's are kept.
		if !strings.HasPrefix(h.Key, "dlq-") {
			headers = append(headers, h)
		}
	}
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderDLQErrorCode, Value: []byte(code)},
		kgo.RecordHeader{Key: HeaderDLQSourceTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderDLQSourcePartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderDLQSourceOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
		kgo.RecordHeader{Key: HeaderDLQSourceTimestamp, Value: []byte(rec.Timestamp.UTC().Format(rfc3339Millis))},
	)
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Headers: headers}, code
}

// deadLetter copies the poison record rec to the dead-letter topic, waiting for the ack at most
// RequestTimeout, and logs it at warn with its position and reason. It is never retried: if the
// copy fails, the failure is logged at error and counted, and the record is skipped anyway (it
// stays in its own topic at the logged offset), so that one partition is never stuck behind
// it. It reports whether rec was dealt with (false only when ctx ended first).
func (s *session) deadLetter(ctx context.Context, cl *kgo.Client, rec *kgo.Record, reason error) bool {
	dr, code := deadLetterRecord(s.c.cfg.DLQTopic, rec, reason)
	pctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
	err := cl.ProduceSync(pctx, dr).FirstErr()
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false // shutting down: the record comes back on the next start
		}
		s.c.m.deadLetterErrors.WithLabelValues(rec.Topic).Inc()
		s.c.log.Error("kafka consumer: poison record could not be copied to the dead-letter topic; skipped, it stays in its topic",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"reason", reason.Error(), "code", code, "dlq_topic", dr.Topic, "err", err)
		return true
	}
	s.c.m.deadLetters.WithLabelValues(rec.Topic, code).Inc()
	s.c.log.Warn("kafka consumer: poison record copied to the dead-letter topic",
		"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
		"reason", reason.Error(), "code", code,
		"dlq_topic", dr.Topic, "dlq_partition", dr.Partition, "dlq_offset", dr.Offset)
	return true
}
