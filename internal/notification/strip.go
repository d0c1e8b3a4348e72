package notification

import (
	"encoding/json"
	"slices"
	"strings"
)

// withoutRecipients returns the compact JSON object obj without its top-level "userIds" members
// (matched as encoding/json matches keys: case-insensitively), keeping every other member as it
// is, in order. Clients get an event's data without the recipient list: it would tell each user
// who else received the event, and with thousands of recipients it would be most of every frame.
// obj must be compact, valid JSON (json.Compact's output); anything else is returned unchanged.
func withoutRecipients(obj []byte) []byte {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return obj
	}
	out := make([]byte, 1, len(obj))
	out[0] = '{'
	for i := 1; i < len(obj)-1; {
		if obj[i] == ',' {
			i++
		}
		keyEnd := skipString(obj, i)
		end := skipValue(obj, keyEnd+1) // past the ':'
		var key string
		if json.Unmarshal(obj[i:keyEnd], &key) != nil || !strings.EqualFold(key, "userIds") {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, obj[i:end]...)
		}
		i = end
	}
	out = append(out, '}')
	if cap(out) > 2*len(out)+256 { // a long recipient list went: do not keep its room alive
		out = append(make([]byte, 0, len(out)), out...)
	}
	return out
}

// WithoutMembers returns the compact JSON object obj without its top-level members named
// exactly one of names (after unescaping, as DecodeJSON matches names), keeping every other
// member as it is, in order. The HTTP API takes a request's delivery options (expiresAt, ttlMs,
// collapseKey) out of the record value with it. obj must be compact, valid JSON (json.Compact's
// output); anything else is returned unchanged.
func WithoutMembers(obj []byte, names ...string) []byte {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return obj
	}
	out := make([]byte, 1, len(obj))
	out[0] = '{'
	for i := 1; i < len(obj)-1; {
		if obj[i] == ',' {
			i++
		}
		keyEnd := skipString(obj, i)
		end := skipValue(obj, keyEnd+1) // past the ':'
		var key string
		if json.Unmarshal(obj[i:keyEnd], &key) != nil || !slices.Contains(names, key) {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, obj[i:end]...)
		}
		i = end
	}
	return append(out, '}')
}

// skipString returns the index just past the JSON string starting at b[i] (a '"').
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the compact JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // a number, true, false or null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
			j++
		}
		return j
	}
}
