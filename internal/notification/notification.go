// Package notification defines the events realtime-service delivers, their validation, and the
// decoding of a Kafka record into an Event. It does no I/O.
//
// The record shapes are those of the original NestJS service (docs/design.md, "Topics and records"):
//
//	session-notifications  session-starting-soon  {"sessionId","userIds":[...],"message","scheduledTime"}
//	concept-notifications  concept-mastered       {"conceptId","userIds":[...],"conceptName","masteryLevel"}
package notification

import (
	"errors"
	"strconv"
	"time"
)

// Event names and the topics that carry them by default.
const (
	EventSessionStartingSoon = "session-starting-soon"
	EventConceptMastered     = "concept-mastered"

	TopicSessions = "session-notifications"
	TopicConcepts = "concept-notifications"
	// TopicTest is the smoke-test topic of `realtime-service check`; its records are not delivered.
	TopicTest = "test-realtime-service"
	// TopicDLQ is the default dead-letter topic.
	TopicDLQ = "realtime-service.dlq"

	// HeaderEventType is the record header that overrides the topic's event name.
	HeaderEventType = "event-type"

	// MaxUserIDs is the most users one record may name.
	MaxUserIDs = 10_000
)

// SessionStartingSoon is the value of a session-starting-soon record: the users of a session that
// starts soon. ScheduledTime is RFC 3339 (e.g. "2026-11-29T10:00:00Z").
type SessionStartingSoon struct {
	SessionID     string   `json:"sessionId" validate:"required,max=256"`
	UserIDs       []string `json:"userIds" validate:"required,min=1,max=10000,userids"`
	Message       string   `json:"message" validate:"required,max=4096"`
	ScheduledTime string   `json:"scheduledTime" validate:"required,rfc3339"`
}

// reservedEvents are names a record cannot use as its event: Socket.IO's reserved events
// (socket.io v4 "Emit cheatsheet", reserved names: socket.io-parser refuses an EVENT packet with
// one, so socket.io-client would drop the connection at each of them) and the service's own
// control events (client protocol: cursor, resync, disconnect), which a record must not forge.
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true, "cursor": true, "resync": true,
}

// CheckEventName returns nil if name can name an event: 1 to 128 characters from [a-zA-Z0-9._:-],
// and not a reserved name (connect, connect_error, disconnect, disconnecting, newListener,
// removeListener, cursor, resync). Records whose event-type header fails go to the dead-letter
// topic; the HTTP API refuses them with 400.
func CheckEventName(name string) error {
	if len(name) == 0 || len(name) > 128 {
		return errors.New("an event name has 1 to 128 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return errors.New("an event name has only the characters a-z, A-Z, 0-9, '.', '_', ':' and '-'")
		}
	}
	if reservedEvents[name] {
		return errors.New("\"" + name + "\" is reserved (Socket.IO or the service's control events)")
	}
	return nil
}

// Key is the record key: records of one session keep their order on one partition.
func (s *SessionStartingSoon) Key() string { return s.SessionID }

// ConceptMastered is the value of a concept-mastered record: users who mastered a concept, with a
// mastery level from 0 to 1 inclusive.
type ConceptMastered struct {
	ConceptID    string   `json:"conceptId" validate:"required,max=256"`
	UserIDs      []string `json:"userIds" validate:"required,min=1,max=10000,userids"`
	ConceptName  string   `json:"conceptName" validate:"required,max=1024"`
	MasteryLevel *float64 `json:"masteryLevel" validate:"required,gte=0,lte=1"`
}

// Key is the record key: records of one concept keep their order on one partition.
func (c *ConceptMastered) Key() string { return c.ConceptID }

// addressed is the part every delivered record must have, whatever its event: the users it names.
type addressed struct {
	UserIDs []string `json:"userIds" validate:"required,min=1,max=10000,userids"`
}

// Event is a decoded, validated record, ready for fan-out.
type Event struct {
	// Name is the event name: the topic's, or the record's event-type header.
	Name string
	// Topic, Partition and Offset locate the record; together they are the event ID.
	Topic     string
	Partition int32
	Offset    int64
	// Time is the record's timestamp.
	Time time.Time
	// UserIDs are the users to deliver to, de-duplicated, in record order.
	UserIDs []string
	// Data is what clients receive: the record value as compact JSON (an object), without its
	// recipient list ("userIds", or the member its topic's Shape points at, unless Shape.Keep);
	// for a raw topic (Shape.Value) a JSON string.
	Data []byte
	// ExpiresAt is when the event stops being delivered, live or replayed (the record's
	// expires-at header, or its timestamp plus its ttl-ms header, the earlier of the two); the
	// zero time is never.
	ExpiresAt time.Time
	// CollapseKey is the record's collapse-key header, "" for none: a replay sends only the
	// newest of the events sharing one (see ForReplay).
	CollapseKey string
}

// ID is the event ID "<topic>:<partition>:<offset>": unique in a cluster, the same on every node.
func (e *Event) ID() string { return EventID(e.Topic, e.Partition, e.Offset) }

// EventID formats an event ID from a record's position.
func EventID(topic string, partition int32, offset int64) string {
	var buf [96]byte // one allocation, the string's, for topic names up to 56 bytes
	b := append(buf[:0], topic...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, offset, 10)
	return string(b)
}
