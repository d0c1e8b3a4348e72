package notification

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestWithoutRecipients(t *testing.T) {
	for in, want := range map[string]string{
		`{"conceptId":"c","userIds":["a","b"],"conceptName":"n"}`: `{"conceptId":"c","conceptName":"n"}`,
		`{"userIds":["a"]}`:                                               `{}`,
		`{"userIds":["a"],"x":1}`:                                         `{"x":1}`,
		`{"x":{"userIds":["nested stays"]},"userIds":[]}`:                 `{"x":{"userIds":["nested stays"]}}`,
		`{"s":"a,\"}\",{[","UserIDs":["a"],"n":-1.5e3,"t":true,"z":null}`: `{"s":"a,\"}\",{[","n":-1.5e3,"t":true,"z":null}`,
		`{"user\u0049ds":["a"],"k":[1,[2,{"a":"]"}]]}`:                    `{"k":[1,[2,{"a":"]"}]]}`,
		`{}`:  `{}`,
		`[1]`: `[1]`,
		`"x"`: `"x"`,
	} {
		if got := string(withoutRecipients([]byte(in))); got != want {
			t.Errorf("withoutRecipients(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestWithoutMembers(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"ttlMs":5,"b":{"ttlMs":6},"expiresAt":"x"}`: `{"a":1,"b":{"ttlMs":6}}`,
		`{"ttl\u004ds":5,"TTLMs":5}`:                        `{"TTLMs":5}`, // exact names only, after unescaping
		`{"ttlMs":5}`:                                       `{}`,
		`[1]`:                                               `[1]`,
	} {
		if got := string(WithoutMembers([]byte(in), "ttlMs", "expiresAt")); got != want {
			t.Errorf("WithoutMembers(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzWithoutRecipients: for any JSON object, the result is valid JSON equal to the object
// without the members encoding/json would read as userIds.
func FuzzWithoutRecipients(f *testing.F) {
	f.Add(`{"conceptId":"c","userIds":["a","b"],"conceptName":"n","masteryLevel":0.5}`)
	f.Add(`{"a":{"userIds":1},"USERIDS":"x","b":"\"}"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) != nil || m == nil {
			return
		}
		var compact bytes.Buffer
		json.Compact(&compact, []byte(s))
		out := withoutRecipients(compact.Bytes())
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s -> %s: not JSON: %v", s, out, err)
		}
		for k := range m {
			if strings.EqualFold(k, "userIds") {
				delete(m, k)
			}
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s -> %s, want %v", s, out, m)
		}
	})
}

// TestWithoutRecipientsKeepsNoRoomForTheList: an event kept in the history must not hold the
// recipient list's bytes alive through its data's capacity (a record naming 1,000 users kept
// 39 KB for a 139-byte payload).
func TestWithoutRecipientsKeepsNoRoomForTheList(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%04d", i)
	}
	list, _ := json.Marshal(ids)
	got := withoutRecipients([]byte(`{"conceptId":"c","userIds":` + string(list) + `,"conceptName":"n"}`))
	if string(got) != `{"conceptId":"c","conceptName":"n"}` {
		t.Fatalf("got %s", got)
	}
	if cap(got) > 2*len(got)+256 {
		t.Errorf("cap %d for %d bytes", cap(got), len(got))
	}
}
