package notification

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Value formats of a topic (Shape.Value).
const (
	// ValueJSON: the value is a JSON object (RFC 8259, UTF-8), delivered as it is (compacted).
	ValueJSON = "json"
	// ValueRawString: the value is UTF-8 text, delivered as a JSON string.
	ValueRawString = "raw-string"
	// ValueRawBase64: the value is any bytes, delivered as a JSON string in base64 (RFC 4648,
	// section 4, with padding).
	ValueRawBase64 = "raw-base64"
)

// Recipient sources of a topic (Shape.Recipients) besides a JSON Pointer.
const (
	// RecipientsDefault is where a JSON record names its users unless its topic says otherwise.
	RecipientsDefault = "/userIds"
	// RecipientsKey: the record key is the one user ID.
	RecipientsKey = "key"
	// RecipientsHeaderPrefix + name: each record header of that name is one user ID.
	RecipientsHeaderPrefix = "header:"
)

// Shape says where the records of a topic name their recipients and how their value is
// delivered. The zero Shape is the original contract: a JSON object naming its users in
// "userIds", which the delivered data leaves out.
//
// Whatever the source, a record names 1 to MaxUserIDs users, each a non-empty UTF-8 string of at
// most MaxUserIDLen bytes; repeats are delivered once. A record that breaks a rule goes to the
// dead-letter topic ("no-recipients" when the source names nobody or holds something else than
// user IDs, "invalid-recipients" when an ID breaks a rule).
type Shape struct {
	// Recipients is where a record names its users:
	//   - a JSON Pointer into the value (RFC 6901, "/" first: "/audience/userIds",
	//     "/recipient/id"), at which there is a user ID or an array of them; "" is "/userIds";
	//   - "key": the record key is one user ID;
	//   - "header:<name>": each header of that name is one user ID (Kafka headers may repeat:
	//     three "user-id" headers name three users).
	Recipients string
	// Keep leaves the recipients in the delivered data (strip=false). By default the member (or
	// array entry) a pointer names is removed from it, as "userIds" always was: the list would
	// tell each user who else got the event. Only a pointer source can keep them.
	Keep bool
	// Value is the value's format: ValueJSON ("" too), ValueRawString or ValueRawBase64. A raw
	// value takes its recipients from the key or a header.
	Value string
}

// Check returns nil if s is consistent: a well-formed source, a known value format, and neither
// a raw value nor Keep with recipients outside the value. The error says what is wrong.
func (s Shape) Check() error {
	_, err := s.compile()
	return err
}

// ReadsUserIDs reports whether s reads the original contract: recipients in a JSON value's
// "userIds" (kept in the data or not), the built-in events' schemas applying. Only such a topic
// can take the records of the typed notification endpoints.
func (s Shape) ReadsUserIDs() bool {
	return (s.Recipients == "" || s.Recipients == RecipientsDefault) && (s.Value == "" || s.Value == ValueJSON)
}

// source is a compiled Shape.
type source struct {
	ptr    Pointer // the recipients' pointer, when key and header are unset
	key    bool
	header string
	keep   bool
	value  string // ValueJSON, ValueRawString or ValueRawBase64
	userID bool   // the zero Shape's path: the event's schema reads "userIds"
}

func (s Shape) compile() (source, error) {
	src := source{keep: s.Keep, value: s.Value, userID: s.ReadsUserIDs()}
	switch src.value {
	case "":
		src.value = ValueJSON
	case ValueJSON, ValueRawString, ValueRawBase64:
	default:
		return src, errors.New("value is json, raw-string or raw-base64, not " + strconv.Quote(s.Value))
	}
	switch r := s.Recipients; {
	case r == "":
		src.ptr, _ = ParsePointer(RecipientsDefault)
	case r == RecipientsKey:
		src.key = true
	case strings.HasPrefix(r, RecipientsHeaderPrefix):
		src.header = r[len(RecipientsHeaderPrefix):]
		if src.header == "" {
			return src, errors.New("recipients=header:<name> needs a header name")
		}
		if src.header == HeaderEventType {
			return src, errors.New("the " + HeaderEventType + " header names the event, not its recipients")
		}
	case strings.HasPrefix(r, "/") || strings.HasPrefix(r, "#"):
		p, err := ParsePointer(r)
		if err != nil {
			return src, err
		}
		if len(p.tokens) == 0 {
			return src, errors.New("recipients=" + r + " is the whole value; point into it, e.g. /recipient/id")
		}
		src.ptr = p
	default:
		return src, errors.New("recipients is a JSON Pointer (/path, RFC 6901), key, or header:<name>, not " + strconv.Quote(r))
	}
	inValue := !src.key && src.header == ""
	if src.value != ValueJSON && inValue {
		return src, errors.New("a " + src.value + " value cannot name its recipients: take them from recipients=key or recipients=header:<name>")
	}
	if src.keep && !inValue {
		return src, errors.New("strip=false applies to recipients in the value (a JSON Pointer) only")
	}
	return src, nil
}

// recipients returns the user IDs rec names by the key or header source, or why there are none.
func (src *source) recipients(rec *kgo.Record) ([]string, *DecodeError) {
	if src.key {
		if len(rec.Key) == 0 {
			return nil, &DecodeError{Code: "no-recipients", Detail: "the record has no key; this topic's records name their user in the key"}
		}
		return checkUserIDs([]string{string(rec.Key)}, "the key")
	}
	var ids []string
	for _, h := range rec.Headers {
		if h.Key == src.header {
			ids = append(ids, string(h.Value))
		}
	}
	if len(ids) == 0 {
		return nil, &DecodeError{Code: "no-recipients", Detail: "the record has no " + strconv.Quote(src.header) + " header; this topic's records name their users in it"}
	}
	return checkUserIDs(ids, "the "+strconv.Quote(src.header)+" header")
}

// checkUserIDs applies the rules of user IDs to ids, found at where ("the key", "/recipient/id").
func checkUserIDs(ids []string, where string) ([]string, *DecodeError) {
	if len(ids) > MaxUserIDs {
		return nil, &DecodeError{Code: "invalid-recipients", Detail: where + " names " + strconv.Itoa(len(ids)) + " users; a record names at most " + strconv.Itoa(MaxUserIDs)}
	}
	for i, id := range ids {
		which := where
		if len(ids) > 1 {
			which = "user ID " + strconv.Itoa(i) + " of " + where
		}
		switch {
		case id == "":
			return nil, &DecodeError{Code: "invalid-recipients", Detail: which + " is empty; a user ID has 1 to " + strconv.Itoa(MaxUserIDLen) + " bytes"}
		case len(id) > MaxUserIDLen:
			return nil, &DecodeError{Code: "invalid-recipients", Detail: which + " has " + strconv.Itoa(len(id)) + " bytes; a user ID has at most " + strconv.Itoa(MaxUserIDLen)}
		case !utf8.ValidString(id):
			return nil, &DecodeError{Code: "invalid-recipients", Detail: which + " is not valid UTF-8"}
		}
	}
	return dedup(ids), nil
}

// mayName reports whether rec may name user by this source: false only when it cannot.
func (src *source) mayName(rec *kgo.Record, user []byte) bool {
	switch {
	case src.key:
		return bytes.Equal(rec.Key, user)
	case src.header != "":
		for _, h := range rec.Headers {
			if h.Key == src.header && bytes.Equal(h.Value, user) {
				return true
			}
		}
		return false
	}
	// A JSON string without escapes holds its characters verbatim, so a value with no backslash
	// at all names user only if user's bytes appear in it; with a backslash anywhere (\u0061lice
	// is alice) only decoding can tell.
	return bytes.IndexByte(rec.Value, '\\') >= 0 || bytes.Contains(rec.Value, user)
}
