package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEachRecipientSourceDeliversToItsUsersOnly: topics configured (REALTIME_TOPICS) to name their
// recipients in the record key, in a header, at a nested JSON Pointer, and a raw-string topic
// keyed by user, each deliver every record to exactly the users it names there — not to a user
// another field of the value names, not to the bystander — with the data the topic's shape says;
// a record whose source names nobody, or names something that is not a user ID, is dead-lettered
// with a reason. Each topic ends with a sentinel record per user: once a connection has the
// sentinels of every topic, it has had everything before them.
func TestEachRecipientSourceDeliversToItsUsersOnly(t *testing.T) {
	topics := []string{"by-key", "by-header", "nested", "raw"}
	s := startService(t, map[string]string{
		"KAFKA_EMBEDDED_PARTITIONS": "1", // one partition per topic: records are handed off in order
		"REALTIME_TOPICS": "by-key=k-ev;recipients=key, by-header=h-ev;recipients=header:user-id," +
			"nested=n-ev;recipients=/audience/userIds, raw=r-ev;recipients=key;value=raw-string",
	})
	s.waitConsuming(topics...)
	users := []string{"alice", "bob", "carol", "eve"} // eve is named by no record but the sentinels
	frames := map[string]<-chan frame{}
	for _, u := range users {
		_, frames[u] = openWS(t, s, u, "")
	}
	waitConnected(t, s, len(users))

	type want struct {
		event, data string
		to          []string
	}
	hdr := func(kv ...string) []kgo.RecordHeader {
		var h []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			h = append(h, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return h
	}
	recs := []*kgo.Record{
		{Topic: "by-key", Key: []byte("alice"), Value: []byte(`{"n":1,"note":"for alice"}`)},
		{Topic: "by-key", Key: []byte("bob"), Value: []byte(`{"n":2,"userIds":["alice"],"cc":"eve"}`)},
		{Topic: "by-header", Headers: hdr("user-id", "alice", "other", "bob", "user-id", "carol"), Value: []byte(`{"n":3}`)},
		{Topic: "nested", Value: []byte(`{"n":4,"audience":{"userIds":["bob","carol"],"team":"t"},"userIds":["eve"]}`)},
		{Topic: "raw", Key: []byte("carol"), Value: []byte("hello carol, from \"raw\"")},
	}
	wants := []want{
		{"k-ev", `{"n":1,"note":"for alice"}`, []string{"alice"}},
		{"k-ev", `{"n":2,"userIds":["alice"],"cc":"eve"}`, []string{"bob"}},
		{"h-ev", `{"n":3}`, []string{"alice", "carol"}},
		{"n-ev", `{"n":4,"audience":{"team":"t"},"userIds":["eve"]}`, []string{"bob", "carol"}},
		{"r-ev", `"hello carol, from \"raw\""`, []string{"carol"}},
	}
	poisons := []struct {
		rec          *kgo.Record
		code, reason string
	}{
		{&kgo.Record{Topic: "nested", Value: []byte(`{"n":6,"audience":{"userIds":42}}`)}, "no-recipients", "/audience/userIds is a number"},
		{&kgo.Record{Topic: "nested", Value: []byte(`{"n":7,"audience":{"userIds":{"id":"alice"}}}`)}, "no-recipients", "/audience/userIds is an object"},
		{&kgo.Record{Topic: "by-key", Value: []byte(`{"n":8,"userIds":["alice"]}`)}, "no-recipients", "no key"},
		{&kgo.Record{Topic: "by-header", Headers: hdr("User-Id", "alice"), Value: []byte(`{"n":9}`)}, "no-recipients", `no "user-id" header`},
		{&kgo.Record{Topic: "raw", Key: []byte("alice"), Value: []byte("bad \xff")}, "invalid-value", "UTF-8"},
	}
	for _, p := range poisons {
		recs = append(recs, p.rec)
	}
	for _, u := range users { // sentinels, after everything else on each topic
		recs = append(recs,
			&kgo.Record{Topic: "by-key", Key: []byte(u), Value: []byte(`{"sentinel":true}`)},
			&kgo.Record{Topic: "by-header", Headers: hdr("user-id", u), Value: []byte(`{"sentinel":true}`)},
			&kgo.Record{Topic: "nested", Value: []byte(`{"sentinel":true,"audience":{"userIds":"` + u + `"}}`)},
			&kgo.Record{Topic: "raw", Key: []byte(u), Value: []byte("sentinel")})
	}
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

	for _, u := range users {
		var got []string
		for sentinels := 0; sentinels < len(topics); {
			f := next(t, frames[u])
			if f.ID == "" { // a control frame
				continue
			}
			if strings.Contains(string(f.Data), "sentinel") {
				sentinels++
				continue
			}
			got = append(got, f.Event+" "+string(f.Data))
		}
		var expect []string
		for _, w := range wants {
			if slices.Contains(w.to, u) {
				expect = append(expect, w.event+" "+w.data)
			}
		}
		slices.Sort(got) // topics are handed off independently: no order across them
		slices.Sort(expect)
		if !slices.Equal(got, expect) {
			t.Errorf("%s got %q, want %q", u, got, expect)
		}
	}

	// Every poison record came before the sentinels on its topic, and the consumer dead-letters
	// a record before it hands off the next: the dead-letter topic is complete.
	dlq := readAll(t, s.Broker, "realtime-service.dlq", len(poisons))
	for _, p := range poisons {
		i := slices.IndexFunc(dlq, func(r *kgo.Record) bool { return string(r.Value) == string(p.rec.Value) })
		if i < 0 {
			t.Errorf("%s %s: not dead-lettered", p.rec.Topic, p.rec.Value)
			continue
		}
		h := map[string]string{}
		for _, x := range dlq[i].Headers {
			h[x.Key] = string(x.Value)
		}
		if h["dlq-error-code"] != p.code || !strings.Contains(h["dlq-reason"], p.reason) {
			t.Errorf("%s %s: dead letter %s %q, want %s saying %q", p.rec.Topic, p.rec.Value, h["dlq-error-code"], h["dlq-reason"], p.code, p.reason)
		}
	}
	if len(dlq) != len(poisons) {
		t.Errorf("%d dead letters, want %d", len(dlq), len(poisons))
	}
}

// readAll reads topic from its start until it has n records (more, if more are there by then).
func readAll(t *testing.T, broker, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d records within 15 s, want %d", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
