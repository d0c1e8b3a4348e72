package socketio

import (
	"bytes"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// The fuzzers: no input panics a decoder, and whatever a decoder accepts, our encoder writes back
// in a form that decodes to the same packet. Run one longer with, e.g.,
// go test ./internal/socketio -run '^$' -fuzz FuzzDecodeSIO -fuzztime 30s

var eioSeeds = []string{
	"0", `0{"sid":"x"}`, "1", "2", "2probe", "3", "3probe", "4hello", `42["foo"]`, "5", "6", "bAQIDBA==", "b", "",
	"7", "a", "b!!", "4é€😀", "\x1e",
}

func FuzzDecodeEIOText(f *testing.F) {
	for _, s := range eioSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := decodeEIOText(in)
		if err != nil {
			return
		}
		var again []byte
		if p.binary {
			again = appendEIOBinary(nil, p.data)
		} else {
			again = appendEIOPacket(nil, p.typ, p.data)
			if !bytes.Equal(again, in) {
				t.Fatalf("text packet %q re-encoded as %q", in, again)
			}
		}
		q, err := decodeEIOText(again)
		if err != nil || q.typ != p.typ || q.binary != p.binary || !bytes.Equal(q.data, p.data) {
			t.Fatalf("%q: re-decoding %q gave %+v, %v", in, again, q, err)
		}
	})
}

func FuzzDecodeEIOPayload(f *testing.F) {
	for _, s := range eioSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{"4hello\x1e2\x1e4world", "4a\x1ebAQIDBA==\x1e6", "\x1e", "4a\x1e", "3\x1e3\x1e3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		packets, err := decodeEIOPayload(in)
		if err != nil {
			return
		}
		var encoded [][]byte
		for _, p := range packets {
			if p.binary {
				encoded = append(encoded, appendEIOBinary(nil, p.data))
			} else {
				encoded = append(encoded, appendEIOPacket(nil, p.typ, p.data))
			}
		}
		again := appendEIOPayload(nil, encoded)
		if len(again) != payloadLen(encoded) {
			t.Fatalf("payloadLen %d, payload %d bytes", payloadLen(encoded), len(again))
		}
		q, err := decodeEIOPayload(again)
		if err != nil || len(q) != len(packets) {
			t.Fatalf("%q: re-decoding %q: %d packets, %v", in, again, len(q), err)
		}
		for i := range q {
			if q[i].typ != packets[i].typ || q[i].binary != packets[i].binary || !bytes.Equal(q[i].data, packets[i].data) {
				t.Fatalf("%q: packet %d changed: %+v vs %+v", in, i, q[i], packets[i])
			}
		}
	})
}

var sioSeeds = []string{
	"0", `0{"token":"123"}`, `0/admin,{"sid":"x"}`, "0/random", "1", "1/admin,", `2["foo"]`, `2/admin,["bar"]`,
	`212["foo"]`, `3/admin,13["bar"]`, `312[]`, `4{"message":"Not authorized"}`,
	`51-["baz",{"_placeholder":true,"num":0}]`, `52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
	`61-15["bar",{"_placeholder":true,"num":0}]`, `2["connect"]`, `2abc["x"]`, `29007199254740992["x"]`, `5999-[]`, `2[`,
	`2 [ "x" ]`, `2007["x"]`, `2/,["x"]`,
}

func FuzzDecodeSIO(f *testing.F) {
	for _, s := range sioSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := decodeSIO(in)
		if err != nil {
			return
		}
		again := appendSIO(nil, p)
		q, err := decodeSIO(again)
		if err != nil {
			t.Fatalf("%q decoded to %v, whose encoding %q does not decode: %v", in, p, again, err)
		}
		if q.String() != p.String() {
			t.Fatalf("%q: %v re-encoded as %q decodes to %v", in, p, again, q)
		}
	})
}

func FuzzCheckPlaceholders(f *testing.F) {
	for _, s := range []string{`["x",{"_placeholder":true,"num":0}]`, `[{"a":[{"_placeholder":true,"num":1}]}]`, `[{"_placeholder":true}]`, `[[[[]]]]`, `{"num":1e400,"_placeholder":true}`} {
		f.Add([]byte(s), 2)
	}
	f.Fuzz(func(t *testing.T, data []byte, attachments int) {
		checkPlaceholders(data, attachments) // must not panic, on any input
	})
}

// FuzzSessionInput feeds a long-polling POST body to a session attached to a real hub: whatever
// the client sends, the server does not panic, and a session it closes leaves no hub connection.
func FuzzSessionInput(f *testing.F) {
	tok, err := auth.Issue(testSecret, "fuzz-user", 100*365*24*time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	connect := `40{"token":"` + tok + `"}`
	for _, s := range sioSeeds {
		f.Add([]byte("4" + s))
		f.Add([]byte(connect + "\x1e4" + s))
	}
	for _, s := range []string{
		connect + "\x1e421[\"whoami\"]\x1e431[]\x1e41",
		connect + "\x1e451-1[\"whoami\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
		connect + "\x1ebAQID", connect + "\x1e" + connect, "3\x1e2\x1e5\x1e6\x1e1",
		`40{"token":"x","pid":"p","offset":"AQ"}`, connect[:len(connect)-2] + `","pid":"p","offset":"AQIDBAUG"}`,
	} {
		f.Add([]byte(s))
	}
	hub := realtime.NewHub(realtime.HubConfig{})
	h := NewHandler(hub, Config{Verifier: auth.NewVerifier(testSecret)})
	f.Fuzz(func(t *testing.T, body []byte) {
		packets, err := decodeEIOPayload(body)
		if err != nil {
			return
		}
		s := h.newSession(nil, "")
		h.addSession(s)
		for _, p := range packets {
			if !s.onPacket(p) {
				break
			}
		}
		s.close()
		if c := s.conn.Load(); c != nil {
			<-c.Done()
		}
		if n := hub.Connections(); n != 0 {
			t.Fatalf("%d hub connections left after the session closed", n)
		}
	})
}
