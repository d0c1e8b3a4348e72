package notification

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func fields(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field+":"+f.Code)
	}
	slices.Sort(out)
	return out
}

func TestValidateSessionStartingSoon(t *testing.T) {
	v := NewValidator()
	for _, tc := range []struct {
		name, body string
		want       []string // field:code, sorted; nil = valid
	}{
		{"valid", `{"sessionId":"s1","userIds":["u1","u2"],"message":"starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`, nil},
		{"valid with offset and fraction", `{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00.123+01:00"}`, nil},
		{"everything missing", `{}`, []string{"message:required", "scheduledTime:required", "sessionId:required", "userIds:required"}},
		{"empty userIds", `{"sessionId":"s1","userIds":[],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, []string{"userIds:min"}},
		{"empty user id", `{"sessionId":"s1","userIds":["u1",""],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, []string{"userIds[1]:required"}},
		{"user id too long", `{"sessionId":"s1","userIds":["u1","u2","` + strings.Repeat("x", 257) + `"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, []string{"userIds[2]:max"}},
		{"scheduledTime tomorrow", `{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"tomorrow"}`, []string{"scheduledTime:rfc3339"}},
		{"userIds not a list", `{"sessionId":"s1","userIds":"u1","message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, []string{"userIds:type"}},
		{"user id a number", `{"sessionId":"s1","userIds":["u1",7],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, []string{"userIds[1]:type"}},
		{"unknown field", `{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z","extra":1}`, []string{"extra:unknown_field"}},
		{"every failure at once", `{"sessionId":7,"userIds":"u1","scheduledTime":"tomorrow","extra":1}`,
			[]string{"extra:unknown_field", "message:required", "scheduledTime:rfc3339", "sessionId:type", "userIds:type"}},
		{"null is missing", `{"sessionId":null,"userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, []string{"sessionId:required"}},
		{"null document", `null`, []string{":type"}},
		{"truncated", `{"sessionId":"s1","userIds":["u1"`, []string{":syntax"}},
		{"trailing garbage", `{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"} x`, []string{":syntax"}},
		{"not an object", `[1,2]`, []string{":type"}},
		{"empty", ``, []string{":syntax"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s SessionStartingSoon
			err := v.DecodeJSON([]byte(tc.body), &s, true)
			if got := fields(err); !slices.Equal(got, tc.want) {
				t.Errorf("fields = %v (err %v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestValidateConceptMastered(t *testing.T) {
	v := NewValidator()
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"valid", `{"conceptId":"c1","userIds":["u1"],"conceptName":"JavaScript Arrays","masteryLevel":0.92}`, nil},
		{"mastery 0 is a value", `{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0}`, nil},
		{"mastery 1 is a value", `{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":1}`, nil},
		{"mastery 1.7", `{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":1.7}`, []string{"masteryLevel:lte"}},
		{"mastery negative", `{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":-0.1}`, []string{"masteryLevel:gte"}},
		{"mastery missing", `{"conceptId":"c1","userIds":["u1"],"conceptName":"n"}`, []string{"masteryLevel:required"}},
		{"mastery a string", `{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":"high"}`, []string{"masteryLevel:type"}},
		{"too many users", `{"conceptId":"c1","userIds":[` + strings.Repeat(`"u",`, 10000) + `"u"],"conceptName":"n","masteryLevel":1}`, []string{"userIds:max"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c ConceptMastered
			err := v.DecodeJSON([]byte(tc.body), &c, true)
			if got := fields(err); !slices.Equal(got, tc.want) {
				t.Errorf("fields = %v (err %v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestDecodeRecord(t *testing.T) {
	d := NewDecoder(NewValidator(), map[string]string{
		TopicConcepts: EventConceptMastered, TopicSessions: EventSessionStartingSoon, "custom": "custom-event",
	})
	concept := `{"conceptId":"c1","userIds":["u1","u2","u1"],"conceptName":"n","masteryLevel":0.5,"newField":true}`
	for _, tc := range []struct {
		name    string
		rec     *kgo.Record
		event   string
		users   []string
		errCode string
	}{
		{"concept with unknown field kept", &kgo.Record{Topic: TopicConcepts, Value: []byte(concept)}, EventConceptMastered, []string{"u1", "u2"}, ""},
		{"header overrides the event", &kgo.Record{Topic: TopicConcepts, Value: []byte(`{"userIds":["u9"],"anything":1}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte("badge-earned")}}}, "badge-earned", []string{"u9"}, ""},
		{"header naming a known event applies its schema", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u9"]}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte(EventConceptMastered)}}}, "", nil, "invalid-value"},
		{"binary header is fine", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte{0, 0xff, 0x80}}}}, "custom-event", []string{"u1"}, ""},
		{"truncated JSON", &kgo.Record{Topic: TopicConcepts, Value: []byte(`{"conceptId":"c1","userIds":["u1"`)}, "", nil, "invalid-json"},
		{"empty value", &kgo.Record{Topic: TopicConcepts}, "", nil, "invalid-json"},
		{"userIds not a list", &kgo.Record{Topic: TopicConcepts, Value: []byte(`{"conceptId":"c1","userIds":"u1","conceptName":"n","masteryLevel":0.5}`)}, "", nil, "invalid-value"},
		{"mastery 1.7", &kgo.Record{Topic: TopicConcepts, Value: []byte(`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":1.7}`)}, "", nil, "invalid-value"},
		{"empty userIds", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":[]}`)}, "", nil, "invalid-value"},
		{"unmapped topic", &kgo.Record{Topic: "elsewhere", Value: []byte(`{"userIds":["u"]}`)}, "", nil, "unknown-topic"},
		{"invalid UTF-8", &kgo.Record{Topic: "custom", Value: []byte("{\"userIds\":[\"u1\"],\"name\":\"bad\xff\"}")}, "", nil, "invalid-json"},
		{"recipients under a case variant", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["bob"],"USERIDS":["alice"]}`)}, "", nil, "invalid-value"},
		{"recipients under a folded name", &kgo.Record{Topic: "custom", Value: []byte(`{"uſerIds":["alice"]}`)}, "", nil, "invalid-value"},
		{"recipients twice", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["bob"],"userIds":["alice"]}`)}, "", nil, "invalid-value"},
		{"escaped exact name is fine", &kgo.Record{Topic: "custom", Value: []byte(`{"user\u0049ds":["u1"],"meta":{"USERIDS":1,"userIds":2}}`)}, "custom-event", []string{"u1"}, ""},
		{"reserved Socket.IO event", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte("connect_error")}}}, "", nil, "invalid-event-type"},
		{"forged control event", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte("resync")}}}, "", nil, "invalid-event-type"},
		{"two event-type headers", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte("badge-earned")}, {Key: "trace", Value: []byte("t")},
				{Key: HeaderEventType, Value: []byte("badge-earned")}}}, "", nil, "invalid-event-type"},
		{"an empty event-type header beside another", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType}, {Key: HeaderEventType, Value: []byte("badge-earned")}}}, "", nil, "invalid-event-type"},
		{"event name with a newline", &kgo.Record{Topic: "custom", Value: []byte(`{"userIds":["u1"]}`),
			Headers: []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte("a\nb")}}}, "", nil, "invalid-event-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := d.Decode(tc.rec)
			if tc.errCode != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Code != tc.errCode {
					t.Fatalf("err = %v, want code %s", err, tc.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Name != tc.event || !slices.Equal(ev.UserIDs, tc.users) {
				t.Errorf("event %q users %v, want %q %v", ev.Name, ev.UserIDs, tc.event, tc.users)
			}
		})
	}
}

func TestDecodeCompactsTheValueAndSetsThePosition(t *testing.T) {
	d := NewDecoder(NewValidator(), map[string]string{TopicConcepts: EventConceptMastered})
	ev, err := d.Decode(&kgo.Record{Topic: TopicConcepts, Partition: 2, Offset: 41,
		Value: []byte("{ \"conceptId\": \"c1\",\n \"userIds\": [\"u1\"], \"conceptName\": \"n\", \"masteryLevel\": 1 }")})
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Data) != `{"conceptId":"c1","conceptName":"n","masteryLevel":1}` {
		t.Errorf("data %s", ev.Data)
	}
	if ev.ID() != "concept-notifications:2:41" {
		t.Errorf("id %s", ev.ID())
	}
}

func TestDedup(t *testing.T) {
	long := make([]string, 40)
	for i := range long {
		long[i] = string(rune('a' + i%20))
	}
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"a"}, []string{"a"}},
		{[]string{"a", "b", "a", "c", "b"}, []string{"a", "b", "c"}},
		{long, long[:20]},
	} {
		if got := dedup(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("dedup(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	d := NewDecoder(NewValidator(), map[string]string{TopicConcepts: EventConceptMastered, TopicSessions: EventSessionStartingSoon})
	f.Add(`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`, TopicConcepts)
	f.Add(`{"sessionId":"s","userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`, TopicSessions)
	f.Add(`{"userIds":[`, TopicConcepts)
	f.Fuzz(func(t *testing.T, value, topic string) {
		ev, err := d.Decode(&kgo.Record{Topic: topic, Value: []byte(value)})
		if err == nil && (len(ev.UserIDs) == 0 || len(ev.Data) == 0) {
			t.Fatalf("accepted a record without users: %q", value)
		}
	})
}
func TestTypeErrorMessagesNameTheExpectedShape(t *testing.T) {
	v := NewValidator()
	for body, want := range map[string]string{
		`{"userIds":"u1"}`:    "userIds: must be an array of strings, not string",
		`{"userIds":["u",7]}`: "userIds[1]: must be a string, not number",
	} {
		var a addressed
		err := v.DecodeJSON([]byte(body), &a, true)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", body, err, want)
		}
	}
	// Nested shapes name the innermost misfit, in words that do not contradict themselves.
	type header struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	type shapes struct {
		Records []json.RawMessage `json:"records"`
		Headers []header          `json:"headers"`
		Configs map[string]string `json:"configs"`
		Count   *int32            `json:"count"`
		Level   *float64          `json:"level"`
	}
	for body, want := range map[string]string{
		`{"records":{}}`:                      "records: must be an array of JSON values, not object",
		`{"headers":[{"key":"a"},{"key":1}]}`: "headers[1].key: must be a string, not number",
		`{"configs":{"a.b":1}}`:               `configs["a.b"]: must be a string, not number`,
		`{"count":1.5}`:                       "count: must be an integer from -2147483648 to 2147483647, not 1.5",
		`{"count":99999999999}`:               "count: must be an integer from -2147483648 to 2147483647, not 99999999999",
		`{"level":1e400}`:                     "level: must be a number a 64-bit float can hold, not 1e400",
		`{"headers":[{"KEY":5}]}`:             "headers[0].KEY: must be a string, not number",
		`{"headers":[{"key":"a","extra":1}]}`: `headers: has an unknown field: unknown field "extra"`,
	} {
		var x shapes
		err := v.decodeFields([]byte(body), &x, true)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", body, err, want)
		}
	}
}

// FuzzDecodePathsAgree: DecodeJSON's one-pass path accepts exactly what its thorough path
// accepts, and both decode the same values.
func FuzzDecodePathsAgree(f *testing.F) {
	v := NewValidator()
	f.Add(`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`, true)
	f.Add(`{"CONCEPTID":"c1","userids":["u1"],"conceptName":"n","masteryLevel":0.5,"x":1}`, false)
	f.Add(`{"conceptId":"c1","userIds":["u1",""],"conceptName":"n","masteryLevel":1.5}`, true)
	f.Add(`null`, false)
	f.Add(`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":5,"MASTERYLEVEL":0.5}`, false)
	f.Fuzz(func(t *testing.T, doc string, strict bool) {
		var a, b ConceptMastered
		errA := v.DecodeJSON([]byte(doc), &a, strict)
		errB := v.decodeFields([]byte(doc), &b, strict)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("%s strict=%v: one pass %v, thorough %v", doc, strict, errA, errB)
		}
		if errA == nil && !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: %+v vs %+v", doc, a, b)
		}
	})
}

func BenchmarkDecodeRecord(b *testing.B) {
	d := NewDecoder(NewValidator(), map[string]string{TopicConcepts: EventConceptMastered})
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	js, _ := json.Marshal(users)
	for _, n := range []int{1, 1000} {
		value := []byte(`{"conceptId":"c1","userIds":` + string(js[:len(js)]) + `,"conceptName":"JavaScript Arrays","masteryLevel":0.9}`)
		if n == 1 {
			value = []byte(`{"conceptId":"c1","userIds":["user-1"],"conceptName":"JavaScript Arrays","masteryLevel":0.9}`)
		}
		b.Run(fmt.Sprintf("%d users", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := d.Decode(&kgo.Record{Topic: TopicConcepts, Value: value}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodePoison: a well-formed record that breaks the rules (the common poison record)
// is refused from the one-pass decode, without the field-by-field path.
func BenchmarkDecodePoison(b *testing.B) {
	d := NewDecoder(NewValidator(), map[string]string{TopicConcepts: EventConceptMastered})
	value := []byte(`{"conceptId":"poison-1","userIds":[],"conceptName":"poison","masteryLevel":2}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(&kgo.Record{Topic: TopicConcepts, Value: value}); err == nil {
			b.Fatal("accepted")
		}
	}
}

// TestRuleFailuresListEveryField: a well-formed document whose values break several rules gets
// every failing field, in the struct's field order, exactly as the field-by-field path lists them.
func TestRuleFailuresListEveryField(t *testing.T) {
	v := NewValidator()
	for _, doc := range []string{
		`{"conceptId":"","userIds":[],"conceptName":"n","masteryLevel":2}`,
		`{"conceptId":"c","userIds":["a",""],"conceptName":"","masteryLevel":-1}`,
	} {
		for _, strict := range []bool{false, true} {
			var fast, slow ConceptMastered
			got := v.DecodeJSON([]byte(doc), &fast, strict)
			want := v.decodeFields([]byte(doc), &slow, strict)
			if want == nil || got == nil || got.Error() != want.Error() {
				t.Errorf("%s strict %v: %v, want %v", doc, strict, got, want)
			}
		}
	}
}

func TestStrictMemberNamesListEachProblem(t *testing.T) {
	v := NewValidator()
	var c ConceptMastered
	err := v.DecodeJSON([]byte(`{"conceptId":"c","userIds":["pbob"],"USERIDS":["palice"],"conceptName":"n","masteryLevel":0.5,"conceptId":"d"}`), &c, true)
	if got, want := fields(err), []string{"USERIDS:name", "conceptId:duplicate"}; !slices.Equal(got, want) {
		t.Errorf("fields %v, want %v (err %v)", got, want, err)
	}
}
