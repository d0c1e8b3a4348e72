package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
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
			f.Message = "must have at least " + fe.Param() + " " + plural(fe.Param(), "entry", "entries")
		} else {
			f.Message = "must be at least " + fe.Param() + " " + plural(fe.Param(), "character", "characters")
		}
	case "max":
		if fe.Kind() == reflect.Slice {
			f.Message = "must have at most " + fe.Param() + " " + plural(fe.Param(), "entry", "entries")
		} else {
			f.Message = "must be at most " + fe.Param() + " " + plural(fe.Param(), "character", "characters")
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
// another validated struct) and validates it, listing every failing field: wrong JSON types,
// unknown fields (with strict set: the HTTP API) and rule failures together. Without strict,
// unknown fields are ignored here (records from other producers keep them). The error, if any,
// is a *ValidationError; for malformed JSON it holds one "syntax" entry.
func (v *Validator) DecodeJSON(data []byte, dst any, strict bool) error {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&obj); err != nil {
		return &ValidationError{Fields: []FieldError{jsonError(err)}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &ValidationError{Fields: []FieldError{{Code: "syntax", Message: "must be a single JSON value with nothing after it"}}}
	}
	if obj == nil {
		return &ValidationError{Fields: []FieldError{{Code: "type", Message: "must be an object, not null"}}}
	}

	rv := reflect.ValueOf(dst).Elem()
	rt := rv.Type()
	typeErrs := map[string]FieldError{}
	known := map[string]bool{}
	for i := range rt.NumField() {
		name := jsonName(rt.Field(i))
		if name == "" {
			continue
		}
		known[name] = true
		raw, ok := obj[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, rv.Field(i).Addr().Interface()); err != nil {
			typeErrs[name] = typeError(name, rt.Field(i).Type, raw)
			rv.Field(i).SetZero()
		}
	}
	rules := v.Struct(dst)

	// Every failing field, in the struct's field order, then unknown fields by name.
	var out []FieldError
	for i := range rt.NumField() {
		name := jsonName(rt.Field(i))
		if fe, bad := typeErrs[name]; bad {
			out = append(out, fe) // its zero value's rule failures would only repeat it
			continue
		}
		for _, fe := range rules {
			if fe.Field == name || strings.HasPrefix(fe.Field, name+"[") || strings.HasPrefix(fe.Field, name+".") {
				out = append(out, fe)
			}
		}
	}
	if strict {
		var unknown []string
		for k := range obj {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		slices.Sort(unknown)
		for _, k := range unknown {
			out = append(out, FieldError{Field: k, Code: "unknown_field", Message: "is not a known field"})
		}
	}
	if len(out) > 0 {
		return &ValidationError{Fields: out}
	}
	return nil
}

// typeError says which part of raw does not fit type t: the value itself, or for an array the
// first entry that does not fit t's element type.
func typeError(name string, t reflect.Type, raw json.RawMessage) FieldError {
	var entries []json.RawMessage
	if t.Kind() == reflect.Slice && json.Unmarshal(raw, &entries) == nil {
		for i, e := range entries {
			if json.Unmarshal(e, reflect.New(t.Elem()).Interface()) != nil {
				return FieldError{Field: name + "[" + strconv.Itoa(i) + "]", Code: "type",
					Message: "must be " + jsonType(t.Elem()) + ", not " + jsonKind(e)}
			}
		}
	}
	return FieldError{Field: name, Code: "type", Message: "must be " + jsonType(t) + ", not " + jsonKind(raw)}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

// jsonKind names the JSON type of a raw value, for "must be X, not Y" messages.
func jsonKind(raw json.RawMessage) string {
	switch t := bytes.TrimSpace(raw); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '"':
		return "string"
	case t[0] == '{':
		return "object"
	case t[0] == '[':
		return "array"
	case t[0] == 't' || t[0] == 'f':
		return "boolean"
	case t[0] == 'n':
		return "null"
	default:
		return "number"
	}
}

// jsonError describes an encoding/json error as a FieldError.
func jsonError(err error) FieldError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return FieldError{Code: "syntax", Message: "malformed JSON at byte " + strconv.FormatInt(syn.Offset, 10) + ": " + syn.Error()}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Code: "syntax", Message: "malformed JSON: the document is empty or cut short"}
	case errors.As(err, &typ):
		return FieldError{Field: jsonPath(typ.Field), Code: "type", Message: "must be " + jsonType(typ.Type) + ", not " + typ.Value}
	default:
		return FieldError{Code: "syntax", Message: err.Error()}
	}
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

func plural(n, one, many string) string {
	if n == "1" {
		return one
	}
	return many
}
