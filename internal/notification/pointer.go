package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Pointer is a parsed JSON Pointer (RFC 6901): a path of reference tokens into a JSON document,
// e.g. "/audience/userIds" or "/recipient/id". The zero Pointer refers to the whole document.
type Pointer struct {
	text   string   // the JSON String representation, e.g. "/a~1b/c"
	tokens []string // unescaped: "a/b", "c"
}

// ParsePointer parses s in either representation of RFC 6901: the JSON String one ("/a/b",
// section 3, with "~0" for "~" and "~1" for "/") or the URI fragment one ("#/a%2Cb", section 6,
// percent-encoded, for names with characters that a list of options cannot hold, such as "," or
// ";"). The empty string (and "#") is the whole document. Errors: a pointer that does not start
// with "/", a "~" not followed by "0" or "1", a malformed percent-escape.
func ParsePointer(s string) (Pointer, error) {
	if frag, ok := strings.CutPrefix(s, "#"); ok {
		dec, err := url.PathUnescape(frag)
		if err != nil {
			return Pointer{}, errors.New("a URI fragment pointer with a malformed %-escape (RFC 6901, section 6)")
		}
		s = dec
	}
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return Pointer{}, errors.New("a JSON Pointer starts with \"/\" (RFC 6901, section 3), e.g. /recipient/id")
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		for j := 0; j < len(p); j++ {
			if p[j] == '~' && (j+1 == len(p) || p[j+1] != '0' && p[j+1] != '1') {
				return Pointer{}, errors.New("a \"~\" in a JSON Pointer is written ~0, and a \"/\" in a name ~1 (RFC 6901, section 3)")
			}
		}
		// RFC 6901, section 4: ~1 first, then ~0, so that "~01" is "~1", not "/".
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return Pointer{text: s, tokens: parts}, nil
}

// String returns the pointer in its JSON String representation ("/a/b").
func (p Pointer) String() string { return p.text }

// pointerError says why a pointer does not lead to a value in a document.
type pointerError struct {
	code   string // "no-recipients" (nothing there) or "invalid-recipients" (ambiguous)
	detail string
}

// span is where the value at a pointer sits in a compact document: the value is doc[valStart:valEnd],
// and doc[cutStart:cutEnd] is what removing it takes away (the member or element with one of its
// commas).
type span struct {
	valStart, valEnd int
	cutStart, cutEnd int
}

// find locates the value at p in doc, a compact JSON text (json.Compact's output). A member name
// matches a token exactly; an object on the way in which the name appears twice, or a name that
// differs from it only in case (encoding/json would take either for it), makes the pointer
// ambiguous: another consumer of the topic could read other recipients than this service does
// (RFC 8259, section 4: names SHOULD be unique). An array index is "0" or a decimal without
// leading zeros (RFC 6901, section 4); "-" refers to nothing.
func find(doc []byte, p Pointer) (span, *pointerError) {
	s := span{valStart: 0, valEnd: skipValue(doc, 0)}
	for depth, tok := range p.tokens {
		at := p.prefix(depth + 1)
		var next span
		var err *pointerError
		switch doc[s.valStart] {
		case '{':
			next, err = findMember(doc, s, tok, at)
		case '[':
			next, err = findElement(doc, s, tok, at)
		default:
			err = &pointerError{"no-recipients", "nothing at " + at + ": " + p.prefix(depth) + " is " + aKind(doc[s.valStart:s.valEnd]) + ", not an object or array"}
		}
		if err != nil {
			return span{}, err
		}
		s = next
	}
	return s, nil
}

// findMember finds the member tok of the object at s.
func findMember(doc []byte, s span, tok, at string) (span, *pointerError) {
	var out span
	found := false
	for i := s.valStart + 1; i < s.valEnd-1; {
		start := i
		if doc[i] == ',' {
			i++
		}
		keyEnd := skipString(doc, i)
		end := skipValue(doc, keyEnd+1) // past the ':'
		name := doc[i+1 : keyEnd-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var n string
			_ = json.Unmarshal(doc[i:keyEnd], &n) // cannot fail: doc is valid JSON
			name = []byte(n)
		}
		switch {
		case string(name) == tok:
			if found {
				return span{}, &pointerError{"invalid-recipients", "the member " + at + " appears more than once (RFC 8259, section 4: names should be unique)"}
			}
			found = true
			out = cut(s, start, i, keyEnd+1, end)
		case bytes.EqualFold(name, []byte(tok)):
			return span{}, &pointerError{"invalid-recipients", "the member " + strconv.Quote(string(name)) + " differs from " + at + " only in case: use the exact name"}
		}
		i = end
	}
	if !found {
		return span{}, &pointerError{"no-recipients", "nothing at " + at + ": no such member"}
	}
	return out, nil
}

// findElement finds the element tok (an index) of the array at s.
func findElement(doc []byte, s span, tok, at string) (span, *pointerError) {
	n, err := strconv.Atoi(tok)
	if err != nil || n < 0 || len(tok) > 1 && tok[0] == '0' || tok[0] == '+' {
		return span{}, &pointerError{"no-recipients", "nothing at " + at + ": an array index is a number without leading zeros"}
	}
	for i, k := s.valStart+1, 0; i < s.valEnd-1; k++ {
		start := i
		if doc[i] == ',' {
			i++
		}
		end := skipValue(doc, i)
		if k == n {
			return cut(s, start, i, i, end), nil
		}
		i = end
	}
	return span{}, &pointerError{"no-recipients", "nothing at " + at + ": the array has fewer entries"}
}

// cut makes the span of a member or element of the container at s: it starts at start (its
// leading comma, if any), its own text at own (past that comma), its value at val, and it ends at
// end. Removing it takes its leading comma, or for the first of several the comma after it.
func cut(s span, start, own, val, end int) span {
	out := span{valStart: val, valEnd: end, cutStart: start, cutEnd: end}
	if start == own && end < s.valEnd-1 { // the first of several
		out.cutEnd++
	}
	return out
}

// prefix returns the text of the first n tokens of p ("" for n = 0: the whole document).
func (p Pointer) prefix(n int) string {
	if n == 0 {
		return "the value"
	}
	i := 0
	for range n {
		j := strings.IndexByte(p.text[i+1:], '/')
		if j < 0 {
			return p.text
		}
		i += j + 1
	}
	return p.text[:i]
}

// without returns doc without the value at s (its member or element), as a new slice.
func without(doc []byte, s span) []byte {
	out := make([]byte, 0, len(doc)-(s.cutEnd-s.cutStart))
	out = append(out, doc[:s.cutStart]...)
	return append(out, doc[s.cutEnd:]...)
}

// recipientsAt returns the user IDs of raw, the value at pointer at: one string, or an array of
// strings. The rules of user IDs (checkUserIDs) are the caller's.
func recipientsAt(raw []byte, at string) ([]string, *pointerError) {
	switch raw[0] {
	case '"':
		return []string{jsonString(raw)}, nil
	case '[':
		var ids []string
		for i, k := 1, 0; i < len(raw)-1; k++ {
			if raw[i] == ',' {
				i++
			}
			end := skipValue(raw, i)
			if raw[i] != '"' {
				return nil, &pointerError{"invalid-recipients", at + "/" + strconv.Itoa(k) + " is " + aKind(raw[i:end]) + "; a user ID is a string"}
			}
			ids = append(ids, jsonString(raw[i:end]))
			i = end
		}
		if len(ids) == 0 {
			return nil, &pointerError{"no-recipients", at + " is an empty array; want 1 to " + strconv.Itoa(MaxUserIDs) + " user IDs"}
		}
		return ids, nil
	}
	return nil, &pointerError{"no-recipients", at + " is " + aKind(raw) + "; want a user ID (a string) or an array of them"}
}

// jsonString decodes the JSON string raw (valid, quoted).
func jsonString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // cannot fail: raw is a valid JSON string
	return s
}

// aKind names the JSON type of raw with its article: "a number", "an object", "null".
func aKind(raw []byte) string {
	switch k := jsonKind(raw); k {
	case "null", "nothing":
		return k
	case "object", "array":
		return "an " + k
	default:
		return "a " + k
	}
}
