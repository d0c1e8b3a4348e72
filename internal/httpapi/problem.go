package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Problem codes. Every error response is an RFC 9457 problem whose "code" is one of these and
// whose "type" is the relative URI "/problems/<code>"; both are stable, clients may branch on them.
//
//	code                    status  when
//	validation-error        400     fields fail their rules; "errors" lists every failing field
//	invalid-json            400     the body is not one JSON document (malformed, cut short, trailing data)
//	body-not-allowed        400     /v1/events with a request body (written by the realtime package, in this shape)
//	invalid-topic-name      400     the {topic} path segment breaks Kafka's rule: 1-249 of [a-zA-Z0-9._-], not "." or ".."
//	kafka-rejected          400     Kafka refused the request; "kafkaError" has its error code and message
//	unauthorized            401     no or an unknown API key (with WWW-Authenticate: Bearer, RFC 6750 §3)
//	user-unauthorized       401     a client endpoint without a valid user token (missing, expired, bad signature, alg none)
//	forbidden-origin        403     a browser page whose origin is not in REALTIME_ALLOWED_ORIGINS
//	internal-topic          403     the topic starts with "__": Kafka's internal topics are off limits;
//	                                or records are sent to the dead-letter topic (REALTIME_DLQ_TOPIC)
//	not-found               404     no such route
//	topic-not-found         404     the topic does not exist (it is not created by producing)
//	method-not-allowed      405     the route exists for other methods, listed in Allow
//	topic-exists            409     POST /v1/topics for a topic that exists
//	topic-shape-mismatch    409     a notification endpoint's topic names its recipients elsewhere than
//	                                in "userIds" (REALTIME_TOPICS recipients or value): use the records API
//	body-too-large          413     the body exceeds HTTP_MAX_BODY_BYTES; nothing was produced
//	unsupported-media-type  415     the Content-Type is missing or not application/json
//	too-many-connections    429     the user already holds REALTIME_MAX_CONNECTIONS_PER_USER connections on this node
//	                                (written by the realtime package for /v1/ws and /v1/events, in this shape)
//	internal-error          500     a bug; the server log has the details
//	kafka-unavailable       503     Kafka is unreachable or did not answer within KAFKA_REQUEST_TIMEOUT
//	node-full               503     the node holds REALTIME_MAX_CONNECTIONS client connections (with Retry-After;
//	                                written by the realtime package for /v1/ws and /v1/events, in this shape)
const (
	codeValidation       = "validation-error"
	codeInvalidJSON      = "invalid-json"
	codeInvalidTopicName = "invalid-topic-name"
	codeKafkaRejected    = "kafka-rejected"
	codeUnauthorized     = "unauthorized"
	codeUserUnauthorized = "user-unauthorized"
	codeForbiddenOrigin  = "forbidden-origin"
	codeInternalTopic    = "internal-topic"
	codeNotFound         = "not-found"
	codeTopicNotFound    = "topic-not-found"
	codeMethodNotAllowed = "method-not-allowed"
	codeTopicExists      = "topic-exists"
	codeTopicShape       = "topic-shape-mismatch"
	codeBodyTooLarge     = "body-too-large"
	codeUnsupportedMedia = "unsupported-media-type"
	codeTooManyConns     = "too-many-connections"
	codeBodyNotAllowed   = "body-not-allowed" // written by the realtime package (/v1/events), in this shape
	codeInternal         = "internal-error"
	codeKafkaUnavailable = "kafka-unavailable"
	codeNodeFull         = "node-full"
	codeInvalidIdemKey   = "invalid-idempotency-key"
	codeIdemKeyMismatch  = "idempotency-key-mismatch"
	codeIdemKeyInUse     = "idempotency-key-in-use"
)

const (
	// problemTypePrefix makes a problem's type URI from its code: a relative reference
	// (RFC 9457 §3.1.1 allows one; it resolves against the request URI).
	problemTypePrefix = "/problems/"
	// fieldCodeSyntax is the notification.FieldError code of a body that is not JSON.
	fieldCodeSyntax = "syntax"
)

// problem is an RFC 9457 problem details object, with the extension members code, errors (always
// a list, empty when there are no field errors), kafkaError and results.
type problem struct {
	Type     string                    `json:"type"`
	Title    string                    `json:"title"`
	Status   int                       `json:"status"`
	Detail   string                    `json:"detail,omitempty"`
	Instance string                    `json:"instance,omitempty"`
	Code     string                    `json:"code"`
	Errors   []notification.FieldError `json:"errors"`
	// KafkaError is Kafka's reason for a kafka-rejected problem.
	KafkaError *kafkaReason `json:"kafkaError,omitempty"`
	// Results are the per-record results of a batch in which every record failed.
	Results []recordResult `json:"results,omitempty"`
}

// kafkaReason is Kafka's error code name (e.g. INVALID_REPLICATION_FACTOR) and message.
type kafkaReason struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// newProblem returns the problem of code with its fixed status and title.
func newProblem(code, detail string) problem {
	p := problem{Type: problemTypePrefix + code, Code: code, Detail: detail, Errors: []notification.FieldError{}}
	switch code {
	case codeValidation:
		p.Status, p.Title = http.StatusBadRequest, "The request has invalid fields"
	case codeInvalidJSON:
		p.Status, p.Title = http.StatusBadRequest, "The request body is not valid JSON"
	case codeInvalidTopicName:
		p.Status, p.Title = http.StatusBadRequest, "Invalid topic name"
	case codeKafkaRejected:
		p.Status, p.Title = http.StatusBadRequest, "Kafka rejected the request"
	case codeUnauthorized:
		p.Status, p.Title = http.StatusUnauthorized, "Missing or invalid API key"
	case codeUserUnauthorized:
		p.Status, p.Title = http.StatusUnauthorized, "Missing or invalid user token"
	case codeForbiddenOrigin:
		p.Status, p.Title = http.StatusForbidden, "Origin not allowed"
	case codeTooManyConns:
		p.Status, p.Title = http.StatusTooManyRequests, "Too many connections for this user"
	case codeInternalTopic:
		p.Status, p.Title = http.StatusForbidden, "Internal topics cannot be used"
	case codeNotFound:
		p.Status, p.Title = http.StatusNotFound, "No such route"
	case codeTopicNotFound:
		p.Status, p.Title = http.StatusNotFound, "Topic not found"
	case codeMethodNotAllowed:
		p.Status, p.Title = http.StatusMethodNotAllowed, "Method not allowed"
	case codeTopicExists:
		p.Status, p.Title = http.StatusConflict, "Topic already exists"
	case codeInvalidIdemKey:
		p.Status, p.Title = http.StatusBadRequest, "Invalid Idempotency-Key header"
	case codeIdemKeyMismatch:
		p.Status, p.Title = http.StatusUnprocessableEntity, "The Idempotency-Key was used for another request"
	case codeIdemKeyInUse:
		p.Status, p.Title = http.StatusConflict, "A request with this Idempotency-Key is in progress"
	case codeTopicShape:
		p.Status, p.Title = http.StatusConflict, "The topic names its recipients elsewhere"
	case codeBodyTooLarge:
		p.Status, p.Title = http.StatusRequestEntityTooLarge, "Request body too large"
	case codeUnsupportedMedia:
		p.Status, p.Title = http.StatusUnsupportedMediaType, "Unsupported media type"
	case codeKafkaUnavailable:
		p.Status, p.Title = http.StatusServiceUnavailable, "Kafka is unavailable"
	case codeNodeFull:
		p.Status, p.Title = http.StatusServiceUnavailable, "This node is full"
	default:
		p.Type, p.Code = problemTypePrefix+codeInternal, codeInternal
		p.Status, p.Title = http.StatusInternalServerError, "Internal server error"
	}
	return p
}

// writeError answers with the problem of err (see problemFor). The causes of 5xx answers are
// logged: errors at error level, Kafka being unavailable at warn level.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error, topic string) {
	p := problemFor(err, topic)
	logProblem(r, log, p, err)
	writeProblem(w, r, p)
}

// logProblem logs err, the cause of p, if p is a server-side problem (5xx).
func logProblem(r *http.Request, log *slog.Logger, p problem, err error) {
	if p.Status < 500 {
		return
	}
	level := slog.LevelError
	if p.Status == http.StatusServiceUnavailable {
		level = slog.LevelWarn
	}
	log.LogAttrs(r.Context(), level, "request failed",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("code", p.Code),
		slog.Any("error", err))
}

// writeProblem answers with p, its instance being the request path.
func writeProblem(w http.ResponseWriter, r *http.Request, p problem) {
	p.Instance = r.URL.Path
	if p.Errors == nil {
		p.Errors = []notification.FieldError{}
	}
	if err := write(w, p.Status, contentTypeProblem, p); err != nil {
		w.WriteHeader(http.StatusInternalServerError) // cannot happen: problem always encodes
	}
}

func internalProblem() problem {
	return newProblem(codeInternal, "An unexpected error occurred; the server log has the details.")
}

func notFoundProblem(r *http.Request) problem {
	return newProblem(codeNotFound, fmt.Sprintf("No route matches %s %s.", r.Method, r.URL.Path))
}

func methodNotAllowedProblem(r *http.Request, allow string) problem {
	return newProblem(codeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; allowed: %s.", r.Method, allow))
}

func unauthorizedProblem(detail string) problem {
	return newProblem(codeUnauthorized, detail)
}

// validationProblem lists every failing field: invalid-json when the body is not parseable,
// validation-error otherwise.
func validationProblem(fields []notification.FieldError) problem {
	code := codeValidation
	if len(fields) == 1 && fields[0].Code == fieldCodeSyntax {
		code = codeInvalidJSON
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Message
		if f.Field != "" {
			parts[i] = f.Field + " " + f.Message
		}
	}
	p := newProblem(code, strings.Join(parts, "; ")+".")
	p.Errors = fields
	return p
}

// topicNameProblem is the problem of a topic name that Kafka would refuse (400), or of an
// internal topic (403); ok is false when the name is fine.
func topicNameProblem(field, topic string) (p problem, ok bool) {
	switch {
	case !validTopicName(topic):
		fe := topicNameFieldError(field)
		p = newProblem(codeInvalidTopicName, fmt.Sprintf("%q is not a valid Kafka topic name: %s", topic, fe.Message))
		p.Errors = []notification.FieldError{fe}
		return p, true
	case internalTopic(topic):
		return newProblem(codeInternalTopic, fmt.Sprintf("Topic %q is internal to Kafka (its name starts with \"__\").", topic)), true
	}
	return problem{}, false
}

// problemFor maps an error of reading a request or of a Kafka call about topic to its problem.
// Unknown errors are internal errors (500).
func problemFor(err error, topic string) problem {
	var (
		verr     *notification.ValidationError
		tooLarge *http.MaxBytesError
		rejected *kafka.RequestError
	)
	switch {
	case errors.As(err, &verr):
		return validationProblem(verr.Fields)
	case errors.As(err, &tooLarge):
		return newProblem(codeBodyTooLarge, fmt.Sprintf("The request body is larger than %d bytes; nothing was produced.", tooLarge.Limit))
	case errors.Is(err, errUnsupportedMediaType):
		return newProblem(codeUnsupportedMedia, "The request body must be JSON, sent with Content-Type: application/json.")
	case errors.Is(err, errReadBody):
		p := newProblem(codeInvalidJSON, err.Error())
		p.Errors = []notification.FieldError{{Code: fieldCodeSyntax, Message: "the body could not be read"}}
		return p
	case errors.Is(err, kafka.ErrTopicNotFound):
		return newProblem(codeTopicNotFound, fmt.Sprintf("Topic %q does not exist; create it with POST /v1/topics.", topic))
	case errors.Is(err, kafka.ErrTopicExists):
		return newProblem(codeTopicExists, fmt.Sprintf("Topic %q already exists.", topic))
	case errors.As(err, &rejected):
		p := newProblem(codeKafkaRejected, err.Error())
		p.KafkaError = &kafkaReason{Code: rejected.Code, Message: rejected.Message}
		return p
	case errors.Is(err, kafka.ErrUnavailable), errors.Is(err, kgo.ErrRecordTimeout):
		return newProblem(codeKafkaUnavailable, "Kafka is unavailable: "+err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return newProblem(codeKafkaUnavailable, "Kafka did not answer in time: "+err.Error())
	case errors.Is(err, context.Canceled):
		return newProblem(codeKafkaUnavailable, "The request was cancelled before Kafka answered.")
	}
	return internalProblem()
}

// summary is a one-line version of p for a per-record error: its detail, else its title.
func (p problem) summary() string {
	if p.Detail != "" {
		return strings.TrimSuffix(p.Detail, ".")
	}
	return p.Title
}

// fieldErrors is p's field errors, or nil when there are none.
func (p problem) fieldErrors() []notification.FieldError {
	if len(p.Errors) == 0 {
		return nil
	}
	return p.Errors
}
