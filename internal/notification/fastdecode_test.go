package notification

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fastSeeds are record values around every rule of the fast path: valid ones, and for each rule
// one that breaks it.
var fastSeeds = []string{
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"JavaScript Arrays","masteryLevel":0.9}`,
	`{"bench":"r1.42.1234567","conceptId":"c42","userIds":["user-17"],"conceptName":"n","masteryLevel":1}`,
	`{"conceptId":"c1","userIds":["u1","u2","u1"],"conceptName":"n","masteryLevel":0,"extra":{"a":[1,2,{"b":null}],"c":"\u00e9\n"}}`,
	`{"userIds":["u1"],"conceptId":"c1","conceptName":"n","masteryLevel":-0}`,
	`{"conceptId":"c1","conceptName":"n","masteryLevel":0.5,"userIds":["u1"]}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":1.0000000000000001}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":1e400}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":"0.5"}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":null}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":01}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":2}`,
	`{"conceptId":"c1","userIds":[],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":null,"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":[""],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u\u0031"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1",2],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["` + strings.Repeat("x", 257) + `"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["` + strings.Repeat("x", 256) + `"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"` + strings.Repeat("é", 256) + `","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"` + strings.Repeat("é", 257) + `","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n"}`,
	`{"conceptId":"c1","userIds":["u1"],"USERIDS":["u2"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"userIds":["u2"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","uſerIds":["u2"],"userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","user\u0049ds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1", "userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	` {"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}` + "\n",
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}x`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"x":tru}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"x":"a` + "\x01" + `"}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"x":"\x"}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n\xff","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"sessionId":"s1","userIds":["u1","u2"],"message":"starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00.123+01:00"}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"2026-02-30T10:00:00Z"}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"tomorrow"}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"say \"hi\"","scheduledTime":"2026-11-29T10:00:00Z"}`,
	`{"userIds":["u1"],"text":"hello","n":3}`,
	`{"userIds":["u1"]}`,
	`{}`,
	`[]`,
	`null`,
	``,
	// Refusals the scan is sure of, and the unsure ones, for DecodeForDelivery's verdict.
	`{"conceptId":"poison-1","userIds":[],"conceptName":"poison","masteryLevel":2}`,
	`{"conceptId":"c1","userIds":[ ],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":[ "u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1" ,"u2"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1",],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1",null],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u\u0031"],"conceptName":"n","masteryLevel":2}`,
	`{"conceptId":"c1","userIds":["` + strings.Repeat("x", 250) + `\u0078\u0078"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"userIds":[]}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1}`,
	`{"conceptId":"c1","user\u0049ds":[],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","uſerIds":[],"userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"userIds":["u2"]}`,
	`{"conceptId":"c\u0031","userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c\u0031","userIds":["u1"],"conceptName":"n","masteryLevel":5}`,
	`{"conceptId":"c1","userIds":"u1","conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":7,"userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":null,"userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":true}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":[0.5]}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5` + "\n",
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5} {}`,
	`{"conceptId":"c1" "userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":0.5,"s":"` + "\t" + `"}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":""}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"m","scheduledTime":"2026-11-29T10:00:00\u005a"}`,
	`{"sessionId":"s1","userIds":["u1"],"message":"m"}`,
	`{"userIds":["u1"],"USERIDS":[]}`,
	`{"userIds":[""]}`,
	`{"userIds":["u1"]`,
	`"u1"`,
	`{"conceptId":"c1","userIds":["u1"],"conceptName":"n` + "\xff" + `","masteryLevel":0.5}`,
}

// fastDecoders are two Decoders of the same topics: today's reflective path alone, and Decode
// with its fast path.
func fastDecoders(keep bool) (reflective, fast *Decoder) {
	topics := map[string]Topic{
		TopicSessions: {Event: EventSessionStartingSoon, Shape: Shape{Keep: keep}},
		TopicConcepts: {Event: EventConceptMastered, Shape: Shape{Keep: keep}},
		"other":       {Event: "other-event", Shape: Shape{Keep: keep}},
	}
	reflective, _ = NewTopicDecoder(NewValidator(), topics)
	reflective.reflective = true
	fast, _ = NewTopicDecoder(NewValidator(), topics)
	return reflective, fast
}

// sameDecode fails t unless both decoders accept or refuse value on topic alike: the same
// error text, or the same Event.
func sameDecode(t *testing.T, reflective, fast *Decoder, topic, value string) {
	t.Helper()
	rec := &kgo.Record{Topic: topic, Partition: 1, Offset: 7, Value: []byte(value)}
	want, werr := reflective.Decode(rec)
	got, gerr := fast.Decode(rec)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		t.Fatalf("%s %q: error %v, reflective path %v", topic, value, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %q:\n got %+v\nwant %+v", topic, value, got, want)
	}
}

// TestFastDecodeMatchesReflective runs the seeds of FuzzFastDecode on every topic.
func TestFastDecodeMatchesReflective(t *testing.T) {
	for _, keep := range []bool{false, true} {
		reflective, fast := fastDecoders(keep)
		for _, v := range fastSeeds {
			for _, topic := range []string{TopicSessions, TopicConcepts, "other"} {
				sameDecode(t, reflective, fast, topic, v)
			}
		}
	}
}

// TestFastPathTakesPlainRecords: the fast path is not a no-op; plain records never reach the
// reflective path.
func TestFastPathTakesPlainRecords(t *testing.T) {
	for _, tc := range []struct{ event, value string }{
		{EventConceptMastered, fastSeeds[0]},
		{EventSessionStartingSoon, `{"sessionId":"s1","userIds":["u1","u2"],"message":"m","scheduledTime":"2026-11-29T10:00:00Z"}`},
		{"other-event", `{"userIds":["u1"],"text":"hello"}`},
	} {
		ev, verdict := fastDecodeEvent(&kgo.Record{Topic: "t", Value: []byte(tc.value)}, tc.event, false)
		if ev == nil || verdict != fastValid || len(ev.UserIDs) == 0 || strings.Contains(string(ev.Data), "userIds") {
			t.Errorf("%s %s: fast path gave %+v (verdict %d)", tc.event, tc.value, ev, verdict)
		}
	}
}

// sameVerdict fails t unless DecodeForDelivery (on fast) accepts exactly what Decode (on
// reflective, the full decoder) accepts, with the same Event, and refuses the rest: with
// ErrInvalid (the scan's verdict) or with Decode's very error. It reports whether the refusal
// was the scan's.
func sameVerdict(t *testing.T, reflective, fast *Decoder, topic, value string) (scan bool) {
	t.Helper()
	rec := &kgo.Record{Topic: topic, Partition: 1, Offset: 7, Value: []byte(value)}
	want, werr := reflective.Decode(rec)
	got, gerr := fast.DecodeForDelivery(rec)
	switch {
	case werr == nil && gerr != nil:
		t.Fatalf("%s %q: delivery skips a valid record: %v", topic, value, gerr)
	case werr != nil && gerr == nil:
		t.Fatalf("%s %q: delivery takes a record Decode refuses (%v): %+v", topic, value, werr, got)
	case errors.Is(gerr, ErrInvalid):
		return true
	case fmt.Sprint(werr) != fmt.Sprint(gerr):
		t.Fatalf("%s %q: error %v, Decode's %v", topic, value, gerr, werr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%s %q:\n got %+v\nwant %+v", topic, value, got, want)
	}
	return false
}

// TestDeliveryVerdictMatchesDecode runs the seeds of FuzzFastDecode through DecodeForDelivery
// on every topic, and checks that the scan's verdict is not a no-op (the bench's poison record
// is refused by the scan) nor the whole story (the unsure causes go the reflective way).
func TestDeliveryVerdictMatchesDecode(t *testing.T) {
	for _, keep := range []bool{false, true} {
		reflective, fast := fastDecoders(keep)
		for _, v := range fastSeeds {
			for _, topic := range []string{TopicSessions, TopicConcepts, "other"} {
				sameVerdict(t, reflective, fast, topic, v)
			}
		}
	}
	reflective, fast := fastDecoders(false)
	for _, tc := range []struct {
		value string
		scan  bool
	}{
		{`{"conceptId":"poison-1","userIds":[],"conceptName":"poison","masteryLevel":2}`, true},
		{`{"conceptId":"c1","userIds":["u1"],"conceptName":"n","masteryLevel":2}`, true},
		{`{"conceptId":"c1","userIds":["u1"],"conceptName":"n"}`, true},
		{`{"conceptId":"c1","userIds":["u1"],"USERIDS":["u2"],"conceptName":"n","masteryLevel":0.5}`, true},
		{`{"conceptId":"c1","userIds":["u1"],"conceptName":"n` + "\xff" + `","masteryLevel":0.5}`, true},
		{`{"conceptId":"c1", "userIds":["u1"],"conceptName":"n","masteryLevel":2}`, true}, // whitespace outside the list is followed
		{`[]`, true},
		{`{"conceptId":"c1","userIds":[ ],"conceptName":"n","masteryLevel":0.5}`, false},
		{`{"conceptId":"c1","userIds":["u\u0031"],"conceptName":"n","masteryLevel":2}`, false},
		{`{"conceptId":"c1","user\u0049ds":[],"conceptName":"n","masteryLevel":0.5}`, false},
		{`{"conceptId":"c1","uſerIds":[],"userIds":["u1"],"conceptName":"n","masteryLevel":0.5}`, false},
		{`{"conceptId":"c1","userIds":["u1"],"x":` + strings.Repeat("[", fastMaxDepth+1) + strings.Repeat("]", fastMaxDepth+1) + `,"masteryLevel":2}`, false},
	} {
		if got := sameVerdict(t, reflective, fast, TopicConcepts, tc.value); got != tc.scan {
			t.Errorf("%s: refused by the scan %v, want %v", tc.value, got, tc.scan)
		}
	}
}

// TestFastSchemasFollowTags: the fast path's schemas name the members of the structs Decode
// validates with, in order, and their validate tags are those the fast path implements.
func TestFastSchemasFollowTags(t *testing.T) {
	tags := map[fastKind]string{
		fastUsers:    "required,min=1,max=10000,userids",
		fastUnit:     "required,gte=0,lte=1",
		fastDateTime: "required,rfc3339",
	}
	for _, tc := range []struct {
		typ    reflect.Type
		schema []fastField
	}{
		{reflect.TypeFor[SessionStartingSoon](), fastSession},
		{reflect.TypeFor[ConceptMastered](), fastConcept},
		{reflect.TypeFor[addressed](), fastAddressed},
	} {
		if tc.typ.NumField() != len(tc.schema) {
			t.Fatalf("%v has %d fields, the fast schema %d", tc.typ, tc.typ.NumField(), len(tc.schema))
		}
		for i, f := range tc.schema {
			sf := tc.typ.Field(i)
			want := tags[f.kind]
			if f.kind == fastString {
				want = fmt.Sprintf("required,max=%d", f.max)
			}
			if jsonName(sf) != f.name || sf.Tag.Get("validate") != want {
				t.Errorf("%v.%s: json %q validate %q; fast schema %q %q", tc.typ, sf.Name, jsonName(sf), sf.Tag.Get("validate"), f.name, want)
			}
		}
	}
}

// FuzzFastDecode: the fast path and today's reflective decoder agree on every value: the same
// accept or refuse, the same error text, the same Event; and delivery's verdict
// (DecodeForDelivery, see sameVerdict) is the full decoder's: no valid record skipped, no invalid
// one delivered.
func FuzzFastDecode(f *testing.F) {
	for _, v := range fastSeeds {
		for topic := range 3 {
			f.Add(v, uint8(topic), false)
		}
	}
	f.Add(fastSeeds[0], uint8(1), true)
	decoders := map[bool][2]*Decoder{}
	for _, keep := range []bool{false, true} {
		r, d := fastDecoders(keep)
		decoders[keep] = [2]*Decoder{r, d}
	}
	topics := []string{TopicSessions, TopicConcepts, "other"}
	f.Fuzz(func(t *testing.T, value string, topic uint8, keep bool) {
		d := decoders[keep]
		sameDecode(t, d[0], d[1], topics[int(topic)%len(topics)], value)
		sameVerdict(t, d[0], d[1], topics[int(topic)%len(topics)], value)
	})
}
