package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
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

	// Headers of a truncated copy only (see truncatedDeadLetter): a poison record too large to
	// be copied whole is dead-lettered with its key, value and headers cut short.
	HeaderDLQTruncated       = "dlq-truncated"        // "true"
	HeaderDLQOriginalSize    = "dlq-original-size"    // the original value's size, decimal bytes
	HeaderDLQTruncatedReason = "dlq-truncated-reason" // why the whole copy could not be written

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

const (
	// dlqMaxRecordBytes is the dead-letter producer's max record batch bytes (Kafka's default
	// max.message.bytes, 1,000,012, also franz-go's ProducerBatchMaxBytes default), set
	// explicitly on the Consumer's client: a copy that cannot fit in it (uncompressed, with
	// recordOverhead) is truncated before it is produced.
	dlqMaxRecordBytes = 1_000_012
	// recordOverhead bounds what a record batch adds to a record's key, value and headers: the
	// v2 batch header (61 bytes) and the record's varints.
	recordOverhead = 128
	// dlqTruncatedBytes bounds the key, the value and the original headers (together) of a
	// truncated copy, and each of its dlq-* header values: 1 KiB shows the payload's shape.
	dlqTruncatedBytes = 1024
	// dlqMaxBufferedBytes bounds the bytes of dead-letter copies in flight (franz-go's
	// MaxBufferedBytes on the Consumer's client, beside its MaxBufferedRecords default of
	// 50,000): past it the hand-off waits for acks (back-pressure), so that a flood of large
	// poison records cannot hold unbounded memory.
	dlqMaxBufferedBytes = 64 << 20
)

// recordSize is what franz-go weighs a record at against ProducerBatchMaxBytes, less the batch
// overhead: key, value and headers, uncompressed.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// truncatedDeadLetter returns a copy of the dead-letter record dr (made by deadLetterRecord
// from a record whose value was originalSize bytes) small enough for any dead-letter topic
// that takes a few KiB: key and value cut to their first dlqTruncatedBytes, the original
// headers kept only when they add up to at most dlqTruncatedBytes, and each dlq-* header value
// cut to dlqTruncatedBytes; plus dlq-truncated: true, dlq-original-size and
// dlq-truncated-reason (why).
func truncatedDeadLetter(dr *kgo.Record, originalSize int, why string) *kgo.Record {
	var own, dlq []kgo.RecordHeader
	ownBytes := 0
	for _, h := range dr.Headers {
		if strings.HasPrefix(h.Key, "dlq-") {
			dlq = append(dlq, kgo.RecordHeader{Key: h.Key, Value: cut(h.Value)})
			continue
		}
		own = append(own, h)
		ownBytes += len(h.Key) + len(h.Value)
	}
	if ownBytes > dlqTruncatedBytes {
		own = nil
	}
	headers := append(own, dlq...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderDLQTruncated, Value: []byte("true")},
		kgo.RecordHeader{Key: HeaderDLQOriginalSize, Value: strconv.AppendInt(nil, int64(originalSize), 10)},
		kgo.RecordHeader{Key: HeaderDLQTruncatedReason, Value: cut([]byte(why))},
	)
	var key []byte
	if dr.Key != nil {
		key = cut(dr.Key)
	}
	return &kgo.Record{Topic: dr.Topic, Key: key, Value: cut(dr.Value), Headers: headers}
}

// cut returns b's first dlqTruncatedBytes bytes (a nil b stays nil).
func cut(b []byte) []byte {
	return b[:min(len(b), dlqTruncatedBytes)]
}

// isTruncated reports whether r is a truncated dead-letter copy.
func isTruncated(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == HeaderDLQTruncated {
			return true
		}
	}
	return false
}

// tooLarge reports whether a produce failed because the record or its batch is larger than
// the client or the broker accepts (Kafka's MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE).
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// The states of a dlqEntry.
const (
	dlqInFlight  int32 = iota // its copy is being produced: the commit stops before it
	dlqResolved               // copied, or its copy failed for good and it is skipped
	dlqAbandoned              // shutdown came first: the commit stops before it for good
)

// dlqEntry is one poison record of a partition whose dead-letter copy was produced. The
// session keeps them per partition in offset order until they are resolved; commits never
// pass the first one that is not (see session.commit).
type dlqEntry struct {
	offset int64
	epoch  int32 // the record's leader epoch, for its commit
	state  atomic.Int32
}

// inFlight counts the dead-letter produces that are not resolved yet; wait returns once
// there are none. Its lock is its own: promises must never wait for the session's.
type inFlight struct {
	gauge interface{ Set(float64) }

	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n is 0
}

func (f *inFlight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
	f.gauge.Set(float64(f.n))
}

func (f *inFlight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	f.gauge.Set(float64(f.n))
	if f.n == 0 {
		close(f.idle)
	}
}

// wait returns when no produce is in flight, or with ctx's error when ctx ends first.
func (f *inFlight) wait(ctx context.Context) error {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deadLetter copies the poison record rec to the dead-letter topic without waiting for the
// ack (franz-go's asynchronous Produce, many in flight): the Handler gets the next records at
// once, while commits of rec's partition stop before rec until the copy is resolved. The
// caller holds s.mu. A copy larger than the producer's max record bytes is truncated first
// (see truncatedDeadLetter); one that the broker refuses as too large is produced again,
// truncated. A copy that fails otherwise, or that fails truncated, is never retried: the
// failure is logged at error (sampled) and counted, and the record is skipped (it stays in its
// own topic at the logged offset), so that one partition is never stuck behind it. Each copy
// written is logged at warn, sampled: see sampledLog.
func (s *session) deadLetter(cl *kgo.Client, rec *kgo.Record, reason error) {
	dr, code := deadLetterRecord(s.c.cfg.DLQTopic, rec, reason)
	e := &dlqEntry{offset: rec.Offset, epoch: rec.LeaderEpoch}
	if s.dlq[rec.Topic] == nil {
		s.dlq[rec.Topic] = map[int32][]*dlqEntry{}
	}
	s.dlq[rec.Topic][rec.Partition] = append(s.dlq[rec.Topic][rec.Partition], e)
	s.inFlight.add()
	if n := recordSize(dr); n+recordOverhead > dlqMaxRecordBytes {
		dr = truncatedDeadLetter(dr, len(rec.Value), fmt.Sprintf(
			"the copy is %d bytes, more than the producer's max record bytes %d", n, dlqMaxRecordBytes))
	}
	s.produceDeadLetter(cl, rec, dr, code, reason, e)
}

// produceDeadLetter produces dr, the copy of rec, and resolves e when it is acked or failed.
// The copy is bounded by RecordDeliveryTimeout, and canceled with s.produceCtx (franz-go
// cancels a batch by the context given to Produce).
func (s *session) produceDeadLetter(cl *kgo.Client, rec, dr *kgo.Record, code string, reason error, e *dlqEntry) {
	cl.Produce(s.produceCtx, dr, func(dr *kgo.Record, err error) {
		switch {
		case err == nil:
			s.c.m.deadLetters.WithLabelValues(rec.Topic, code).Inc()
			if isTruncated(dr) {
				s.c.m.deadLettersTruncated.WithLabelValues(rec.Topic).Inc()
			}
			s.warnLog.Log(rec.Topic+" "+code, "kafka consumer: poison record copied to the dead-letter topic",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
				"reason", reason.Error(), "code", code, "truncated", isTruncated(dr),
				"dlq_topic", dr.Topic, "dlq_partition", dr.Partition, "dlq_offset", dr.Offset)
			e.state.Store(dlqResolved)
		case tooLarge(err) && !isTruncated(dr):
			// A promise must not block on the client (a Produce may wait for buffer space
			// that only later promises free): the truncated copy is produced from a goroutine,
			// which Run waits for. e stays in flight.
			tr := truncatedDeadLetter(dr, len(rec.Value), err.Error())
			s.retries.Add(1)
			go func() {
				defer s.retries.Done()
				s.produceDeadLetter(cl, rec, tr, code, reason, e)
			}()
			return
		case s.produceCtx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed)):
			e.state.Store(dlqAbandoned) // shutting down: the record comes back on the next start
		default:
			s.c.m.deadLetterErrors.WithLabelValues(rec.Topic).Inc()
			s.errLog.Log(rec.Topic, "kafka consumer: poison record could not be copied to the dead-letter topic; skipped, it stays in its topic",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
				"reason", reason.Error(), "code", code, "truncated", isTruncated(dr), "dlq_topic", dr.Topic, "err", err)
			e.state.Store(dlqResolved)
		}
		s.inFlight.done()
	})
}
