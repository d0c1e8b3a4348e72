package notification

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DecodeError says why a record cannot be delivered. Such a record goes to the dead-letter topic
// with Code and the error text in its headers.
type DecodeError struct {
	// Code is machine-readable: "unknown-topic", "invalid-event-type", "invalid-json",
	// "invalid-value".
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

// Decoder turns records of the consumed topics into Events. It is safe for concurrent use.
type Decoder struct {
	events map[string]string // topic -> default event name
	v      *Validator
}

// NewDecoder returns a Decoder for the given topic -> event name mapping.
func NewDecoder(v *Validator, topicEvents map[string]string) *Decoder {
	return &Decoder{events: topicEvents, v: v}
}

// Decode validates rec and returns its Event. The event name is the topic's unless the record has
// an `event-type` header with a value; two or more `event-type` headers are an
// "invalid-event-type" error, whatever their values. The value must be a JSON object naming 1 to 10,000 non-empty user IDs in
// "userIds"; a known event name (session-starting-soon, concept-mastered) must also match that
// event's schema. The Event's Data is the value, compacted, without "userIds" (see
// withoutRecipients); unknown fields are kept. The error, if any, is a *DecodeError.
func (d *Decoder) Decode(rec *kgo.Record) (*Event, error) {
	name, ok := d.events[rec.Topic]
	if !ok {
		return nil, &DecodeError{Code: "unknown-topic", Detail: fmt.Sprintf("topic %q is not mapped to an event", rec.Topic)}
	}
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
	return &Event{
		Name:      name,
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Time:      rec.Timestamp,
		UserIDs:   dedup(users),
		Data:      withoutRecipients(data.Bytes()),
	}, nil
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
