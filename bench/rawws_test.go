package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	client "github.com/realtime-service/realtime-service/clients/go"
)

// TestRawWS drives the tool's own WebSocket client against gorilla/websocket's server: small,
// fragmented and larger-than-buffer messages, a ping that must be answered, and a close code.
func TestRawWS(t *testing.T) {
	pong := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		up := websocket.Upgrader{WriteBufferSize: 256} // messages over 256 bytes are fragmented
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		go func() {
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
		c.WriteMessage(websocket.TextMessage, []byte("small"))
		c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("f", 1000)))
		c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("L", 10000)))
		c.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
		select {
		case <-pong:
		case <-time.After(5 * time.Second):
		}
		c.WriteMessage(websocket.TextMessage, []byte("after pong"))
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "slow"), time.Now().Add(time.Second))
		time.Sleep(100 * time.Millisecond)
	}))
	defer srv.Close()

	d := newDialer("ws", srv.URL, 512)
	if _, err := d.dial(context.Background(), "bad", ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial with a bad token: %v, want a 401 handshake error", err)
	}
	fc, err := d.dial(context.Background(), "tok", "")
	if err != nil {
		t.Fatal(err)
	}
	defer fc.close()
	var got []string
	err = fc.read(func(b []byte) { got = append(got, string(b)) })
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 4008 || ce.Reason != "slow" {
		t.Errorf("read ended with %v, want close 4008 slow", err)
	}
	want := []string{"small", strings.Repeat("f", 1000), strings.Repeat("L", 10000), "after pong"}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %d bytes %.10q..., want %d bytes %.10q...", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}
