package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
)

// FieldError is one failing field. It is what a problem+json body lists under "errors" and what
// a dead-letter record's reason header summarises.
type FieldError struct {
	// Field is the JSON path of the field, e.g. "userIds[2]" or "masteryLevel"; empty for the
	// document as a whole.
	Field string `json:"field"`
	// Code is machine-readable: required, min, max, gte, lte, rfc3339, type, syntax,
	// unknown_field, too_large.
	Code string `json:"code"`
	// Message says what is wrong in words.
	Message string `json:"message"`
}

// ValidationError lists every failing field of one document.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		if f.Field == "" {
			parts[i] = f.Message
		} else {
			parts[i] = f.Field + ": " + f.Message
		}
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Validator validates the event types with go-playground/validator, naming fields by their JSON
// names. It is safe for concurrent use; make one and share it.
type Validator struct {
	v *validator.Validate
}

// NewValidator returns a Validator with the "rfc3339" rule registered.
func NewValidator() *Validator {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	_ = v.RegisterValidation("rfc3339", func(fl validator.FieldLevel) bool {
		_, err := time.Parse(time.RFC3339, fl.Field().String())
		return err == nil
	})
	return &Validator{v: v}
}

// Struct validates x (a pointer to an event type) and returns its failing fields, or nil.
func (v *Validator) Struct(x any) []FieldError {
	err := v.v.Struct(x)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return []FieldError{{Code: "invalid", Message: err.Error()}}
	}
	out := make([]FieldError, 0, len(verrs))
	for _, fe := range verrs {
		out = append(out, fieldError(fe))
	}
	return out
}

// fieldError turns a validator error into a FieldError with the JSON path of the field.
func fieldError(fe validator.FieldError) FieldError {
	path := fe.Namespace()
	if _, rest, ok := strings.Cut(path, "."); ok { // drop the struct name
		path = rest
	}
	f := FieldError{Field: path, Code: fe.Tag()}
	switch fe.Tag() {
	case "required":
		f.Message = "is required"
	case "min":
		if fe.Kind() == reflect.Slice {
			f.Message = "must have at least " + fe.Param() + " entries"
		} else {
			f.Message = "must be at least " + fe.Param() + " characters"
		}
	case "max":
		if fe.Kind() == reflect.Slice {
			f.Message = "must have at most " + fe.Param() + " entries"
		} else {
			f.Message = "must be at most " + fe.Param() + " characters"
		}
	case "gte":
		f.Message = "must be at least " + fe.Param()
	case "lte":
		f.Message = "must be at most " + fe.Param()
	case "rfc3339":
		f.Message = "must be an RFC 3339 date-time, e.g. 2026-11-29T10:00:00Z"
	default:
		f.Message = "fails rule " + fe.Tag()
	}
	return f
}

// DecodeJSON decodes data, which must be one JSON object, into dst (a pointer to an event type or
// another validated struct) and validates it. With strict set, unknown fields are errors (the HTTP
// API); without it they are kept in the record but ignored here (records from other producers).
// The error, if any, is a *ValidationError.
func (v *Validator) DecodeJSON(data []byte, dst any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		return &ValidationError{Fields: []FieldError{jsonError(err, reflect.TypeOf(dst))}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &ValidationError{Fields: []FieldError{{Code: "syntax", Message: "must be a single JSON value with nothing after it"}}}
	}
	if fields := v.Struct(dst); fields != nil {
		return &ValidationError{Fields: fields}
	}
	return nil
}

// jsonError describes an encoding/json error as a FieldError; dst is the type decoded into.
func jsonError(err error, dst reflect.Type) FieldError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return FieldError{Code: "syntax", Message: "malformed JSON at byte " + strconv.FormatInt(syn.Offset, 10) + ": " + syn.Error()}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Code: "syntax", Message: "malformed JSON: the document is empty or cut short"}
	case errors.As(err, &typ):
		want := typ.Type
		if f, ok := jsonField(dst, typ.Field); ok && f.Kind() == reflect.Slice && f.Elem() == typ.Type {
			want = f // an entry of an array has the wrong type
		}
		return FieldError{Field: jsonPath(typ.Field), Code: "type", Message: "must be " + jsonType(want) + ", not " + typ.Value}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return FieldError{Field: name, Code: "unknown_field", Message: "is not a known field"}
	default:
		return FieldError{Code: "syntax", Message: err.Error()}
	}
}

// jsonField finds the type of the top-level field with JSON name name in struct type t.
func jsonField(t reflect.Type, name string) (reflect.Type, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); n == name {
			return f.Type, true
		}
	}
	return nil, false
}

// jsonPath turns encoding/json's dotted path ("userIds.2") into "userIds[2]".
func jsonPath(dotted string) string {
	var b strings.Builder
	for i, part := range strings.Split(dotted, ".") {
		if _, err := strconv.Atoi(part); err == nil && i > 0 {
			b.WriteString("[" + part + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
	}
	return b.String()
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonType(t.Elem()), "a "), "an ") + "s"
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64, reflect.Int32:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return fmt.Sprint("of type ", t)
	}
}
