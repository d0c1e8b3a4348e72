package notification

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DecodeError says why a record cannot be delivered. Such a record goes to the dead-letter topic
// with Code and the error text in its headers.
type DecodeError struct {
	// Code is machine-readable: "unknown-topic", "invalid-event-type", "invalid-json",
	// "invalid-value", "invalid-expiry", "invalid-collapse-key" (see HeaderExpiresAt),
	// "no-recipients" (the topic's recipient source names nobody: no key, no
	// such header, nothing or no user ID at the pointer), "invalid-recipients" (a user ID breaks a
	// rule, or the pointer is ambiguous).
	Code string
	// Fields lists the failing fields for "invalid-json" and "invalid-value".
	Fields []FieldError
	// Detail is a sentence for the other codes.
	Detail string
}

func (e *DecodeError) Error() string {
	if len(e.Fields) > 0 {
		return e.Code + ": " + (&ValidationError{Fields: e.Fields}).Error()
	}
	return e.Code + ": " + e.Detail
}

// ErrInvalid is DecodeForDelivery's error for a record that Decode refuses, told from the value
// by the fast scan alone: it says neither code nor reason (Decode does, for the dead-letter copy).
var ErrInvalid = errors.New("notification: invalid record (Decode says why)")

// Topic is how to read one consumed topic: the event name its records carry unless their
// event-type header names another, and their Shape.
type Topic struct {
	Event string
	Shape Shape
}

// topic is a Topic ready for decoding.
type topic struct {
	event string
	src   source
}

// Decoder turns records of the consumed topics into Events. It is safe for concurrent use.
type Decoder struct {
	topics map[string]topic
	v      *Validator
	// reflective skips the fast path (fastdecode.go), for tests that compare the two.
	reflective bool
}

// NewDecoder returns a Decoder for the given topic -> event name mapping, every topic with the
// zero Shape (recipients in "userIds").
func NewDecoder(v *Validator, topicEvents map[string]string) *Decoder {
	topics := make(map[string]topic, len(topicEvents))
	for t, event := range topicEvents {
		src, _ := Shape{}.compile() // cannot fail
		topics[t] = topic{event: event, src: src}
	}
	return &Decoder{topics: topics, v: v}
}

// NewTopicDecoder returns a Decoder for the given topics, each with its Shape. The error names
// the first topic whose Shape fails Check.
func NewTopicDecoder(v *Validator, topics map[string]Topic) (*Decoder, error) {
	d := &Decoder{topics: make(map[string]topic, len(topics)), v: v}
	for name, t := range topics {
		src, err := t.Shape.compile()
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", name, err)
		}
		d.topics[name] = topic{event: t.Event, src: src}
	}
	return d, nil
}

// Decode validates rec and returns its Event. The event name is the topic's unless the record has
// an `event-type` header with a value; two or more `event-type` headers are an
// "invalid-event-type" error, whatever their values. The `expires-at` and `ttl-ms` headers set
// the Event's ExpiresAt (the earlier of the two), `collapse-key` its CollapseKey; a malformed or
// repeated one is an "invalid-expiry" or "invalid-collapse-key" error (see HeaderExpiresAt).
//
// With the zero Shape the value must be a JSON object naming 1 to 10,000 non-empty user IDs in
// "userIds"; a known event name (session-starting-soon, concept-mastered) must also match that
// event's schema. The Event's Data is the value, compacted, without "userIds" (see
// withoutRecipients); unknown fields are kept.
//
// With another Shape (see there) the recipients come from the key, a header or another pointer,
// and the built-in events' schemas do not apply: a JSON value must be an object, delivered
// compacted and without the member the pointer names unless Shape.Keep; a raw value is delivered
// as a JSON string. The error, if any, is a *DecodeError.
func (d *Decoder) Decode(rec *kgo.Record) (*Event, error) {
	return d.decode(rec, false)
}

// DecodeForDelivery is Decode for a consumer that only skips the records Decode refuses (the
// delivery consumer: the dead-letter duty decodes them again, with Decode, for the reason; see
// docs/design.md, "Many nodes"). It accepts exactly what Decode accepts and returns the same
// Event; it refuses exactly what Decode refuses, but a zero-Shape record whose value the fast
// scan finds invalid for sure (fastdecode.go) is refused with ErrInvalid, without the reflective
// decode and without wording the error: a burst of poison records costs delivery one scan each.
// Any other error is Decode's *DecodeError.
func (d *Decoder) DecodeForDelivery(rec *kgo.Record) (*Event, error) {
	return d.decode(rec, true)
}

// decode is Decode, or DecodeForDelivery with quick.
func (d *Decoder) decode(rec *kgo.Record, quick bool) (*Event, error) {
	t, ok := d.topics[rec.Topic]
	if !ok {
		return nil, &DecodeError{Code: "unknown-topic", Detail: fmt.Sprintf("topic %q is not mapped to an event", rec.Topic)}
	}
	name := t.event
	n := 0
	for _, h := range rec.Headers {
		if h.Key != HeaderEventType {
			continue
		}
		if n++; len(h.Value) > 0 {
			name = string(h.Value)
		}
	}
	if n > 1 { // which one was meant is anybody's guess: refuse rather than pick one
		return nil, &DecodeError{Code: "invalid-event-type", Detail: fmt.Sprintf("the %s header appears %d times; a record may carry it at most once", HeaderEventType, n)}
	}
	if err := CheckEventName(name); err != nil {
		return nil, &DecodeError{Code: "invalid-event-type", Detail: "the event-type header: " + err.Error()}
	}
	expires, collapse, derr := deliveryOf(rec)
	if derr != nil {
		return nil, derr
	}
	if !t.src.userID {
		ev, err := d.decodeShaped(rec, name, &t.src)
		if err == nil {
			ev.ExpiresAt, ev.CollapseKey = expires, collapse
		}
		return ev, err
	}
	if ev, verdict := fastDecodeEvent(rec, name, t.src.keep); !d.reflective {
		switch {
		case ev != nil:
			ev.ExpiresAt, ev.CollapseKey = expires, collapse
			return ev, nil
		case quick && verdict == fastInvalid:
			return nil, ErrInvalid
		}
	}
	var users []string
	var err error
	switch name {
	case EventSessionStartingSoon:
		var v SessionStartingSoon
		err = d.v.DecodeJSON(rec.Value, &v, false)
		users = v.UserIDs
	case EventConceptMastered:
		var v ConceptMastered
		err = d.v.DecodeJSON(rec.Value, &v, false)
		users = v.UserIDs
	default:
		var v addressed
		err = d.v.DecodeJSON(rec.Value, &v, false)
		users = v.UserIDs
	}
	if err != nil {
		code := "invalid-value"
		fields := err.(*ValidationError).Fields
		if len(fields) == 1 && fields[0].Code == "syntax" {
			code = "invalid-json"
		}
		return nil, &DecodeError{Code: code, Fields: fields}
	}
	var data bytes.Buffer
	data.Grow(len(rec.Value))
	if err := json.Compact(&data, rec.Value); err != nil { // cannot fail: DecodeJSON parsed it
		return nil, &DecodeError{Code: "invalid-json", Detail: err.Error()}
	}
	out := data.Bytes()
	if !t.src.keep {
		out = withoutRecipients(out)
	}
	return &Event{
		Name:        name,
		Topic:       rec.Topic,
		Partition:   rec.Partition,
		Offset:      rec.Offset,
		Time:        rec.Timestamp,
		UserIDs:     dedup(users),
		Data:        out,
		ExpiresAt:   expires,
		CollapseKey: collapse,
	}, nil
}

// oneUserEvent is an Event with room for one recipient: the common record costs one allocation
// for both.
type oneUserEvent struct {
	Event
	one [1]string
}

// fastDecodeEvent is Decode's fast path for a zero-Shape record (see fastDecode): the Event and
// fastValid, or nil and whether the value is invalid for sure (fastInvalid) or the reflective
// path must decide (fastUnsure).
func fastDecodeEvent(rec *kgo.Record, name string, keep bool) (*Event, fastVerdict) {
	one, users, data, verdict := fastDecode(rec.Value, fastSchema(name), keep)
	if verdict != fastValid {
		return nil, verdict
	}
	box := new(oneUserEvent)
	if users == nil {
		box.one[0] = one
		users = box.one[:]
	}
	box.Event = Event{
		Name:      name,
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Time:      rec.Timestamp,
		UserIDs:   users,
		Data:      data,
	}
	return &box.Event, fastValid
}

// decodeShaped is Decode for a topic whose Shape is not the zero one.
func (d *Decoder) decodeShaped(rec *kgo.Record, name string, src *source) (*Event, error) {
	var data []byte
	switch src.value {
	case ValueRawString:
		if !utf8.Valid(rec.Value) { // a WebSocket text frame must be UTF-8 (RFC 6455, section 8.1)
			return nil, &DecodeError{Code: "invalid-value", Detail: "a raw-string value is UTF-8 text; this one is not, at byte " +
				strconv.Itoa(invalidUTF8At(rec.Value)) + " (value=raw-base64 delivers any bytes)"}
		}
		data, _ = json.Marshal(string(rec.Value)) // cannot fail
	case ValueRawBase64:
		data = make([]byte, base64.StdEncoding.EncodedLen(len(rec.Value))+2)
		data[0], data[len(data)-1] = '"', '"'
		base64.StdEncoding.Encode(data[1:], rec.Value)
	default:
		if fe := utf8Error(rec.Value); fe != nil {
			return nil, &DecodeError{Code: "invalid-json", Fields: []FieldError{*fe}}
		}
		var buf bytes.Buffer
		buf.Grow(len(rec.Value))
		if err := json.Compact(&buf, rec.Value); err != nil {
			return nil, &DecodeError{Code: "invalid-json", Fields: []FieldError{jsonError(err)}}
		}
		data = buf.Bytes()
		if len(data) == 0 || data[0] != '{' {
			return nil, &DecodeError{Code: "invalid-value", Fields: []FieldError{{Code: "type", Message: "must be an object, not " + jsonKind(data)}}}
		}
	}
	var users []string
	var derr *DecodeError
	if src.key || src.header != "" {
		users, derr = src.recipients(rec)
	} else {
		at, perr := find(data, src.ptr)
		if perr == nil {
			users, perr = recipientsAt(data[at.valStart:at.valEnd], src.ptr.String())
		}
		if perr != nil {
			return nil, &DecodeError{Code: perr.code, Detail: perr.detail}
		}
		users, derr = checkUserIDs(users, src.ptr.String())
		if derr == nil && !src.keep {
			data = without(data, at)
		}
	}
	if derr != nil {
		return nil, derr
	}
	return &Event{
		Name:      name,
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Time:      rec.Timestamp,
		UserIDs:   users,
		Data:      data,
	}, nil
}

// MayName reports whether rec may name user as a recipient, from a look at the bytes where its
// topic's records name their users: false only when rec cannot name user (or its topic is not
// consumed). It is much cheaper than Decode, to skip the records of other users when reading a
// range back.
func (d *Decoder) MayName(rec *kgo.Record, user []byte) bool {
	t, ok := d.topics[rec.Topic]
	return ok && t.src.mayName(rec, user)
}

// dedup removes repeated user IDs, keeping the first of each, so that nobody gets an event twice.
func dedup(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	if len(ids) <= 16 { // small lists: a linear scan beats a map
		out := make([]string, 0, len(ids))
	outer:
		for _, id := range ids {
			for _, o := range out {
				if o == id {
					continue outer
				}
			}
			out = append(out, id)
		}
		return out
	}
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}
