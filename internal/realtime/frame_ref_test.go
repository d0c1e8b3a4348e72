package realtime

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// refJSONString, refAppendJSON and refWSFrame are how frames were built before they were built in
// one buffer (json.Marshal for strings, time.AppendFormat for the time): the reference of
// TestFramesAsBefore.
func refJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func refAppendJSON(e *Event, b []byte) []byte {
	b = append(b, `{"id":`...)
	b = refJSONString(b, e.id)
	b = append(b, `,"event":`...)
	b = refJSONString(b, e.Name)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	if e.Cursor != "" {
		b = append(b, `,"cursor":`...)
		b = refJSONString(b, e.Cursor)
	}
	return append(b, '}')
}

func refSocketIO(e *Event) []byte {
	b := append([]byte(`42[`), refJSONString(nil, e.Name)...)
	b = append(append(b, ','), e.Data...)
	switch {
	case e.Cursor != "":
		b = refJSONString(append(b, ','), e.Cursor)
	case e.id != "":
		b = append(b, `,{"id":`...)
		b = append(refJSONString(b, e.id), '}')
	}
	return append(b, ']')
}

// refWSFrame is wsFrame as it was before it built frames in place: the reference of
// TestFramesAsBefore.
func refWSFrame(opcode byte, payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xFFFF:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = 0x80 | opcode // FIN
	return append(b, payload...)
}

// TestFramesAsBefore: frames built in one buffer, with the time formatted once per second, are
// byte for byte those of the reference, whatever the strings, the time and the data's length.
func TestFramesAsBefore(t *testing.T) {
	names := []string{"concept-mastered", "a<b>&c", "é", "line\u2028sep", "q\"uote\\", "\x01ctl", "bad\xffutf8", "del\x7f"}
	times := []time.Time{
		time.UnixMilli(1764842400123), time.UnixMilli(1764842400999), time.UnixMilli(1764842401000),
		time.Unix(1764842400, 999_999_999), time.Date(2026, 12, 4, 7, 0, 0, 5e6, time.FixedZone("x", 3600)),
		{}, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.UTC),
	}
	datas := []string{`{"a":1}`, `{"x":"` + strings.Repeat("x", 130) + `"}`, `{"x":"` + strings.Repeat("y", 70000) + `"}`}
	for _, name := range names {
		for _, tm := range times {
			for _, data := range datas {
				for _, cursor := range []string{"", "c1.abc", "é<"} {
					for _, id := range []string{"t:1:2", "", "t<é>:1:2"} {
						e := &Event{Event: notification.Event{Name: name, Time: tm, Data: []byte(data)}, Cursor: cursor, id: id}
						want := map[Format][]byte{
							FormatWebSocket: refWSFrame(opText, refAppendJSON(e, nil)),
							FormatSSE:       append(append([]byte("data: "), refAppendJSON(e, nil)...), "\n\n"...),
							FormatSocketIO:  refSocketIO(e),
						}
						for f, w := range want {
							if got := e.encode(f); !bytes.Equal(got, w) {
								t.Fatalf("format %d name %q time %v cursor %q id %q: %q, want %q", f, name, tm, cursor, id, shorten(got), shorten(w))
							}
						}
					}
				}
			}
		}
	}
}

func shorten(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}
