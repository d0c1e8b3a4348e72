package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Sentinel errors callers branch on with errors.Is. Each is wrapped with the operation and the
// underlying cause (a *kerr.Error, a network error, a context error), which errors.Is and
// errors.As also reach.
var (
	// ErrTopicExists is returned by Client.CreateTopic when the topic already exists (Kafka's
	// TOPIC_ALREADY_EXISTS). The HTTP API answers 409.
	ErrTopicExists = errors.New("topic already exists")

	// ErrTopicNotFound is returned, per record, by Client.Produce when the topic does not exist
	// (Kafka's UNKNOWN_TOPIC_OR_PARTITION on a few metadata refreshes in a row, about a second;
	// see producerOpts). The topic is never created by producing: automatic topic creation is
	// off in this client. Reader.Offsets and Reader.Read return it for a missing topic too.
	ErrTopicNotFound = errors.New("topic not found")

	// ErrUnavailable is returned by every Client, Reader and Consumer call that could not reach
	// a broker, or got no answer within config.Kafka.RequestTimeout, or was refused for a reason
	// that is not the caller's request (Kafka's retriable errors, authentication and
	// authorization failures). The HTTP API answers 503.
	ErrUnavailable = errors.New("kafka unavailable")

	// ErrOffsetOutOfRange is returned by Reader.Read when a from offset is below the
	// partition's log start offset (the records were deleted by retention or DeleteRecords) or
	// above its high watermark: the reader cannot honour that position (the caller answers
	// with a resync event: docs/client-protocol.md, "Resync").
	ErrOffsetOutOfRange = errors.New("offset out of range")
)

// RequestError is a request Kafka refused because of what was asked: an invalid topic name,
// partition count, replication factor or config in Client.CreateTopic, or a record Kafka will
// not store in Client.Produce (e.g. MESSAGE_TOO_LARGE). The HTTP API answers 400 with Code and
// Message. errors.Is(err, kerr.InvalidReplicationFactor) and the like also work: it unwraps to
// the *kerr.Error.
type RequestError struct {
	// Code is Kafka's error name, e.g. "INVALID_REPLICATION_FACTOR", "INVALID_PARTITIONS",
	// "INVALID_TOPIC_EXCEPTION", "MESSAGE_TOO_LARGE".
	Code string
	// Message is the broker's error message when it sent one, otherwise Kafka's description of
	// the code.
	Message string
	// Err is the *kerr.Error behind Code.
	Err error
}

func (e *RequestError) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the *kerr.Error.
func (e *RequestError) Unwrap() error { return e.Err }

// requestCodes are the Kafka errors caused by the request itself rather than by the cluster's
// state: they become a *RequestError (HTTP 400) instead of ErrUnavailable (HTTP 503).
var requestCodes = map[int16]bool{
	kerr.InvalidTopicException.Code:      true,
	kerr.InvalidPartitions.Code:          true,
	kerr.InvalidReplicationFactor.Code:   true,
	kerr.InvalidReplicaAssignment.Code:   true,
	kerr.InvalidConfig.Code:              true,
	kerr.InvalidRequest.Code:             true,
	kerr.PolicyViolation.Code:            true,
	kerr.MessageTooLarge.Code:            true,
	kerr.RecordListTooLarge.Code:         true,
	kerr.InvalidRecord.Code:              true,
	kerr.CorruptMessage.Code:             true,
	kerr.InvalidTimestamp.Code:           true,
	kerr.UnsupportedCompressionType.Code: true,
}

// newRequestError builds a *RequestError from a Kafka error and the broker's message, if any.
func newRequestError(ke *kerr.Error, msg string) *RequestError {
	if msg == "" {
		msg = ke.Description
	}
	return &RequestError{Code: ke.Message, Message: msg, Err: ke}
}

// classify maps err, the failure of operation op under the caller's ctx, onto the package's
// error contract: a *RequestError, ErrTopicExists, ErrTopicNotFound, the caller's own context
// error, or ErrUnavailable for everything else. The result names op and wraps err.
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var re *RequestError
	switch {
	case errors.As(err, &re), errors.Is(err, ErrUnavailable), errors.Is(err, ErrTopicExists),
		errors.Is(err, ErrTopicNotFound), errors.Is(err, ErrOffsetOutOfRange):
		return fmt.Errorf("%s: %w", op, err)
	case ctx.Err() != nil:
		// The caller gave up (client went away, shutdown): not Kafka's fault.
		if errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%s: %w", op, err)
		}
		return fmt.Errorf("%s: %w (%w)", op, ctx.Err(), err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("%s: %w: %w", op, ErrTopicNotFound, err)
	case errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("%s: %w: %w", op, ErrTopicExists, err)
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && requestCodes[ke.Code] {
		return fmt.Errorf("%s: %w", op, newRequestError(ke, ""))
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
