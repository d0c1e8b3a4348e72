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
	"sync"
	"time"
	"unicode/utf8"

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

// NewValidator returns a Validator with the "rfc3339", "userids" and "collapsekey" rules
// registered.
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
	// userids checks every entry of a user ID list in one loop: validator's dive over 10,000
	// entries costs more than decoding them.
	_ = v.RegisterValidation("userids", func(fl validator.FieldLevel) bool {
		ids, ok := fl.Field().Interface().([]string)
		_, _, bad := badUserID(ids)
		return ok && bad < 0
	})
	// collapsekey is CheckCollapseKey: 1 to 256 bytes (max= would count characters).
	_ = v.RegisterValidation("collapsekey", func(fl validator.FieldLevel) bool {
		return CheckCollapseKey(fl.Field().String()) == nil
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
	case "collapsekey":
		f.Message = CheckCollapseKey("").Error()
	case "userids":
		ids, _ := fe.Value().([]string)
		code, msg, i := badUserID(ids)
		f.Field, f.Code, f.Message = path+"["+strconv.Itoa(i)+"]", code, msg
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
	// Most documents are well-formed: one pass straight into dst, then the rules, whose errors
	// list every failing field already (a poison record that breaks only rules costs a fifth of
	// the field-by-field path). Only a document that one pass cannot read (a type mismatch, an
	// unknown or repeated member) is decoded again, field by field, to list every failing field.
	if fe := utf8Error(data); fe != nil {
		return &ValidationError{Fields: []FieldError{*fe}}
	}
	fast := json.NewDecoder(bytes.NewReader(data))
	if strict {
		fast.DisallowUnknownFields()
	}
	if fast.Decode(dst) == nil {
		if _, err := fast.Token(); err == io.EOF && bytes.TrimSpace(data)[0] == '{' &&
			exactNames(data, fieldNames(reflect.TypeOf(dst).Elem())) {
			if rules := v.Struct(dst); rules != nil {
				return &ValidationError{Fields: rules}
			}
			return nil
		}
	}
	reflect.ValueOf(dst).Elem().SetZero()
	return v.decodeFields(data, dst, strict)
}

// utf8Error returns the error for a document that is not UTF-8, nil for one that is. RFC 8259,
// section 8.1: JSON exchanged between systems is UTF-8. encoding/json would pass the bytes
// through, and a WebSocket text frame carrying them is a protocol error (RFC 6455, section 8.1)
// that drops the client's connection, at every resume again.
func utf8Error(data []byte) *FieldError {
	if utf8.Valid(data) {
		return nil
	}
	return &FieldError{Code: "syntax", Message: "not valid UTF-8 at byte " + strconv.Itoa(invalidUTF8At(data)) + " (JSON text is UTF-8: RFC 8259, section 8.1)"}
}

// invalidUTF8At returns the offset of the first byte of data that is not valid UTF-8, or
// len(data).
func invalidUTF8At(data []byte) int {
	at := 0
	for at < len(data) {
		r, n := utf8.DecodeRune(data[at:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		at += n
	}
	return at
}

// fieldNamesCache maps a struct type to its JSON member names.
var fieldNamesCache sync.Map // reflect.Type -> []string

func fieldNames(t reflect.Type) []string {
	if names, ok := fieldNamesCache.Load(t); ok {
		return names.([]string)
	}
	var names []string
	for i := range t.NumField() {
		if name := jsonName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	fieldNamesCache.Store(t, names)
	return names
}

// exactNames reports whether every member of the JSON object data (valid JSON) that names one of
// fields names it exactly, once. encoding/json would also take "USERIDS" or "uſerIds" for
// "userIds", and the last of repeated members: the recipients this service reads would then
// differ from those another consumer of the topic reads (RFC 8259, section 4: names SHOULD be
// unique). DecodeJSON refuses such documents.
func exactNames(data []byte, fields []string) bool {
	var seen uint64 // bit i: fields[i] seen
	ok := true
	topLevelNames(data, func(raw []byte) bool {
		name := raw
		if bytes.IndexByte(raw, '\\') >= 0 { // escaped: decode it as JSON does
			var s string
			if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) == nil {
				name = []byte(s)
			}
		}
		for i, f := range fields {
			switch {
			case string(name) == f:
				if seen&(1<<i) != 0 {
					ok = false
				}
				seen |= 1 << i
			case bytes.EqualFold(name, []byte(f)):
				ok = false
			}
		}
		return ok
	})
	return ok
}

// topLevelNames calls f with the raw (still escaped) name of each member of the JSON object data,
// which must be valid JSON, until f returns false.
func topLevelNames(data []byte, f func(raw []byte) bool) {
	depth, wantName := 0, false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			depth++
			wantName = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			wantName = depth == 1
		case '"':
			j := i + 1
			for ; j < len(data) && data[j] != '"'; j++ {
				if data[j] == '\\' {
					j++
				}
			}
			if wantName {
				if !f(data[i+1 : j]) {
					return
				}
				wantName = false
			}
			i = j
		}
	}
}

// decodeFields is DecodeJSON's thorough path: it decodes the document into its members, then
// each member into its field, and validates, collecting every failure. A member must name its
// field exactly and once (see exactNames); other members are unknown fields.
func (v *Validator) decodeFields(data []byte, dst any, strict bool) error {
	if fe := utf8Error(data); fe != nil {
		return &ValidationError{Fields: []FieldError{*fe}}
	}
	members, fe := objectMembers(data)
	if fe != nil {
		return &ValidationError{Fields: []FieldError{*fe}}
	}
	rv := reflect.ValueOf(dst).Elem()
	rt := rv.Type()
	field := map[string]int{} // JSON name -> field index
	for i := range rt.NumField() {
		if name := jsonName(rt.Field(i)); name != "" {
			field[name] = i
		}
	}
	// Each member sets the field of its exact name. A repeated member, or one whose name differs
	// from a field's only in case (encoding/json would take it for that field), is an error.
	raw := map[int]json.RawMessage{}
	var unknown []string
	var nameErrs []FieldError
	for _, m := range members {
		i, ok := field[m.name]
		if !ok {
			for name := range field {
				if strings.EqualFold(name, m.name) {
					nameErrs = append(nameErrs, FieldError{Field: m.name, Code: "name",
						Message: "differs from the field " + strconv.Quote(name) + " only in case: use the exact name"})
					ok = true
					break
				}
			}
			if !ok {
				unknown = append(unknown, m.name)
			}
			continue
		}
		if _, dup := raw[i]; dup {
			nameErrs = append(nameErrs, FieldError{Field: m.name, Code: "duplicate",
				Message: "appears more than once (RFC 8259, section 4: member names should be unique)"})
			continue
		}
		raw[i] = m.value
	}
	typeErrs := map[int]FieldError{}
	for i, r := range raw {
		// As the one-pass path does: with strict, unknown fields are errors inside nested
		// objects too (a header with an "extra" member).
		dec := json.NewDecoder(bytes.NewReader(r))
		if strict {
			dec.DisallowUnknownFields()
		}
		if err := dec.Decode(rv.Field(i).Addr().Interface()); err != nil {
			name := jsonName(rt.Field(i))
			if strict && json.Unmarshal(r, reflect.New(rt.Field(i).Type).Interface()) == nil {
				typeErrs[i] = FieldError{Field: name, Code: "unknown_field", Message: "has an unknown field: " + strings.TrimPrefix(err.Error(), "json: ")}
			} else {
				typeErrs[i] = typeError(name, rt.Field(i).Type, r)
			}
			rv.Field(i).SetZero()
		}
	}
	rules := v.Struct(dst)

	// Every failing field, in the struct's field order, then unknown fields by name.
	var out []FieldError
	for i := range rt.NumField() {
		name := jsonName(rt.Field(i))
		if fe, bad := typeErrs[i]; bad {
			out = append(out, fe) // its zero value's rule failures would only repeat it
			continue
		}
		for _, fe := range rules {
			if fe.Field == name || strings.HasPrefix(fe.Field, name+"[") || strings.HasPrefix(fe.Field, name+".") {
				out = append(out, fe)
			}
		}
	}
	out = append(out, nameErrs...)
	if strict {
		slices.Sort(unknown)
		for _, k := range slices.Compact(unknown) {
			out = append(out, FieldError{Field: k, Code: "unknown_field", Message: "is not a known field"})
		}
	}
	if len(out) > 0 {
		return &ValidationError{Fields: out}
	}
	return nil
}

type member struct {
	name  string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object data in document order, or the
// FieldError saying why data is not one JSON object.
func objectMembers(data []byte) ([]member, *FieldError) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		fe := jsonError(err)
		return nil, &fe
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		fe := FieldError{Code: "type", Message: "must be an object, not " + jsonKind(bytes.TrimSpace(data))}
		var x any
		if err := json.Unmarshal(data, &x); err != nil { // malformed before it is mistyped
			fe = jsonError(err)
		}
		return nil, &fe
	}
	var members []member
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			fe := jsonError(err)
			return nil, &fe
		}
		var m member
		m.name, _ = k.(string)
		if err := dec.Decode(&m.value); err != nil {
			fe := jsonError(err)
			return nil, &fe
		}
		members = append(members, m)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		fe := jsonError(err)
		return nil, &fe
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &FieldError{Code: "syntax", Message: "must be a single JSON value with nothing after it"}
	}
	return members, nil
}

// typeError says which part of raw does not fit type t: the value itself or, for an array, an
// object or a map, the first entry or member that does not fit, down to the innermost one.
func typeError(name string, t reflect.Type, raw json.RawMessage) FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fits := func(raw json.RawMessage, t reflect.Type) bool {
		return json.Unmarshal(raw, reflect.New(t).Interface()) == nil
	}
	kind := jsonKind(raw)
	switch {
	case t == rawMessageType:
	case t.Kind() == reflect.Slice && kind == "array":
		var entries []json.RawMessage
		if json.Unmarshal(raw, &entries) == nil {
			for i, e := range entries {
				if !fits(e, t.Elem()) {
					return typeError(name+"["+strconv.Itoa(i)+"]", t.Elem(), e)
				}
			}
		}
	case (t.Kind() == reflect.Map || t.Kind() == reflect.Struct) && kind == "object":
		members, fe := objectMembers(raw)
		if fe != nil {
			break
		}
		var fields []reflect.StructField
		if t.Kind() == reflect.Struct {
			fields = reflect.VisibleFields(t)
		}
		for _, m := range members {
			var ft reflect.Type
			path := name + "[" + strconv.Quote(m.name) + "]" // a map's values: configs["retention.ms"]
			if t.Kind() == reflect.Map {
				ft = t.Elem()
			} else {
				i := slices.IndexFunc(fields, func(f reflect.StructField) bool { return jsonName(f) == m.name })
				if i < 0 { // encoding/json falls back to a case-insensitive match
					i = slices.IndexFunc(fields, func(f reflect.StructField) bool { return strings.EqualFold(jsonName(f), m.name) })
				}
				if i < 0 {
					continue
				}
				ft, path = fields[i].Type, name+"."+m.name
			}
			if !fits(m.value, ft) {
				return typeError(path, ft, m.value)
			}
		}
	case kind == "number":
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			bits := t.Bits()
			return FieldError{Field: name, Code: "type", Message: fmt.Sprintf("must be an integer from %d to %d, not %s",
				-(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1, bytes.TrimSpace(raw))}
		case reflect.Float32, reflect.Float64:
			return FieldError{Field: name, Code: "type", Message: "must be a number a 64-bit float can hold, not " + string(bytes.TrimSpace(raw))}
		}
	}
	return FieldError{Field: name, Code: "type", Message: "must be " + jsonType(t) + ", not " + kind}
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

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
	if t == rawMessageType {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonType(t.Elem()), "a "), "an ") + "s"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float64, reflect.Float32:
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

// MaxUserIDLen is the longest user ID a record may name, in bytes; client tokens with a longer
// sub are refused too.
const MaxUserIDLen = 256

// badUserID finds the first user ID that is empty or longer than MaxUserIDLen and says why
// (validator code and message); index is -1 when every ID is fine.
func badUserID(ids []string) (code, message string, index int) {
	for i, id := range ids {
		switch {
		case id == "":
			return "required", "is required", i
		case len(id) > MaxUserIDLen:
			return "max", "must be at most " + strconv.Itoa(MaxUserIDLen) + " characters", i
		}
	}
	return "", "", -1
}
