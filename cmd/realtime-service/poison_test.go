package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// TestDeliverySkipsPoisonFromTheScanAndTheDutyWordsTheReason: delivery decodes with
// DecodeForDelivery, which refuses a record the fast scan finds invalid for sure without the
// reflective decode or an error text; the dead-letter duty decodes with Decode. On one partition
// of concept-notifications, poison records of both kinds (invalid for sure; left to the
// reflective path: whitespace in userIds, an escaped user ID) come among valid ones, some of
// which the scan is unsure about (whitespace, an escaped member name). Alice gets exactly the
// valid ones, in order, and nothing else (not the record whose "USERIDS" names bob too); each
// poison record is dead-lettered once, with exactly the code and reason Decode gives it; and
// delivery counted each as skipped.
func TestDeliverySkipsPoisonFromTheScanAndTheDutyWordsTheReason(t *testing.T) {
	const topic = "concept-notifications"
	s := startService(t, map[string]string{"KAFKA_EMBEDDED_PARTITIONS": "1"}) // records in order
	s.waitConsuming()
	_, frames := openWS(t, s, "alice", "")
	waitConnected(t, s, 1)

	valid := func(id, rest string) string {
		return `{"conceptId":"` + id + `",` + rest + `,"conceptName":"n","masteryLevel":0.5}`
	}
	records := []struct {
		value  string
		poison bool
		scan   bool // poison the scan refuses alone (DecodeForDelivery's ErrInvalid)
	}{
		{valid("v1", `"userIds":["alice"]`), false, false},
		{`{"conceptId":"p1","userIds":[],"conceptName":"poison","masteryLevel":2}`, true, true}, // the bench's
		{valid("v2", `"userIds": [ "alice" ]`), false, false},
		{`{"conceptId":"p2","userIds":["alice"],"conceptName":"n","masteryLevel":null}`, true, true},
		{`{"conceptId":"p3","userIds":["alice"],"conceptName":"n"}`, true, true},
		{valid("p4", `"userIds":["alice"],"USERIDS":["bob"]`), true, true},
		{valid("p5", `"userIds":["alice"],"userIds":["bob"]`), true, true},
		{`{"conceptId":"p6","userIds":["alice"],"conceptName":"cut`, true, true},
		{`["alice"]`, true, true},
		{valid("p8", `"userIds":"alice"`), true, true},
		{`{"conceptId":"p9","userIds":["alice"],"conceptName":"n` + "\xff" + `","masteryLevel":0.5}`, true, true}, // not UTF-8
		{valid("v3", `"user\u0049ds":["alice"]`), false, false},
		{valid("p10", `"userIds":[ ]`), true, false},
		{`{"conceptId":"p11","userIds":["\u0061lice"],"conceptName":"n","masteryLevel":1.5}`, true, false},
		{valid("v4", `"userIds":["alice","alice"],"extra":{"a":[1,{"b":null}]}`), false, false},
	}

	// The test's own full decoder says what the duty must write; DecodeForDelivery that the
	// records marked scan take the quick refusal and the others do not (else this test would
	// not exercise both ways).
	d := notification.NewDecoder(notification.NewValidator(), map[string]string{topic: notification.EventConceptMastered})
	var recs []*kgo.Record
	var wantIDs []string
	for _, r := range records {
		rec := &kgo.Record{Topic: topic, Value: []byte(r.value)}
		_, full := d.Decode(rec)
		_, quick := d.DecodeForDelivery(rec)
		if (full != nil) != r.poison || errors.Is(quick, notification.ErrInvalid) != r.scan {
			t.Fatalf("%s: Decode %v, DecodeForDelivery %v; want poison %v, refused by the scan %v", r.value, full, quick, r.poison, r.scan)
		}
		if !r.poison {
			var v struct{ ConceptID string }
			_ = json.Unmarshal(rec.Value, &v)
			wantIDs = append(wantIDs, v.ConceptID)
		}
		recs = append(recs, rec)
	}
	recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(valid("sentinel", `"userIds":["alice"]`))})

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var got []string
	for {
		f := next(t, frames)
		if f.ID == "" { // a control frame
			continue
		}
		var v struct{ ConceptID string }
		if err := json.Unmarshal(f.Data, &v); err != nil || f.Event != notification.EventConceptMastered {
			t.Fatalf("frame %+v", f)
		}
		if v.ConceptID == "sentinel" {
			break
		}
		got = append(got, v.ConceptID)
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("alice got %q, want %q", got, wantIDs)
	}

	var poisons []*kgo.Record
	for i, r := range records {
		if r.poison {
			poisons = append(poisons, recs[i])
		}
	}
	dlq := readAll(t, s.Broker, "realtime-service.dlq", len(poisons))
	if len(dlq) != len(poisons) {
		t.Errorf("%d dead letters, want %d", len(dlq), len(poisons))
	}
	for _, p := range poisons {
		i := slices.IndexFunc(dlq, func(r *kgo.Record) bool { return string(r.Value) == string(p.Value) })
		if i < 0 {
			t.Errorf("%s: not dead-lettered", p.Value)
			continue
		}
		h := map[string]string{}
		for _, x := range dlq[i].Headers {
			h[x.Key] = string(x.Value)
		}
		_, err := d.Decode(p)
		var de *notification.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%s: Decode gave %v", p.Value, err)
		}
		if h["dlq-error-code"] != de.Code || h["dlq-reason"] != err.Error() {
			t.Errorf("%s: dead letter %s %q, want Decode's %s %q", p.Value, h["dlq-error-code"], h["dlq-reason"], de.Code, err.Error())
		}
		if strings.Contains(h["dlq-reason"], notification.ErrInvalid.Error()) {
			t.Errorf("%s: the dead letter carries delivery's bare refusal: %q", p.Value, h["dlq-reason"])
		}
	}
	if n := metric(t, s.URL, "kafka_consumer_poison_skipped_total", `topic="`+topic+`"`); n != float64(len(poisons)) {
		t.Errorf("kafka_consumer_poison_skipped_total = %v, want %d", n, len(poisons))
	}
}
