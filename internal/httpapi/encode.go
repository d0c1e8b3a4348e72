package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// Content types of the API.
const (
	contentTypeJSON    = "application/json"
	contentTypeProblem = "application/problem+json" // RFC 9457 §3
)

// encode writes v as the JSON response body with status. If v cannot be encoded (a programming
// error) it answers 500 instead.
func encode[T any](w http.ResponseWriter, r *http.Request, status int, v T) {
	if err := write(w, status, contentTypeJSON, v); err != nil {
		writeProblem(w, r, internalProblem())
	}
}

// write sets the content type and status and writes v as JSON. It returns an error, having written
// nothing, only if v cannot be encoded; errors writing to the client are not reported, as nothing
// can be done about them.
func write(w http.ResponseWriter, status int, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// Errors of readBody that are not *http.MaxBytesError.
var (
	// errUnsupportedMediaType: the Content-Type is missing, not application/json, or names a
	// charset other than utf-8.
	errUnsupportedMediaType = errors.New("content type must be application/json")
	// errReadBody: the body could not be read (the client went away or sent a broken body).
	errReadBody = errors.New("request body could not be read")
)

// readBody returns the request body after checking that it is JSON (a charset parameter, if
// any, must be utf-8) and at most maxBytes long, read within timeout (KAFKA_REQUEST_TIMEOUT,
// which bounds an HTTP produce as a whole). The error is
// errUnsupportedMediaType, *http.MaxBytesError (the body is too large) or wraps errReadBody.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64, timeout time.Duration) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs, ok := params["charset"]; err != nil || mt != contentTypeJSON || ok && !strings.EqualFold(cs, "utf-8") {
		return nil, errUnsupportedMediaType // JSON is UTF-8 (RFC 8259, section 8.1)
	}
	// The server has no read timeout (client streams live for hours); a body trickling in
	// would hold the handler forever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	// The rest of a body that is too large is not read: the connection is closed after the answer.
	if r.ContentLength > maxBytes {
		w.Header().Set("Connection", "close")
		return nil, &http.MaxBytesError{Limit: maxBytes}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.Header().Set("Connection", "close")
			return nil, tooLarge
		}
		return nil, fmt.Errorf("%w: %w", errReadBody, err)
	}
	return data, nil
}

// decodeValid reads the body of r (see readBody), decodes it strictly (unknown fields are errors)
// into a T and validates T's `validate` tags with v. It returns the value and the body as read.
// The error is one of readBody's or a *notification.ValidationError listing every failing field.
func decodeValid[T any](w http.ResponseWriter, r *http.Request, s settings, v *notification.Validator) (T, []byte, error) {
	var t T
	data, err := readBody(w, r, s.maxBodyBytes, s.requestTimeout)
	if err != nil {
		return t, nil, err
	}
	if err := v.DecodeJSON(data, &t, true); err != nil {
		return t, data, err
	}
	return t, data, nil
}
