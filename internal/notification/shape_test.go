package notification

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParsePointer(t *testing.T) {
	for _, tc := range []struct {
		in     string
		tokens []string
		err    bool
	}{
		{in: "", tokens: nil},
		{in: "/userIds", tokens: []string{"userIds"}},
		{in: "/audience/userIds", tokens: []string{"audience", "userIds"}},
		{in: "/a~1b/~0c", tokens: []string{"a/b", "~c"}},
		{in: "/~01", tokens: []string{"~1"}}, // ~1 is replaced first: "~01" is "~1", not "/"
		{in: "/", tokens: []string{""}},      // the member named ""
		{in: "/a//b", tokens: []string{"a", "", "b"}},
		{in: "#/a%2Cb/c%3Bd", tokens: []string{"a,b", "c;d"}},
		{in: "#/a~1b%20c", tokens: []string{"a/b c"}},
		{in: "a", err: true},
		{in: "userIds", err: true},
		{in: "/a~2", err: true},
		{in: "/a~", err: true},
		{in: "#/%zz", err: true},
		{in: "#a", err: true},
	} {
		p, err := ParsePointer(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParsePointer(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && !slices.Equal(p.tokens, tc.tokens) {
			t.Errorf("ParsePointer(%q) = %q, want %q", tc.in, p.tokens, tc.tokens)
		}
	}
}

func TestShapeCheck(t *testing.T) {
	for _, tc := range []struct {
		shape Shape
		err   string // a part of the error; "" for none
	}{
		{Shape{}, ""},
		{Shape{Recipients: "/userIds", Value: "json"}, ""},
		{Shape{Recipients: "/recipient/id", Keep: true}, ""},
		{Shape{Recipients: "#/a%2Cb"}, ""},
		{Shape{Recipients: "key", Value: ValueRawString}, ""},
		{Shape{Recipients: "header:user-id", Value: ValueRawBase64}, ""},
		{Shape{Recipients: "user"}, "JSON Pointer"},
		{Shape{Recipients: "/a~2"}, "~0"},
		{Shape{Recipients: "#"}, "whole value"},
		{Shape{Recipients: "header:"}, "header name"},
		{Shape{Recipients: "header:event-type"}, "names the event"},
		{Shape{Value: "xml"}, "raw-string"},
		{Shape{Value: ValueRawString}, "recipients=key"},
		{Shape{Recipients: "/to", Value: ValueRawBase64}, "recipients=key"},
		{Shape{Recipients: "key", Keep: true}, "strip=false"},
	} {
		err := tc.shape.Check()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc.shape, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: error %v, want one saying %q", tc.shape, err, tc.err)
		}
	}
}

// shapedDecoder decodes the topics of TestDecodeShaped.
func shapedDecoder(t *testing.T) *Decoder {
	t.Helper()
	d, err := NewTopicDecoder(NewValidator(), map[string]Topic{
		"nested":  {Event: "ev", Shape: Shape{Recipients: "/recipient/id"}},
		"list":    {Event: "ev", Shape: Shape{Recipients: "/audience/userIds"}},
		"keep":    {Event: "ev", Shape: Shape{Recipients: "/audience/userIds", Keep: true}},
		"entry":   {Event: "ev", Shape: Shape{Recipients: "/to/1"}},
		"slash":   {Event: "ev", Shape: Shape{Recipients: "/a~1b"}},
		"keyed":   {Event: "ev", Shape: Shape{Recipients: "key"}},
		"headed":  {Event: "ev", Shape: Shape{Recipients: "header:user-id"}},
		"rawtext": {Event: "ev", Shape: Shape{Recipients: "key", Value: ValueRawString}},
		"rawb64":  {Event: "ev", Shape: Shape{Recipients: "header:to", Value: ValueRawBase64}},
		"default": {Event: EventConceptMastered, Shape: Shape{Keep: true}},
		"builtin": {Event: EventConceptMastered, Shape: Shape{Recipients: "key"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func hdrs(kv ...string) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return out
}

// TestDecodeShaped: each recipient source delivers to exactly the users the record names there,
// with the data the topic's Shape says.
func TestDecodeShaped(t *testing.T) {
	d := shapedDecoder(t)
	for _, tc := range []struct {
		name    string
		rec     kgo.Record
		users   []string
		data    string
		code    string // a DecodeError's code instead
		details string // a part of its text
	}{
		{name: "nested string", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":"u1","name":"A"},"x":1}`)},
			users: []string{"u1"}, data: `{"recipient":{"name":"A"},"x":1}`},
		{name: "nested, its only member", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":"u1"}}`)},
			users: []string{"u1"}, data: `{"recipient":{}}`},
		{name: "nested, last member", rec: kgo.Record{Topic: "nested", Value: []byte(`{"x":[1,{"id":"no"}],"recipient":{"name":"A","id":"u1"}}`)},
			users: []string{"u1"}, data: `{"x":[1,{"id":"no"}],"recipient":{"name":"A"}}`},
		{name: "nested, middle member", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"a":1,"id":"u1","b":"}"}}`)},
			users: []string{"u1"}, data: `{"recipient":{"a":1,"b":"}"}}`},
		{name: "escaped name and ID", rec: kgo.Record{Topic: "nested", Value: []byte(`{"re\u0063ipient":{"id":"\u0061lice"}}`)},
			users: []string{"alice"}, data: `{"re\u0063ipient":{}}`},
		{name: "array with spaces and a repeat", rec: kgo.Record{Topic: "list", Value: []byte(` { "audience" : { "userIds" : [ "a", "b", "a" ] } , "m" : "hi" } `)},
			users: []string{"a", "b"}, data: `{"audience":{},"m":"hi"}`},
		{name: "kept", rec: kgo.Record{Topic: "keep", Value: []byte(`{"audience":{"userIds":["a"]}, "m":1}`)},
			users: []string{"a"}, data: `{"audience":{"userIds":["a"]},"m":1}`},
		{name: "array entry", rec: kgo.Record{Topic: "entry", Value: []byte(`{"to":["x","y","z"]}`)},
			users: []string{"y"}, data: `{"to":["x","z"]}`},
		{name: "array entry, last", rec: kgo.Record{Topic: "entry", Value: []byte(`{"to":["x","y"]}`)},
			users: []string{"y"}, data: `{"to":["x"]}`},
		{name: "escaped slash in the pointer", rec: kgo.Record{Topic: "slash", Value: []byte(`{"a":"no","a/b":"u"}`)},
			users: []string{"u"}, data: `{"a":"no"}`},
		{name: "key", rec: kgo.Record{Topic: "keyed", Key: []byte("user-42"), Value: []byte(`{"userIds":["not-me"],"m":1}`)},
			users: []string{"user-42"}, data: `{"userIds":["not-me"],"m":1}`},
		{name: "headers", rec: kgo.Record{Topic: "headed", Headers: hdrs("user-id", "a", "other", "c", "User-Id", "d", "user-id", "b"), Value: []byte(`{}`)},
			users: []string{"a", "b"}, data: `{}`},
		{name: "raw string", rec: kgo.Record{Topic: "rawtext", Key: []byte("u"), Value: []byte("héllo \"q\"\n")},
			users: []string{"u"}, data: `"héllo \"q\"\n"`},
		{name: "raw string, empty", rec: kgo.Record{Topic: "rawtext", Key: []byte("u")},
			users: []string{"u"}, data: `""`},
		{name: "raw base64", rec: kgo.Record{Topic: "rawb64", Headers: hdrs("to", "u"), Value: []byte{0xff, 0, 1}},
			users: []string{"u"}, data: `"/wAB"`},
		{name: "default pointer kept", rec: kgo.Record{Topic: "default", Value: []byte(`{"conceptId":"c","userIds":["a"],"conceptName":"n","masteryLevel":1}`)},
			users: []string{"a"}, data: `{"conceptId":"c","userIds":["a"],"conceptName":"n","masteryLevel":1}`},
		{name: "built-in event by key: no schema", rec: kgo.Record{Topic: "builtin", Key: []byte("a"), Value: []byte(`{"conceptId":"c"}`)},
			users: []string{"a"}, data: `{"conceptId":"c"}`},

		{name: "a number at the pointer", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":42}}`)},
			code: "no-recipients", details: "/recipient/id is a number"},
		{name: "an object at the pointer", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":{"v":"u1"}}}`)},
			code: "no-recipients", details: "/recipient/id is an object"},
		{name: "null at the pointer", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":null}}`)},
			code: "no-recipients", details: "/recipient/id is null"},
		{name: "a boolean at the pointer", rec: kgo.Record{Topic: "list", Value: []byte(`{"audience":{"userIds":true}}`)},
			code: "no-recipients", details: "is a boolean"},
		{name: "an empty array", rec: kgo.Record{Topic: "list", Value: []byte(`{"audience":{"userIds":[]}}`)},
			code: "no-recipients", details: "empty array"},
		{name: "nothing at the pointer", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"name":"A"}}`)},
			code: "no-recipients", details: "nothing at /recipient/id"},
		{name: "through a string", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":"u1"}`)},
			code: "no-recipients", details: "/recipient is a string"},
		{name: "past the array", rec: kgo.Record{Topic: "entry", Value: []byte(`{"to":["x"]}`)},
			code: "no-recipients", details: "nothing at /to/1"},
		{name: "a number in the array", rec: kgo.Record{Topic: "list", Value: []byte(`{"audience":{"userIds":["a",7]}}`)},
			code: "invalid-recipients", details: "/audience/userIds/1 is a number"},
		{name: "an empty ID", rec: kgo.Record{Topic: "list", Value: []byte(`{"audience":{"userIds":["a",""]}}`)},
			code: "invalid-recipients", details: "empty"},
		{name: "a long ID", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":"` + strings.Repeat("x", MaxUserIDLen+1) + `"}}`)},
			code: "invalid-recipients", details: "at most 256"},
		{name: "a repeated member", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":"a"},"recipient":{"id":"b"}}`)},
			code: "invalid-recipients", details: "more than once"},
		{name: "a case variant", rec: kgo.Record{Topic: "nested", Value: []byte(`{"Recipient":{"id":"a"}}`)},
			code: "invalid-recipients", details: "only in case"},
		{name: "an array value", rec: kgo.Record{Topic: "keyed", Key: []byte("u"), Value: []byte(`["a"]`)},
			code: "invalid-value", details: "must be an object, not array"},
		{name: "not JSON", rec: kgo.Record{Topic: "nested", Value: []byte(`{"recipient":`)},
			code: "invalid-json"},
		{name: "not UTF-8", rec: kgo.Record{Topic: "keyed", Key: []byte("u"), Value: []byte("{\"m\":\"\xff\"}")},
			code: "invalid-json", details: "UTF-8"},
		{name: "no key", rec: kgo.Record{Topic: "keyed", Value: []byte(`{}`)},
			code: "no-recipients", details: "no key"},
		{name: "a key that is not UTF-8", rec: kgo.Record{Topic: "keyed", Key: []byte{0xff}, Value: []byte(`{}`)},
			code: "invalid-recipients", details: "UTF-8"},
		{name: "no such header", rec: kgo.Record{Topic: "headed", Headers: hdrs("User-Id", "a"), Value: []byte(`{}`)},
			code: "no-recipients", details: `no "user-id" header`},
		{name: "an empty header", rec: kgo.Record{Topic: "headed", Headers: hdrs("user-id", "a", "user-id", ""), Value: []byte(`{}`)},
			code: "invalid-recipients", details: "user ID 1"},
		{name: "raw string not UTF-8", rec: kgo.Record{Topic: "rawtext", Key: []byte("u"), Value: []byte("ok\xfe")},
			code: "invalid-value", details: "at byte 2"},
		{name: "a tenfold-thousand-and-one headers", rec: kgo.Record{Topic: "rawb64", Headers: manyHeaders("to", MaxUserIDs+1)},
			code: "invalid-recipients", details: "at most 10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := d.Decode(&tc.rec)
			if tc.code != "" {
				de, ok := err.(*DecodeError)
				if !ok || de.Code != tc.code || !strings.Contains(de.Error(), tc.details) {
					t.Fatalf("got %v, %v; want a DecodeError %s saying %q", ev, err, tc.code, tc.details)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ev.UserIDs, tc.users) || string(ev.Data) != tc.data {
				t.Errorf("got users %q data %s, want %q %s", ev.UserIDs, ev.Data, tc.users, tc.data)
			}
			if !json.Valid(ev.Data) {
				t.Errorf("data %s is not JSON", ev.Data)
			}
		})
	}
}

func manyHeaders(key string, n int) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, n)
	for i := range out {
		out[i] = kgo.RecordHeader{Key: key, Value: []byte("u" + strings.Repeat("x", i%7))}
	}
	return out
}

// TestMayName: the pre-filter of a replay never skips a record that names the user, wherever its
// topic names users, escaped or not; it skips those that cannot.
func TestMayName(t *testing.T) {
	d := shapedDecoder(t)
	d.topics["plain"] = NewDecoder(nil, map[string]string{"plain": "ev"}).topics["plain"]
	for _, tc := range []struct {
		rec  kgo.Record
		user string
		want bool
	}{
		{kgo.Record{Topic: "plain", Value: []byte(`{"userIds":["alice"]}`)}, "alice", true},
		{kgo.Record{Topic: "plain", Value: []byte(`{"userIds":["bob"]}`)}, "alice", false},
		{kgo.Record{Topic: "plain", Value: []byte(`{"userIds":["\u0061lice"]}`)}, "alice", true},
		{kgo.Record{Topic: "plain", Value: []byte(`{"userIds":["a\"b"]}`)}, `a"b`, true},
		{kgo.Record{Topic: "plain", Value: []byte(`{"userIds":["x/y"]}`)}, "x/y", true},
		{kgo.Record{Topic: "plain", Value: []byte(`{"userIds":["x\/y"]}`)}, "x/y", true},
		{kgo.Record{Topic: "nested", Value: []byte(`{"recipient":{"id":"alice"}}`)}, "alice", true},
		{kgo.Record{Topic: "keyed", Key: []byte("alice"), Value: []byte(`{"m":"bob"}`)}, "alice", true},
		{kgo.Record{Topic: "keyed", Key: []byte("bob"), Value: []byte(`{"m":"alice"}`)}, "alice", false},
		{kgo.Record{Topic: "keyed", Key: []byte("alice2"), Value: []byte(`{}`)}, "alice", false},
		{kgo.Record{Topic: "headed", Headers: hdrs("user-id", "bob", "user-id", "alice"), Value: []byte(`{}`)}, "alice", true},
		{kgo.Record{Topic: "headed", Headers: hdrs("user-id", "bob", "other", "alice"), Value: []byte(`{"alice":1}`)}, "alice", false},
		{kgo.Record{Topic: "rawb64", Headers: hdrs("to", "alice"), Value: []byte{0xff}}, "alice", true},
		{kgo.Record{Topic: "unknown", Value: []byte(`{"userIds":["alice"]}`)}, "alice", false},
	} {
		if got := d.MayName(&tc.rec, []byte(tc.user)); got != tc.want {
			t.Errorf("MayName(%s %q %v %s, %q) = %v, want %v", tc.rec.Topic, tc.rec.Key, tc.rec.Headers, tc.rec.Value, tc.user, got, tc.want)
		}
		if ev, err := d.Decode(&tc.rec); err == nil && slices.Contains(ev.UserIDs, tc.user) && !d.MayName(&tc.rec, []byte(tc.user)) {
			t.Errorf("%s %s names %q but would be skipped", tc.rec.Topic, tc.rec.Value, tc.user)
		}
	}
}

// TestNewTopicDecoderRefusesAnInconsistentShape names the topic.
func TestNewTopicDecoderRefusesAnInconsistentShape(t *testing.T) {
	_, err := NewTopicDecoder(NewValidator(), map[string]Topic{"chat": {Event: "m", Shape: Shape{Value: ValueRawString}}})
	if err == nil || !strings.Contains(err.Error(), "topic chat") {
		t.Fatalf("got %v, want an error naming topic chat", err)
	}
}

// BenchmarkDecodeShaped: a nested pointer to 1 and 1,000 users, and a keyed topic.
func BenchmarkDecodeShaped(b *testing.B) {
	d, err := NewTopicDecoder(NewValidator(), map[string]Topic{
		"list":  {Event: "ev", Shape: Shape{Recipients: "/audience/userIds"}},
		"keyed": {Event: "ev", Shape: Shape{Recipients: "key"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	users := make([]string, 1000)
	for i := range users {
		users[i] = "user-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
	}
	js, _ := json.Marshal(users)
	for name, rec := range map[string]*kgo.Record{
		"pointer 1 user":     {Topic: "list", Value: []byte(`{"conceptId":"c1","audience":{"userIds":["user-1"]},"conceptName":"JavaScript Arrays","masteryLevel":0.9}`)},
		"pointer 1000 users": {Topic: "list", Value: []byte(`{"conceptId":"c1","audience":{"userIds":` + string(js) + `},"conceptName":"JavaScript Arrays","masteryLevel":0.9}`)},
		"key":                {Topic: "keyed", Key: []byte("user-1"), Value: []byte(`{"conceptId":"c1","conceptName":"JavaScript Arrays","masteryLevel":0.9}`)},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := d.Decode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
