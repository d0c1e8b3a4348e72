package socketio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeEIOTextEveryType(t *testing.T) {
	tests := []struct {
		in     string
		typ    eioType
		data   string
		binary bool
	}{
		{`0{"sid":"x"}`, eioOpen, `{"sid":"x"}`, false},
		{"1", eioClose, "", false},
		{"2", eioPing, "", false},
		{"2probe", eioPing, "probe", false},
		{"3", eioPong, "", false},
		{"3probe", eioPong, "probe", false},
		{"4hello", eioMessage, "hello", false},
		{`42["foo"]`, eioMessage, `2["foo"]`, false},
		{"4", eioMessage, "", false},
		{"4é€😀", eioMessage, "é€😀", false},
		{"5", eioUpgrade, "", false},
		{"6", eioNoop, "", false},
		{"bAQIDBA==", eioMessage, "\x01\x02\x03\x04", true},
		{"b", eioMessage, "", true},
	}
	for _, tc := range tests {
		p, err := decodeEIOText([]byte(tc.in))
		if err != nil {
			t.Errorf("decodeEIOText(%q): %v", tc.in, err)
			continue
		}
		if p.typ != tc.typ || string(p.data) != tc.data || p.binary != tc.binary {
			t.Errorf("decodeEIOText(%q) = {%d %q %v}, want {%d %q %v}", tc.in, p.typ, p.data, p.binary, tc.typ, tc.data, tc.binary)
		}
	}
}

func TestDecodeEIOTextRefusesMalformed(t *testing.T) {
	for _, in := range []string{"", "7", "9", "a", "x4", "/", "\x1e", "b!!", "bAQIDBA=x", "b===="} {
		if p, err := decodeEIOText([]byte(in)); !errors.Is(err, errEIOPacket) {
			t.Errorf("decodeEIOText(%q) = %+v, %v; want errEIOPacket", in, p, err)
		}
	}
}

func TestDecodeEIOPayloadSplitsOnTheRecordSeparator(t *testing.T) {
	packets, err := decodeEIOPayload([]byte("4hello\x1e2\x1e4world\x1ebAQIDBA==\x1e6"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range packets {
		got = append(got, string('0'+byte(p.typ))+":"+string(p.data))
	}
	want := "4:hello 2: 4:world 4:\x01\x02\x03\x04 6:"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
	if !packets[3].binary || packets[0].binary {
		t.Error("only the b packet is binary")
	}

	for _, bad := range []string{"", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "4a\x1ez"} {
		if _, err := decodeEIOPayload([]byte(bad)); !errors.Is(err, errEIOPacket) {
			t.Errorf("decodeEIOPayload(%q) = %v, want errEIOPacket (an empty or bad packet fails the payload)", bad, err)
		}
	}
}

func TestEncodeEIO(t *testing.T) {
	packets := [][]byte{
		appendEIOPacket(nil, eioMessage, []byte("hello")),
		appendEIOPacket(nil, eioPing, nil),
		appendEIOBinary(nil, []byte{1, 2, 3, 4}),
		appendEIOPacket(nil, eioPong, []byte("probe")),
	}
	got := appendEIOPayload(nil, packets)
	if want := "4hello\x1e2\x1ebAQIDBA==\x1e3probe"; string(got) != want {
		t.Errorf("payload = %q, want %q", got, want)
	}
	if payloadLen(packets) != len(got) {
		t.Errorf("payloadLen = %d, want %d", payloadLen(packets), len(got))
	}
	if payloadLen(nil) != 0 || len(appendEIOPayload(nil, nil)) != 0 {
		t.Error("empty payload")
	}
	decoded, err := decodeEIOPayload(got)
	if err != nil || len(decoded) != 4 || !bytes.Equal(decoded[2].data, []byte{1, 2, 3, 4}) || decoded[3].typ != eioPong {
		t.Errorf("round trip: %+v, %v", decoded, err)
	}
}

func TestOpenPacket(t *testing.T) {
	h := &Handler{cfg: Config{}.withDefaults()}
	if got, want := string(h.openPacket("abc", true)), `0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":65536}`; got != want {
		t.Errorf("polling open packet = %s, want %s", got, want)
	}
	if got, want := string(h.openPacket("abc", false)), `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":65536}`; got != want {
		t.Errorf("websocket open packet = %s, want %s", got, want)
	}
}

func TestWSHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		f := wsFrame(opText, bytes.Repeat([]byte{'x'}, n))
		var hdr, size int
		switch {
		case n < 126:
			hdr, size = 2, int(f[1])
		case n <= 0xFFFF:
			hdr, size = 4, int(f[2])<<8|int(f[3])
		default:
			hdr, size = 10, int(f[6])<<24|int(f[7])<<16|int(f[8])<<8|int(f[9])
		}
		if f[0] != 0x81 || size != n || len(f) != hdr+n || f[1]&0x80 != 0 {
			t.Errorf("frame of %d bytes: header % x, length %d", n, f[:hdr], len(f))
		}
	}
}
