package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
	"github.com/realtime-service/realtime-service/internal/socketio"
)

// TestSocketIOClient checks the tool's Socket.IO client against the service's own Socket.IO
// handler in process: it connects with its token and receives an event published for its user,
// with the bench field the receivers look for.
func TestSocketIOClient(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	hub := realtime.NewHub(realtime.HubConfig{})
	h := socketio.NewHandler(hub, socketio.Config{Verifier: auth.NewVerifier(secret)})
	srv := httptest.NewServer(h)
	defer srv.Close()
	tok, err := auth.Issue(secret, "u1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fc, err := newDialer("socketio", srv.URL, 4096).dial(ctx, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	p := &plan{run: "abc", users: 2, fanout: 1, total: 4, base: time.Now()}
	r := newReceiver(p, 1)
	go r.serve(fc)
	defer r.stop(fc)
	value := conceptValue(nil, "abc", 1, p.now(), usersJSON([]string{"u1"}))
	for !waitUntil(ctx, 200*time.Millisecond, func() bool { return r.uniq.Load() == 1 }) {
		if ctx.Err() != nil {
			t.Fatalf("no event received: uniq %d, foreign %d, control %d", r.uniq.Load(), r.foreign, r.control)
		}
		hub.Publish(&notification.Event{Name: "concept-mastered", Topic: "concept-notifications", Offset: 7,
			Time: time.Now(), UserIDs: []string{"u1"}, Data: value})
	}
}
