package realtime

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// A cursor is the opaque resume position a client sends back after a disconnect (SSE
// Last-Event-ID, WebSocket ?cursor=, Socket.IO recovery offset). It lists, for every partition of
// the consumed topics, the offset the hub had reached when it sent the event that carries it:
// everything of the client's user below those offsets has been sent to the client, nothing at or
// above them has. Resuming from it on any node is therefore exact: that node sends the user's
// records from those offsets on, then live events. Like Zilla's SSE-over-Kafka event IDs, it
// holds Kafka positions only (no node or session state), so any node can honour it.
//
// Wire form (version 1), base64url without padding (RFC 4648 §5):
//
//	byte     version (1)
//	uint32   FNV-1a hash of the Kafka cluster ID (big endian), so a cursor from another cluster is refused
//	uvarint  n, the number of partitions
//	n times: uint32 FNV-1a hash of the topic name, uvarint partition, uvarint offset
const cursorVersion = 1

// maxCursorLen bounds what Decode reads (a cursor of 1,000 partitions is about 16 KB).
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

// Encode returns the cursor for positions, which must be sorted by topic then partition (as
// positions.snapshot returns them).
func (cc *CursorCodec) Encode(ps []Position) string {
	b := make([]byte, 0, 8+len(ps)*12)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint32(b, cc.cluster)
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.BigEndian.AppendUint32(b, fnv32(p.Topic))
		b = binary.AppendUvarint(b, uint64(p.Partition))
		b = binary.AppendUvarint(b, uint64(p.Offset))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode parses a cursor. The error is a *CursorError.
func (cc *CursorCodec) Decode(s string) ([]Position, error) {
	malformed := &CursorError{Reason: "malformed"}
	if s == "" || len(s) > maxCursorLen {
		return nil, malformed
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 6 || b[0] != cursorVersion {
		return nil, malformed
	}
	if binary.BigEndian.Uint32(b[1:5]) != cc.cluster {
		return nil, &CursorError{Reason: "other-cluster"}
	}
	b = b[5:]
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
