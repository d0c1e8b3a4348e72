// Package presence tells the cluster who is connected: each node produces presence records
// (Tracker) to a compacted topic and reads all of it back into a cluster-wide view (View) that
// answers GET /v1/users/{id}/presence and POST /v1/presence/query from memory. The record
// layouts and the liveness rule are those of docs/presence-and-receipts.md.
//
// Data flows one way: the hub tells the Tracker of each change of a user's connections
// (realtime.PresenceSink); the Tracker produces; every node's View consumes.
package presence

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/realtime-service/realtime-service/internal/realtime"
)

// A presence record's key is "<user ID>/<node ID>" (node IDs hold no "/", config.Load checks
// it); a node heartbeat's key is "/<node ID>" (an empty user ID). A null value (a tombstone)
// says the user holds no connection on that node any more, or, for a heartbeat key, that the
// node stopped; compaction keeps only the last record of each key.

// userKey is the key of user's presence record on node.
func userKey(user, node string) string { return user + "/" + node }

// heartbeatKey is the key of node's heartbeats.
func heartbeatKey(node string) string { return "/" + node }

// splitKey returns the user ID ("" for a heartbeat) and node ID of a key, ok false when the key
// has no "/".
func splitKey(key string) (user, node string, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 || i == len(key)-1 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// userRecord is the value of a presence record (docs/presence-and-receipts.md, "Presence
// records"): Online is always true (offline is a tombstone); Since is when the user's first
// connection on the node opened; Boot identifies the node's run, so that the records of an
// earlier run of a node ID (killed with users connected) never count once it restarts.
type userRecord struct {
	UserID      string     `json:"userId"`
	NodeID      string     `json:"nodeId"`
	Online      bool       `json:"online"`
	Connections int        `json:"connections"`
	Transports  transports `json:"transports"`
	Since       time.Time  `json:"since"`
	Boot        string     `json:"boot"`
}

// transports are a user's connections on a node per transport.
type transports struct {
	WebSocket int `json:"websocket"`
	SSE       int `json:"sse"`
	SocketIO  int `json:"socketio"`
}

func fromCounts(n realtime.TransportCounts) transports {
	return transports{WebSocket: n.WebSocket, SSE: n.SSE, SocketIO: n.SocketIO}
}

// heartbeatRecord is the value of a node heartbeat: the node's run (Boot), when it was sent, and
// how many users it holds connections of.
type heartbeatRecord struct {
	NodeID      string    `json:"nodeId"`
	Boot        string    `json:"boot"`
	HeartbeatAt time.Time `json:"heartbeatAt"`
	Users       int       `json:"users"`
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v) // the records above always marshal
	return b
}
