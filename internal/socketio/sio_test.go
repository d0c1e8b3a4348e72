package socketio

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func (p sioPacket) String() string {
	id := "-"
	if p.hasID {
		id = fmt.Sprint(p.id)
	}
	return fmt.Sprintf("{type %d, attachments %d, nsp %q, id %s, data %s}", p.typ, p.attachments, p.nsp, id, p.data)
}

func withID(p sioPacket, id int64) sioPacket {
	p.hasID, p.id = true, id
	return p
}

// The examples of socket.io-protocol v5 "Packet encoding", and more.
var sioCases = []struct {
	encoded string
	packet  sioPacket
}{
	{"0", sioPacket{typ: sioConnect, nsp: "/"}},
	{`0{"token":"123"}`, sioPacket{typ: sioConnect, nsp: "/", data: []byte(`{"token":"123"}`)}},
	{`0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`, sioPacket{typ: sioConnect, nsp: "/admin", data: []byte(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)}},
	{"0/admin,", sioPacket{typ: sioConnect, nsp: "/admin"}},
	{"1", sioPacket{typ: sioDisconnect, nsp: "/"}},
	{"1/admin,", sioPacket{typ: sioDisconnect, nsp: "/admin"}},
	{`2["foo"]`, sioPacket{typ: sioEvent, nsp: "/", data: []byte(`["foo"]`)}},
	{`2/admin,["bar"]`, sioPacket{typ: sioEvent, nsp: "/admin", data: []byte(`["bar"]`)}},
	{`212["foo"]`, withID(sioPacket{typ: sioEvent, nsp: "/", data: []byte(`["foo"]`)}, 12)},
	{`20["foo"]`, withID(sioPacket{typ: sioEvent, nsp: "/", data: []byte(`["foo"]`)}, 0)},
	{`29007199254740991["foo"]`, withID(sioPacket{typ: sioEvent, nsp: "/", data: []byte(`["foo"]`)}, maxAckID)},
	{`2[1,"numeric name"]`, sioPacket{typ: sioEvent, nsp: "/", data: []byte(`[1,"numeric name"]`)}},
	{`3/admin,13["bar"]`, withID(sioPacket{typ: sioAck, nsp: "/admin", data: []byte(`["bar"]`)}, 13)},
	{`312[]`, withID(sioPacket{typ: sioAck, nsp: "/", data: []byte(`[]`)}, 12)},
	{`4{"message":"Not authorized"}`, sioPacket{typ: sioConnectError, nsp: "/", data: []byte(`{"message":"Not authorized"}`)}},
	{`4"legacy"`, sioPacket{typ: sioConnectError, nsp: "/", data: []byte(`"legacy"`)}},
	{`51-["baz",{"_placeholder":true,"num":0}]`, sioPacket{typ: sioBinaryEvent, attachments: 1, nsp: "/", data: []byte(`["baz",{"_placeholder":true,"num":0}]`)}},
	{`52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, sioPacket{typ: sioBinaryEvent, attachments: 2, nsp: "/admin", data: []byte(`["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)}},
	{`61-15["bar",{"_placeholder":true,"num":0}]`, withID(sioPacket{typ: sioBinaryAck, attachments: 1, nsp: "/", data: []byte(`["bar",{"_placeholder":true,"num":0}]`)}, 15)},
	{`610-/a,7[{"deep":[[{"_placeholder":true,"num":9}]]}]`, withID(sioPacket{typ: sioBinaryAck, attachments: 10, nsp: "/a", data: []byte(`[{"deep":[[{"_placeholder":true,"num":9}]]}]`)}, 7)},
}

func TestDecodeSIO(t *testing.T) {
	for _, tc := range sioCases {
		got, err := decodeSIO([]byte(tc.encoded))
		if err != nil {
			t.Errorf("decodeSIO(%s): %v", tc.encoded, err)
			continue
		}
		if got.String() != tc.packet.String() {
			t.Errorf("decodeSIO(%s) = %v, want %v", tc.encoded, got, tc.packet)
		}
	}
}

func TestEncodeSIO(t *testing.T) {
	for _, tc := range sioCases {
		if got := string(appendSIO(nil, tc.packet)); got != tc.encoded {
			t.Errorf("appendSIO(%v) = %s, want %s", tc.packet, got, tc.encoded)
		}
	}
	if got := string(messagePacket(sioPacket{typ: sioEvent, nsp: "/", data: []byte(`["hey","Jude"]`)})); got != `42["hey","Jude"]` {
		t.Errorf("messagePacket = %s", got)
	}
	// The namespace may come without the trailing comma when nothing follows it.
	if p, err := decodeSIO([]byte("0/random")); err != nil || p.nsp != "/random" {
		t.Errorf("decodeSIO(0/random) = %v, %v", p, err)
	}
}

func TestDecodeSIORefuses(t *testing.T) {
	for _, in := range []string{
		"", "7", "9[]", "a", "/", // type
		`2`, `2{}`, `2[]`, `2"x"`, `2[{}]`, `2[null]`, `2[true]`, `2["x"`, `2["x"]]`, `2abc["x"]`, // EVENT payload
		`2["connect"]`, `2["connect_error"]`, `2["disconnect"]`, `2["disconnecting"]`, `2["newListener"]`, `2["removeListener"]`, // reserved
		`29007199254740992["x"]`, `299999999999999999999999["x"]`, // ack id overflow
		`3`, `3{}`, `31"x"`, // ACK payload
		`0[]`, `0"x"`, `0null`, `0{`, // CONNECT payload
		`1{}`, `1/admin,{}`, `1x`, // DISCONNECT payload
		`4`, `4[]`, `41`, // CONNECT_ERROR payload
		`5["x"]`, `5-["x"]`, `50-["x"]`, `511-["x",{}]`, `599999999999-["x"]`, `5a-["x"]`, `51["x"]`, `51-`, // attachments
		`51-["x",{"_placeholder":true,"num":1}]`, `51-["x",{"_placeholder":true,"num":-1}]`, `51-["x",{"_placeholder":true,"num":0.5}]`,
		`51-["x",{"_placeholder":true}]`, `51-["x",{"_placeholder":true,"num":"0"}]`, `52-["x",{"a":{"_placeholder":true,"num":2}}]`,
		`61-1{"_placeholder":true,"num":0}`, `51-["connect",{"_placeholder":true,"num":0}]`,
		`2/admin,`, `2/admin`, // namespace with no payload
	} {
		if p, err := decodeSIO([]byte(in)); !errors.Is(err, errSIOPacket) {
			t.Errorf("decodeSIO(%s) = %v, %v; want errSIOPacket", in, p, err)
		}
	}
}

func TestCheckPlaceholdersAcceptsWhatTheParserReconstructs(t *testing.T) {
	for _, data := range []string{
		`["x"]`,
		`["x",{"_placeholder":false,"num":9}]`, // not a placeholder
		`["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1.0}]`,
		`[{"a":[{"b":{"_placeholder":true,"num":1}}]},{"num":0,"_placeholder":true}]`, // key order does not matter
		strings.Repeat("[", 500) + strings.Repeat("]", 500),
	} {
		if err := checkPlaceholders([]byte(data), 2); err != nil {
			t.Errorf("checkPlaceholders(%s, 2): %v", data, err)
		}
	}
}

func TestEventName(t *testing.T) {
	for _, tc := range []struct {
		data             string
		name             string
		isString, wantOK bool
	}{
		{`["whoami"]`, "whoami", true, true},
		{`[ "who\u0061mi" , 1]`, "whoami", true, true},
		{`[12]`, "", false, true},
		{`[-1.5e3]`, "", false, true},
		{`[]`, "", false, false},
		{`[{}]`, "", false, false},
		{`{}`, "", false, false},
	} {
		name, isString, ok := eventName([]byte(tc.data))
		if name != tc.name || isString != tc.isString || ok != tc.wantOK {
			t.Errorf("eventName(%s) = %q, %v, %v", tc.data, name, isString, ok)
		}
	}
}
