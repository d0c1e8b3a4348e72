package notification

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The fast path of Decode for the zero Shape: one scan of the record value, without reflection,
// that accepts only what the reflective path (DecodeJSON, then json.Compact and
// withoutRecipients) would accept, and returns the same Event. Whatever it is unsure about (an
// escaped member name or user ID, a broken rule, nesting deeper than fastMaxDepth, ...) it leaves
// to that path, which then says why the record is refused: error texts come from one place only.
// FuzzFastDecode proves the two agree.
//
// When the scan refuses a value for a cause it understands fully (malformed JSON, a wrong type, a
// broken rule, a member missing, repeated or named in another case), the value is invalid for
// sure, and fastInvalid says so: Decoder.DecodeForDelivery then refuses the record without the
// reflective path (a poison burst is skipped at the cost of the scan; the dead-letter duty's
// Decode words the reason). Only the causes the scan does not follow leave it unsure: an escape
// in a member name or in a checked string, a non-ASCII member name, whitespace inside userIds,
// nesting deeper than fastMaxDepth. FuzzFastDecode also proves that DecodeForDelivery accepts
// and refuses exactly what Decode does.

// fastVerdict is what the scan concluded about a value.
type fastVerdict uint8

const (
	fastUnsure  fastVerdict = iota // the reflective path decides (and words any error)
	fastValid                      // valid: the fast path's Event is Decode's
	fastInvalid                    // Decode refuses it, whatever the rest of the value holds
)

// fastKind is the type and rules of one member of a built-in event (notification.go).
type fastKind uint8

const (
	fastString   fastKind = iota // a string, required (non-empty), at most max characters
	fastUsers                    // userIds: required,min=1,max=10000,userids
	fastUnit                     // a number, required, gte=0,lte=1 (masteryLevel)
	fastDateTime                 // a string, required, rfc3339 (scheduledTime)
)

type fastField struct {
	name string
	kind fastKind
	max  int // fastString: the most characters (runes, as validator's max= counts them)
}

// fastSchemas are the members and rules of the structs Decode validates a zero-Shape record
// with: SessionStartingSoon, ConceptMastered, and addressed for any other event. They must
// follow the validate tags there (TestFastSchemasFollowTags checks them).
var (
	fastSession = []fastField{{"sessionId", fastString, 256}, {"userIds", fastUsers, 0},
		{"message", fastString, 4096}, {"scheduledTime", fastDateTime, 0}}
	fastConcept = []fastField{{"conceptId", fastString, 256}, {"userIds", fastUsers, 0},
		{"conceptName", fastString, 1024}, {"masteryLevel", fastUnit, 0}}
	fastAddressed = []fastField{{"userIds", fastUsers, 0}}
)

func fastSchema(event string) []fastField {
	switch event {
	case EventSessionStartingSoon:
		return fastSession
	case EventConceptMastered:
		return fastConcept
	}
	return fastAddressed
}

// fastMaxDepth bounds the nesting the fast path follows; deeper values go the reflective way
// (encoding/json allows 10,000 levels).
const fastMaxDepth = 64

// fastScan is the outcome of scanning one value.
type fastScan struct {
	users      [2]int // userIds array: offsets of '[' and just past ']'
	nusers     int
	userBytes  int
	member     [2]int // the userIds member: offsets of its name's '"' and just past its value
	whitespace bool   // whitespace outside strings: the value is not compact
	// unsure: the scan stopped at something it does not follow (see fastVerdict), not at a
	// certain cause of refusal.
	unsure bool
}

// fastDecode returns the recipients (de-duplicated) and the data of a zero-Shape record value
// valid by schema (verdict fastValid); for anything but a plainly valid value it returns no data
// and fastInvalid when the value is invalid for sure, fastUnsure otherwise (see above). keep
// leaves "userIds" in the data. A single recipient is returned in one, users nil.
func fastDecode(value []byte, schema []fastField, keep bool) (one string, users []string, data []byte, verdict fastVerdict) {
	if !utf8.Valid(value) {
		return "", nil, nil, fastInvalid // RFC 8259, section 8.1 (see utf8Error)
	}
	var sc fastScan
	if !sc.object(value, schema) {
		if sc.unsure {
			return "", nil, nil, fastUnsure
		}
		return "", nil, nil, fastInvalid
	}
	if sc.whitespace {
		return "", nil, nil, fastUnsure // valid, but json.Compact's way is the reflective path's
	}
	// The user IDs: one string holds them all (one allocation), each ID a piece of it.
	var all strings.Builder
	all.Grow(sc.userBytes)
	arr := value[sc.users[0]+1 : sc.users[1]-1] // "a","b" (no escapes, no whitespace)
	for i := 0; i < len(arr); i++ {
		if arr[i] == '"' {
			j := i + 1
			for arr[j] != '"' {
				j++
			}
			all.Write(arr[i+1 : j])
			i = j
		}
	}
	ids := all.String()
	if sc.nusers == 1 {
		one = ids
	} else {
		users = make([]string, 0, sc.nusers)
		at := 0
		for i := 0; i < len(arr); i++ {
			if arr[i] == '"' {
				j := i + 1
				for arr[j] != '"' {
					j++
				}
				users = append(users, ids[at:at+j-i-1])
				at += j - i - 1
				i = j
			}
		}
		users = dedupInPlace(users)
	}
	if keep {
		data = append(make([]byte, 0, len(value)), value...)
		return one, users, data, fastValid
	}
	// withoutRecipients: every member but the one userIds, in order, joined by commas.
	before := value[1:sc.member[0]]             // "a":1, (or empty)
	after := value[sc.member[1] : len(value)-1] // ,"c":3 (or empty)
	n := 2 + len(before) + len(after)
	data = make([]byte, 0, n)
	data = append(data, '{')
	switch {
	case len(before) > 0 && len(after) > 0:
		data = append(data, before...)
		data = append(data, after[1:]...)
	case len(before) > 0:
		data = append(data, before[:len(before)-1]...)
	case len(after) > 0:
		data = append(data, after[1:]...)
	}
	return one, users, append(data, '}'), fastValid
}

// dedupInPlace is dedup on a slice the caller owns: repeated IDs go, the first of each stays.
func dedupInPlace(ids []string) []string {
	if len(ids) > 16 {
		return dedup(ids)
	}
	n := 0
outer:
	for _, id := range ids {
		for _, o := range ids[:n] {
			if o == id {
				continue outer
			}
		}
		ids[n] = id
		n++
	}
	clear(ids[n:])
	return ids[:n]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (sc *fastScan) ws(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		sc.whitespace = true
		i++
	}
	return i
}

// object scans b, which must be one JSON object with nothing after it, checking the members of
// schema and skipping the others. It reports false for anything the fast path does not take,
// setting sc.unsure when the cause is not a certain refusal (see fastVerdict). Every other false
// is one: malformed JSON; not an object; a schema member missing (all are required: a missing
// masteryLevel is a nil pointer), repeated, or named in another case.
func (sc *fastScan) object(b []byte, schema []fastField) bool {
	i := sc.ws(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	var seen uint64
	i = sc.ws(b, i+1)
	if i < len(b) && b[i] == '}' {
		return false // no userIds
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		nameStart := i
		end, esc, ok := scanString(b, i)
		if !ok {
			return false
		}
		if esc {
			sc.unsure = true // encoding/json unescapes it: it may name a schema member
			return false
		}
		name := b[i+1 : end-1]
		field := -1
		for k, f := range schema {
			if string(name) == f.name {
				if seen&(1<<k) != 0 {
					return false // repeated: the reflective path refuses it
				}
				seen |= 1 << k
				field = k
			} else if len(name) == len(f.name) && asciiFold(name, f.name) {
				return false // encoding/json would take it for f: refused there
			}
		}
		for _, c := range name {
			if c >= utf8.RuneSelf { // Unicode folding (ſ is s): not worth it here
				sc.unsure = true
				return false
			}
		}
		i = sc.ws(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = sc.ws(b, i+1)
		if field < 0 {
			i, ok = sc.value(b, i, 0)
		} else {
			i, ok = sc.field(b, i, schema[field])
			if schema[field].kind == fastUsers {
				sc.member = [2]int{nameStart, i}
			}
		}
		if !ok {
			return false
		}
		i = sc.ws(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			i++
			break
		}
		if b[i] != ',' {
			return false
		}
		i = sc.ws(b, i+1)
	}
	if sc.ws(b, i) != len(b) {
		return false
	}
	return seen == 1<<len(schema)-1 // every member present (all are required)
}

// asciiFold reports whether ASCII name equals f but for the case of letters.
func asciiFold(name []byte, f string) bool {
	for i := range len(name) {
		a, b := name[i], f[i]
		if a != b && (a|0x20 != b|0x20 || a|0x20 < 'a' || a|0x20 > 'z') {
			return false
		}
	}
	return true
}

// field scans the value of a schema member at b[i] and checks its rules. A false is a certain
// refusal unless it sets sc.unsure: a value of another JSON type is a type error, or, for null,
// a required rule broken (an empty string, a nil slice or pointer).
func (sc *fastScan) field(b []byte, i int, f fastField) (int, bool) {
	switch f.kind {
	case fastString, fastDateTime:
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		end, esc, ok := scanString(b, i)
		if ok && esc {
			sc.unsure = true // left to encoding/json
		}
		if !ok || esc || end-i == 2 { // malformed, escaped, or empty (required)
			return i, false
		}
		s := b[i+1 : end-1]
		if f.kind == fastString {
			return end, utf8.RuneCount(s) <= f.max
		}
		_, err := time.Parse(time.RFC3339, string(s))
		return end, err == nil
	case fastUnit:
		end, ok := scanNumber(b, i)
		if !ok {
			return i, false
		}
		v, err := strconv.ParseFloat(string(b[i:end]), 64)
		return end, err == nil && v >= 0 && v <= 1
	case fastUsers:
		if i >= len(b) || b[i] != '[' {
			return i, false
		}
		sc.users[0] = i
		i++
		for {
			if i >= len(b) || b[i] != '"' {
				// Not a string (a type error; null is an empty ID), an empty list (min=1), a
				// trailing comma, or whitespace (not followed here).
				sc.unsure = i < len(b) && isSpace(b[i])
				return i, false
			}
			end, esc, ok := scanString(b, i)
			if ok && esc {
				sc.unsure = true // left to encoding/json: its length is the unescaped one
				return i, false
			}
			n := end - i - 2
			if !ok || n == 0 || n > MaxUserIDLen {
				return i, false
			}
			sc.nusers++
			sc.userBytes += n
			i = end
			if i < len(b) && b[i] == ']' {
				sc.users[1] = i + 1
				return i + 1, sc.nusers <= MaxUserIDs
			}
			if i >= len(b) || b[i] != ',' {
				sc.unsure = i < len(b) && isSpace(b[i])
				return i, false
			}
			i++
		}
	}
	return i, false
}

// scanString returns the offset just past the JSON string starting at b[i] (a '"'), whether it
// holds an escape, and false if it is not a valid JSON string (RFC 8259, section 7).
func scanString(b []byte, i int) (end int, esc, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, true
		case c < 0x20:
			return j, esc, false
		case c == '\\':
			esc = true
			j++
			if j >= len(b) {
				return j, esc, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return j, esc, false
				}
				for _, h := range b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return j, esc, false
					}
				}
				j += 4
			default:
				return j, esc, false
			}
		}
	}
	return len(b), esc, false
}

// scanNumber returns the offset just past the JSON number at b[i] (RFC 8259, section 6).
func scanNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// value skips the JSON value at b[i], at nesting depth, checking its syntax: a false is
// malformed JSON unless it sets sc.unsure (nesting deeper than fastMaxDepth).
func (sc *fastScan) value(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case c == '-' || '0' <= c && c <= '9':
		return scanNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '[' || c == '{':
		if depth >= fastMaxDepth {
			sc.unsure = true // encoding/json allows 10,000 levels
			return i, false
		}
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		i = sc.ws(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, false
				}
				if i, _, ok = scanString(b, i); !ok {
					return i, false
				}
				i = sc.ws(b, i)
				if i >= len(b) || b[i] != ':' {
					return i, false
				}
				i = sc.ws(b, i+1)
			}
			if i, ok = sc.value(b, i, depth+1); !ok {
				return i, false
			}
			i = sc.ws(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == closer {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = sc.ws(b, i+1)
		}
	}
	return i, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
