package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Presence answers presence lookups from the cluster-wide view; *presence.View implements it.
type Presence interface {
	// AppendUser appends user's presence as a JSON object (docs/presence-and-receipts.md,
	// "Presence API") to b.
	AppendUser(b []byte, user string) []byte
}

// Receipts records read receipts; *realtime.Hub implements it.
type Receipts interface {
	// Read records that user read the events ids on transport; it fails with
	// realtime.ErrBadEventID, recording none, when an ID is malformed.
	Read(user, transport string, ids ...string) error
}

// answerBufs keeps the buffers presence answers are built in: a 1,000-user answer is about
// 150 KB, which would otherwise be allocated and grown at every query.
var answerBufs = sync.Pool{New: func() any { return new([]byte) }}

// writeRawJSON writes b, a JSON document, with status 200.
func writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// validUserID returns the field error of a user ID that is empty or longer than
// notification.MaxUserIDLen, or nil.
func validUserID(field, id string) *notification.FieldError {
	switch {
	case id == "":
		return &notification.FieldError{Field: field, Code: "required", Message: "is required"}
	case len(id) > notification.MaxUserIDLen:
		return &notification.FieldError{Field: field, Code: "max", Message: "must be at most " + strconv.Itoa(notification.MaxUserIDLen) + " bytes"}
	}
	return nil
}

// handleUserPresence serves GET /v1/users/{id}/presence: the user's presence across the cluster,
// from this node's view (no Kafka request).
//
//	200 {"userId","online","connections","transports":{"websocket","sse","socketio"},"nodes":[...],"since"}
//	400 validation-error (an ID longer than 256 bytes)
func handleUserPresence(p Presence) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if fe := validUserID("id", id); fe != nil {
			writeProblem(w, r, validationProblem([]notification.FieldError{*fe}))
			return
		}
		bp := answerBufs.Get().(*[]byte)
		b := append(p.AppendUser((*bp)[:0], id), '\n')
		writeRawJSON(w, b)
		*bp = b
		answerBufs.Put(bp)
	})
}

// presenceQuery is the body of POST /v1/presence/query.
type presenceQuery struct {
	UserIDs []string `json:"userIds"`
}

// handlePresenceQuery serves POST /v1/presence/query {"userIds":[...]}: the presence of each
// user, in the order asked, from this node's view (no Kafka request).
//
//	200 {"users":[<the object of GET /v1/users/{id}/presence>, ...]}
//	400 validation-error (userIds missing, more than REALTIME_PRESENCE_QUERY_MAX_USERS, an ID
//	    empty or longer than 256 bytes) | invalid-json    413    415
func handlePresenceQuery(log *slog.Logger, p Presence, s settings, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := readBody(w, r, s.maxBodyBytes, s.requestTimeout)
		if err != nil {
			writeError(w, r, log, err, "")
			return
		}
		var q presenceQuery
		if fields := decodeStrict(data, &q); fields != nil {
			writeProblem(w, r, validationProblem(fields))
			return
		}
		var fields []notification.FieldError
		switch {
		case q.UserIDs == nil:
			fields = append(fields, notification.FieldError{Field: "userIds", Code: "required", Message: "is required"})
		case len(q.UserIDs) > s.presenceMaxUsers:
			m.presenceRefused.Inc()
			fields = append(fields, notification.FieldError{Field: "userIds", Code: "max",
				Message: "must hold at most " + strconv.Itoa(s.presenceMaxUsers) + " user IDs (REALTIME_PRESENCE_QUERY_MAX_USERS)"})
		}
		for i, id := range q.UserIDs {
			if fe := validUserID("userIds["+strconv.Itoa(i)+"]", id); fe != nil && len(fields) < 10 {
				fields = append(fields, *fe)
			}
		}
		if fields != nil {
			writeProblem(w, r, validationProblem(fields))
			return
		}
		bp := answerBufs.Get().(*[]byte)
		b := append((*bp)[:0], `{"users":[`...)
		for i, id := range q.UserIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = p.AppendUser(b, id)
		}
		b = append(b, "]}\n"...)
		writeRawJSON(w, b)
		*bp = b
		answerBufs.Put(bp)
	})
}

// decodeStrict decodes data, one JSON object, into dst with unknown members refused; it returns
// the field errors (one "syntax" entry for malformed JSON), nil on success.
func decodeStrict(data []byte, dst any) []notification.FieldError {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return []notification.FieldError{{Field: te.Field, Code: "type", Message: "must be " + te.Type.String()}}
	}
	return []notification.FieldError{{Code: fieldCodeSyntax, Message: "is not a JSON object of the expected members: " + err.Error()}}
}

// readRequest is the body of POST /v1/events/read.
type readRequest struct {
	IDs []string `json:"ids"`
}

// handleRead serves POST /v1/events/read {"ids":["<event id>",...]} for clients of the
// authenticated user (the client token, as on /v1/events): a read receipt per ID
// (docs/presence-and-receipts.md, "Receipts"), the way SSE clients, which cannot send
// frames on their stream, acknowledge what they read.
//
//	204 recorded (nothing is produced when REALTIME_RECEIPTS_TOPIC is unset)
//	400 validation-error (ids missing, more than REALTIME_READ_MAX_IDS, an ID that is not
//	    <topic>:<partition>:<offset>) | invalid-json    401    403    413    415
func handleRead(log *slog.Logger, rc Receipts, s settings, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := auth.FromContext(r.Context())
		if !ok {
			writeProblem(w, r, internalProblem())
			return
		}
		data, err := readBody(w, r, s.maxBodyBytes, s.requestTimeout)
		if err != nil {
			writeError(w, r, log, err, "")
			return
		}
		var q readRequest
		if fields := decodeStrict(data, &q); fields != nil {
			writeProblem(w, r, validationProblem(fields))
			return
		}
		switch {
		case len(q.IDs) == 0:
			writeProblem(w, r, validationProblem([]notification.FieldError{{Field: "ids", Code: "required", Message: "must hold at least one event ID"}}))
			return
		case len(q.IDs) > s.readMaxIDs:
			m.readRefused.Inc()
			writeProblem(w, r, validationProblem([]notification.FieldError{{Field: "ids", Code: "max",
				Message: "must hold at most " + strconv.Itoa(s.readMaxIDs) + " event IDs (REALTIME_READ_MAX_IDS)"}}))
			return
		}
		if err := rc.Read(claims.UserID, "http", q.IDs...); err != nil {
			writeProblem(w, r, validationProblem([]notification.FieldError{{Field: "ids", Code: "event-id",
				Message: "must hold event IDs of the form <topic>:<partition>:<offset>, as the \"id\" of the frames"}}))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
