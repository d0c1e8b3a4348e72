package realtime

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A cursor is the opaque resume position a client sends back after a disconnect (SSE
// Last-Event-ID, WebSocket ?cursor=, Socket.IO recovery offset or auth cursor). It lists, for
// every partition of the consumed topics, the offset the hub had reached when it sent the cursor:
// everything of the client's user below those offsets has been sent to the client, nothing at or
// above them has. Resuming from it on any node is therefore exact: that node sends the user's
// records from those offsets on, then live events. Like Zilla's SSE-over-Kafka event IDs, it
// holds Kafka positions only (no node or session state), so any node can honour it.
//
// A cursor is O(partitions) long, so events do not carry it (docs/design.md, "Cursor"): each
// event carries only its own ID, "<topic>:<partition>:<offset>", and the full cursor travels in
// a `cursor` control frame, sent when the connection opens, after every HubConfig.CursorEvery
// events, at each keepalive tick when the hub moved, and when the client asks. A client resumes
// with a resume token: its last cursor, optionally followed by "~" and the comma-separated IDs
// of the events it got after that cursor (see ParseResume); the IDs move the cursor past them,
// so that nothing is sent twice.
//
// Wire form (version 2, what Encode writes), base64url without padding (RFC 4648 §5):
//
//	byte     version (2)
//	uint32   FNV-1a hash of the Kafka cluster ID (big endian), so a cursor from another cluster is refused
//	uvarint  t, the number of topics
//	t times: uint32 FNV-1a hash of the topic name, uvarint n, the number of its partitions, then
//	         n times: uvarint partition gap (partition - previous partition - 1, from -1),
//	                  varint offset delta (offset - previous offset, from 0; zigzag)
//
// Partitions of a topic have offsets of similar size, so the deltas take 1 to 3 bytes: about 3
// bytes a partition where version 1 took 8. Version 1, which every event carried before the
// change, is still read, so that clients holding one resume exactly:
//
//	byte     version (1)
//	uint32   cluster hash, as above
//	uvarint  n, the number of partitions
//	n times: uint32 FNV-1a hash of the topic name, uvarint partition, uvarint offset
const (
	cursorV1 = 1
	cursorV2 = 2
)

// maxCursorLen bounds what Decode and ParseResume read (a version 1 cursor of 1,000 partitions is
// about 11 KB, a version 2 one about 4 KB).
const maxCursorLen = 32 << 10

// Position is the next offset to deliver in one partition.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

type partitionKey struct {
	topic     string
	partition int32
}

// CursorError says why a cursor cannot be honoured; the client gets a resync event with Reason.
type CursorError struct {
	Reason string // "malformed", "other-cluster", "unknown-topic"
}

func (e *CursorError) Error() string { return "cursor: " + e.Reason }

// Detail is the sentence a resync event carries as its message: what is wrong with the cursor
// and what the client should do, one per Reason.
func (e *CursorError) Detail() string {
	switch e.Reason {
	case "other-cluster":
		return "the cursor comes from another Kafka cluster; start from live events"
	case "unknown-topic":
		return "the cursor names a topic this service no longer consumes; start from live events"
	default: // "malformed"
		return "the cursor cannot be decoded: send back a cursor exactly as the service gave it, or none"
	}
}

// CursorCodec encodes and decodes cursors for one cluster and one set of consumed topics.
type CursorCodec struct {
	cluster uint32
	topics  map[uint32]string
}

// NewCursorCodec returns a codec for the cluster with ID clusterID consuming topics. It fails if
// two topic names hash alike (rename one).
func NewCursorCodec(clusterID string, topics []string) (*CursorCodec, error) {
	cc := &CursorCodec{cluster: fnv32(clusterID), topics: make(map[uint32]string, len(topics))}
	for _, t := range topics {
		h := fnv32(t)
		if other, dup := cc.topics[h]; dup && other != t {
			return nil, fmt.Errorf("cursor: topics %q and %q share the hash %08x", other, t, h)
		}
		cc.topics[h] = t
	}
	return cc, nil
}

// fnv32 is the 32-bit FNV-1a hash of s (hash/fnv's New32a, without its allocation: it runs
// for every user of every event).
func fnv32(s string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

// Encode returns the version 2 cursor for positions, which must be sorted by topic then
// partition (as positions.snapshot returns them).
func (cc *CursorCodec) Encode(ps []Position) string {
	b := make([]byte, 0, 16+len(ps)*4)
	b = append(b, cursorV2)
	b = binary.BigEndian.AppendUint32(b, cc.cluster)
	topics := 0
	for i := range ps {
		if i == 0 || ps[i].Topic != ps[i-1].Topic {
			topics++
		}
	}
	b = binary.AppendUvarint(b, uint64(topics))
	for i := 0; i < len(ps); {
		j := i
		for j < len(ps) && ps[j].Topic == ps[i].Topic {
			j++
		}
		b = binary.BigEndian.AppendUint32(b, fnv32(ps[i].Topic))
		b = binary.AppendUvarint(b, uint64(j-i))
		prevPart, prevOff := int64(-1), int64(0)
		for _, p := range ps[i:j] {
			b = binary.AppendUvarint(b, uint64(int64(p.Partition)-prevPart-1))
			b = binary.AppendVarint(b, p.Offset-prevOff)
			prevPart, prevOff = int64(p.Partition), p.Offset
		}
		i = j
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode parses a cursor of version 1 or 2. The error is a *CursorError.
func (cc *CursorCodec) Decode(s string) ([]Position, error) {
	malformed := &CursorError{Reason: "malformed"}
	if s == "" || len(s) > maxCursorLen {
		return nil, malformed
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 6 || b[0] != cursorV1 && b[0] != cursorV2 {
		return nil, malformed
	}
	if binary.BigEndian.Uint32(b[1:5]) != cc.cluster {
		return nil, &CursorError{Reason: "other-cluster"}
	}
	var ps []Position
	if b[0] == cursorV1 {
		ps, err = cc.decodeV1(b[5:])
	} else {
		ps, err = cc.decodeV2(b[5:])
	}
	if err != nil {
		return nil, err
	}
	// Sorted by topic then partition, as positions.snapshot is (and Encode needs); a partition
	// listed twice is malformed.
	slices.SortFunc(ps, func(a, b Position) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	for i := 1; i < len(ps); i++ {
		if ps[i].Topic == ps[i-1].Topic && ps[i].Partition == ps[i-1].Partition {
			return nil, &CursorError{Reason: "malformed"}
		}
	}
	return ps, nil
}

func (cc *CursorCodec) decodeV1(b []byte) ([]Position, error) {
	malformed := &CursorError{Reason: "malformed"}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, malformed
	}
	b = b[k:]
	ps := make([]Position, 0, n)
	for range n {
		if len(b) < 4 {
			return nil, malformed
		}
		topic, ok := cc.topics[binary.BigEndian.Uint32(b)]
		if !ok {
			return nil, &CursorError{Reason: "unknown-topic"}
		}
		b = b[4:]
		part, k1 := binary.Uvarint(b)
		if k1 <= 0 || part > 1<<31-1 {
			return nil, malformed
		}
		b = b[k1:]
		off, k2 := binary.Uvarint(b)
		if k2 <= 0 || off > 1<<63-1 {
			return nil, malformed
		}
		b = b[k2:]
		ps = append(ps, Position{Topic: topic, Partition: int32(part), Offset: int64(off)})
	}
	if len(b) != 0 {
		return nil, malformed
	}
	return ps, nil
}

func (cc *CursorCodec) decodeV2(b []byte) ([]Position, error) {
	malformed := &CursorError{Reason: "malformed"}
	t, k := binary.Uvarint(b)
	if k <= 0 || t > uint64(len(b)) {
		return nil, malformed
	}
	b = b[k:]
	var ps []Position
	seen := make(map[string]bool, t)
	for range t {
		if len(b) < 4 {
			return nil, malformed
		}
		topic, ok := cc.topics[binary.BigEndian.Uint32(b)]
		if !ok {
			return nil, &CursorError{Reason: "unknown-topic"}
		}
		if seen[topic] {
			return nil, malformed
		}
		seen[topic] = true
		b = b[4:]
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return nil, malformed
		}
		b = b[k:]
		part, off := int64(-1), int64(0)
		for range n {
			gap, k1 := binary.Uvarint(b)
			if k1 <= 0 || gap > 1<<31-1 {
				return nil, malformed
			}
			b = b[k1:]
			delta, k2 := binary.Varint(b)
			if k2 <= 0 {
				return nil, malformed
			}
			b = b[k2:]
			part += int64(gap) + 1
			off += delta
			if part > 1<<31-1 || off < 0 {
				return nil, malformed
			}
			ps = append(ps, Position{Topic: topic, Partition: int32(part), Offset: off})
		}
	}
	if len(b) != 0 {
		return nil, malformed
	}
	return ps, nil
}

// resumeSep separates a resume token's cursor from the IDs the client got after it (neither
// base64url nor an event ID holds it: Kafka topic names are [a-zA-Z0-9._-]).
const resumeSep = "~"

// maxResumeIDs bounds the event IDs one resume token may list.
const maxResumeIDs = 4096

// ParseResume splits a resume token, "<cursor>" or "<cursor>~<id>,<id>,...", into its cursor
// and the event IDs ("<topic>:<partition>:<offset>") the client says it got after the cursor
// (docs/client-protocol.md, "Cursor"). The cursor itself is not decoded. An ID list that does
// not parse, holds more than maxResumeIDs IDs, or a token over 64 KiB is a *CursorError
// "malformed".
func ParseResume(token string) (cursor string, ids []Position, err error) {
	if len(token) > 2*maxCursorLen {
		return "", nil, &CursorError{Reason: "malformed"}
	}
	cursor, rest, found := strings.Cut(token, resumeSep)
	if !found || rest == "" {
		return cursor, nil, nil
	}
	if strings.Count(rest, ",") >= maxResumeIDs {
		return "", nil, &CursorError{Reason: "malformed"}
	}
	for _, id := range strings.Split(rest, ",") {
		p, ok := parseEventID(id)
		if !ok {
			return "", nil, &CursorError{Reason: "malformed"}
		}
		ids = append(ids, p)
	}
	return cursor, ids, nil
}

// parseEventID reads "<topic>:<partition>:<offset>" into the position of that event.
func parseEventID(id string) (Position, bool) {
	j := strings.LastIndexByte(id, ':')
	if j < 0 {
		return Position{}, false
	}
	i := strings.LastIndexByte(id[:j], ':')
	if i <= 0 {
		return Position{}, false
	}
	part, err1 := strconv.ParseInt(id[i+1:j], 10, 32)
	off, err2 := strconv.ParseInt(id[j+1:], 10, 64)
	if err1 != nil || err2 != nil || part < 0 || off < 0 {
		return Position{}, false
	}
	return Position{Topic: id[:i], Partition: int32(part), Offset: off}, true
}

// advance moves from past the events the client says it has (ids, from ParseResume): within one
// connection the hub sends a user's events of a partition in offset order, without gaps, so an
// event at offset o means the client has all its user's events of that partition below o+1 too.
// IDs of partitions from lacks are returned in rest: the caller drops exactly those events.
func advance(from, ids []Position) (out []Position, rest map[Position]bool) {
	out = slices.Clone(from)
	for _, id := range ids {
		i := slices.IndexFunc(out, func(p Position) bool { return p.Topic == id.Topic && p.Partition == id.Partition })
		if i < 0 {
			if rest == nil {
				rest = map[Position]bool{}
			}
			rest[id] = true
			continue
		}
		if id.Offset >= out[i].Offset {
			out[i].Offset = id.Offset + 1
		}
	}
	return out, rest
}

// positions is the hub's progress: the next offset per assigned partition, kept sorted so that
// a snapshot is deterministic. Guarded by Hub.pubMu.
type positions struct {
	list []Position
}

func (p *positions) index(topic string, partition int32) (int, bool) {
	return slices.BinarySearchFunc(p.list, partitionKey{topic, partition}, func(e Position, k partitionKey) int {
		return cmp.Or(cmp.Compare(e.Topic, k.topic), cmp.Compare(e.Partition, k.partition))
	})
}

// set records that offset is the next to deliver in the partition.
func (p *positions) set(topic string, partition int32, offset int64) {
	i, found := p.index(topic, partition)
	if found {
		p.list[i].Offset = offset
		return
	}
	p.list = slices.Insert(p.list, i, Position{Topic: topic, Partition: partition, Offset: offset})
}

func (p *positions) snapshot() []Position { return slices.Clone(p.list) }

// errNoCodec is returned when a cursor arrives before the hub knows its cluster.
var errNoCodec = errors.New("cursor: the hub has not connected to Kafka yet")
