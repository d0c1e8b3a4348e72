package socketio

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// The cross-check of our codecs against npm engine.io-parser and socket.io-parser:
// crosscheck.test.mjs fetches crossCheckTable (packets and what our encoder made of them),
// decodes each encoding with the npm parsers and re-encodes it; then it encodes its own packets
// and posts them to decodeForCrossCheck.

// xPacket is a Socket.IO packet as socket.io-parser represents it (data as JSON).
type xPacket struct {
	Type        int             `json:"type"`
	Nsp         string          `json:"nsp"`
	ID          *int64          `json:"id,omitempty"`
	Attachments int             `json:"attachments,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Error       string          `json:"error,omitempty"`
}

// xEIOPacket is an Engine.IO packet: type number and text data, or binary data in base64.
type xEIOPacket struct {
	Type   int     `json:"type"`
	Data   *string `json:"data,omitempty"`
	Binary *string `json:"binary,omitempty"`
}

type xSIOCase struct {
	Packet  xPacket  `json:"packet"`
	Buffers []string `json:"buffers,omitempty"` // base64 attachments of binary packets
	Encoded string   `json:"encoded"`
}

type xEIOCase struct {
	Packets []xEIOPacket `json:"packets"`
	Encoded string       `json:"encoded"`
}

type xTable struct {
	SIO []xSIOCase `json:"sio"`
	EIO []xEIOCase `json:"eio"`
}

func ptr[T any](v T) *T { return &v }

// crossCheckSIO lists Socket.IO packets of every type, with and without namespace, ack id and
// attachments.
func crossCheckSIO() []sioPacket {
	id := func(p sioPacket, n int64) sioPacket { p.hasID, p.id = true, n; return p }
	return []sioPacket{
		{typ: sioConnect, nsp: "/"},
		{typ: sioConnect, nsp: "/", data: []byte(`{"token":"abc"}`)},
		{typ: sioConnect, nsp: "/admin", data: []byte(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)},
		{typ: sioConnect, nsp: "/", data: []byte(`{"sid":"wZX3oN0bSVIhsaknAAAI","pid":"p1"}`)},
		{typ: sioDisconnect, nsp: "/"},
		{typ: sioDisconnect, nsp: "/admin"},
		{typ: sioEvent, nsp: "/", data: []byte(`["foo"]`)},
		{typ: sioEvent, nsp: "/", data: []byte(`["hey","Jude",{"é€😀":[1,2.5,true,null]}]`)},
		id(sioPacket{typ: sioEvent, nsp: "/", data: []byte(`["foo"]`)}, 12),
		id(sioPacket{typ: sioEvent, nsp: "/admin", data: []byte(`["bar",1]`)}, 9007199254740991),
		{typ: sioEvent, nsp: "/", data: []byte(`[42,"numeric event name"]`)},
		id(sioPacket{typ: sioAck, nsp: "/", data: []byte(`[]`)}, 12),
		id(sioPacket{typ: sioAck, nsp: "/admin", data: []byte(`["bar"]`)}, 13),
		id(sioPacket{typ: sioAck, nsp: "/", data: []byte(`[{"userId":"alice"}]`)}, 0),
		{typ: sioConnectError, nsp: "/", data: []byte(`{"message":"Not authorized","data":{"code":"unauthorized"}}`)},
		{typ: sioConnectError, nsp: "/random", data: invalidNamespace},
		{typ: sioBinaryEvent, attachments: 1, nsp: "/", data: []byte(`["baz",{"_placeholder":true,"num":0}]`)},
		{typ: sioBinaryEvent, attachments: 2, nsp: "/admin", data: []byte(`["baz",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]`)},
		id(sioPacket{typ: sioBinaryAck, attachments: 1, nsp: "/", data: []byte(`["bar",{"_placeholder":true,"num":0}]`)}, 15),
	}
}

// hubFrames are real frames of the hub (FormatSocketIO): events, each with its {"id"}, and a
// cursor packet.
func hubFrames() [][]byte {
	codec, _ := realtime.NewCursorCodec("x", testTopics)
	var frames [][]byte
	for i, data := range []string{`{"conceptId":"c1","userIds":["u1"],"conceptName":"Fractions","masteryLevel":0.9}`, `{"message":"Starts in 5′ — 🚀","scheduledTime":"2026-11-29T10:00:00Z"}`} {
		ev := realtime.NewEvent(&notification.Event{Name: notification.EventConceptMastered, Topic: testTopics[0], Offset: int64(i), Time: time.Unix(1700000000, 0), UserIDs: []string{"u1"}, Data: []byte(data)})
		frames = append(frames, ev.Frame(realtime.FormatSocketIO))
	}
	cursor := codec.Encode([]realtime.Position{{Topic: testTopics[0], Offset: 2}})
	return append(frames, realtime.Control{Event: "cursor", Cursor: cursor}.Frame(realtime.FormatSocketIO))
}

func crossCheckTable() xTable {
	var t xTable
	for _, p := range crossCheckSIO() {
		c := xSIOCase{Packet: toXPacket(p), Encoded: string(appendSIO(nil, p))}
		for i := range p.attachments {
			c.Buffers = append(c.Buffers, base64.StdEncoding.EncodeToString([]byte{1, 2, 3, byte(i)}))
		}
		t.SIO = append(t.SIO, c)
	}
	for _, f := range hubFrames() {
		p, err := decodeSIO(f[1:])
		if err != nil {
			panic(err)
		}
		t.SIO = append(t.SIO, xSIOCase{Packet: toXPacket(p), Encoded: string(f[1:])})
	}

	text := func(typ eioType, data string) xEIOPacket { return xEIOPacket{Type: int(typ), Data: &data} }
	bin := []byte{1, 2, 3, 4}
	cases := [][]xEIOPacket{
		{text(eioMessage, "hello"), {Type: int(eioPing)}, text(eioMessage, "world")},
		{text(eioOpen, string((&Handler{cfg: testConfig().withDefaults()}).openPacket("lv_VI97HAXpY6yYWAAAC", true)[1:]))},
		{text(eioMessage, "hello"), {Type: int(eioMessage), Binary: ptr(base64.StdEncoding.EncodeToString(bin))}},
		{{Type: int(eioNoop)}},
		{text(eioPong, "probe")},
		{{Type: int(eioClose)}},
		{text(eioMessage, "é€😀")},
	}
	var frames []xEIOPacket
	for _, f := range hubFrames() {
		frames = append(frames, text(eioMessage, string(f[1:])))
	}
	cases = append(cases, frames)
	for _, packets := range cases {
		var encoded [][]byte
		for _, p := range packets {
			if p.Binary != nil {
				raw, _ := base64.StdEncoding.DecodeString(*p.Binary)
				encoded = append(encoded, appendEIOBinary(nil, raw))
				continue
			}
			var data []byte
			if p.Data != nil {
				data = []byte(*p.Data)
			}
			encoded = append(encoded, appendEIOPacket(nil, eioType(p.Type), data))
		}
		t.EIO = append(t.EIO, xEIOCase{Packets: packets, Encoded: string(appendEIOPayload(nil, encoded))})
	}
	return t
}

func toXPacket(p sioPacket) xPacket {
	x := xPacket{Type: int(p.typ), Nsp: p.nsp, Attachments: p.attachments}
	if p.hasID {
		x.ID = ptr(p.id)
	}
	if len(p.data) > 0 {
		x.Data = json.RawMessage(p.data)
	}
	return x
}

// decodeForCrossCheck decodes what the npm encoders produced.
func decodeForCrossCheck(sio, eio []string) map[string]any {
	var sioOut []xPacket
	for _, s := range sio {
		p, err := decodeSIO([]byte(s))
		if err != nil {
			sioOut = append(sioOut, xPacket{Error: err.Error()})
			continue
		}
		sioOut = append(sioOut, toXPacket(p))
	}
	var eioOut [][]xEIOPacket
	for _, s := range eio {
		packets, err := decodeEIOPayload([]byte(s))
		if err != nil {
			eioOut = append(eioOut, nil)
			continue
		}
		var out []xEIOPacket
		for _, p := range packets {
			x := xEIOPacket{Type: int(p.typ)}
			switch {
			case p.binary:
				x.Binary = ptr(base64.StdEncoding.EncodeToString(p.data))
			case len(p.data) > 0:
				x.Data = ptr(string(p.data))
			}
			out = append(out, x)
		}
		eioOut = append(eioOut, out)
	}
	return map[string]any{"sio": sioOut, "eio": eioOut}
}

// TestCrossCheckTableRoundTrips: our decoder reads back everything our encoder wrote for the
// cross-check (the Node side checks the npm parsers agree).
func TestCrossCheckTableRoundTrips(t *testing.T) {
	table := crossCheckTable()
	for _, c := range table.SIO {
		got := decodeForCrossCheck([]string{c.Encoded}, nil)["sio"].([]xPacket)[0]
		want, _ := json.Marshal(c.Packet)
		if g, _ := json.Marshal(got); string(g) != string(want) {
			t.Errorf("decode(%q) = %s, want %s", c.Encoded, g, want)
		}
	}
	for _, c := range table.EIO {
		got := decodeForCrossCheck(nil, []string{c.Encoded})["eio"].([][]xEIOPacket)[0]
		g, _ := json.Marshal(got)
		want, _ := json.Marshal(c.Packets)
		if string(g) != string(want) {
			t.Errorf("decode(%q) = %s, want %s", c.Encoded, g, want)
		}
	}
}
