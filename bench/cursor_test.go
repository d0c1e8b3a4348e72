package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
	"github.com/realtime-service/realtime-service/internal/socketio"
)

// TestClientCursorResume checks the tool's clients against the service's own handlers in
// process, on every transport the tool speaks: a client gets its opening cursor and five events
// (fewer than the 32 between cursor frames), drops, misses three, and resumes with its resume
// token (its cursor and the five IDs): it gets exactly the three, then a live event, nothing
// twice. A client that resumes with the cursor alone gets the five again, and drops them on ID.
func TestClientCursorResume(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	verifier := auth.NewVerifier(secret)
	hub := realtime.NewHub(realtime.HubConfig{History: realtime.HistoryConfig{PerUser: 100}})
	cc, err := realtime.NewCursorCodec("cluster", []string{topicConcepts})
	if err != nil {
		t.Fatal(err)
	}
	hub.SetCursorCodec(cc)
	hub.Assigned(map[string]map[int32]int64{topicConcepts: {0: 0, 1: 0, 2: 0, 3: 0}})
	authed := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, err := verifier.Authenticate(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), claims)))
		})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", authed(realtime.NewWebSocketHandler(hub, realtime.EndpointConfig{})))
	mux.Handle("GET /v1/events", authed(realtime.NewSSEHandler(hub, realtime.EndpointConfig{})))
	mux.Handle("/socket.io/", socketio.NewHandler(hub, socketio.Config{Verifier: verifier}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer hub.Shutdown(context.Background())

	var offMu sync.Mutex
	next := map[int32]int64{}
	publish := func(user string, n int) []string { // n events for user over partitions 0-3
		offMu.Lock()
		defer offMu.Unlock()
		var ids []string
		for i := range n {
			p := int32(i % 4)
			ev := &notification.Event{Name: "concept-mastered", Topic: topicConcepts, Partition: p, Offset: next[p],
				Time: time.Now(), UserIDs: []string{user}, Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
			next[p]++
			hub.Publish(ev)
			ids = append(ids, ev.ID())
		}
		return ids
	}

	for _, transport := range []string{"ws", "ws-gorilla", "sse", "socketio"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			user := "u-" + transport
			tok, err := auth.Issue(secret, user, time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			d := newDialer(transport, srv.URL, 4096)
			// connect dials with k's token and reads into k until the returned stop is called;
			// events and cursor frames arrive on the channels.
			connect := func(k *clientCursor) (events chan string, cursors chan struct{}, stop func()) {
				t.Helper()
				fc, err := d.dial(ctx, tok, k.token())
				if err != nil {
					t.Fatal(err)
				}
				events, cursors = make(chan string, 100), make(chan struct{}, 100)
				done := make(chan struct{})
				var foreign int64
				go func() {
					defer close(done)
					readClientEvents(fc, k, &foreign, func(name string, _ []byte, id string) {
						switch name {
						case "cursor":
							cursors <- struct{}{}
						case "concept-mastered":
							events <- id
						default:
							t.Errorf("unexpected %q frame", name)
						}
					})
				}()
				return events, cursors, func() {
					fc.close()
					<-done
					if foreign > 0 {
						t.Errorf("%d unparsable frames", foreign)
					}
				}
			}
			await := func(c <-chan struct{}, what string) {
				t.Helper()
				select {
				case <-c:
				case <-ctx.Done():
					t.Fatalf("no %s", what)
				}
			}
			receive := func(events <-chan string, n int) []string {
				t.Helper()
				var got []string
				for len(got) < n {
					select {
					case id := <-events:
						got = append(got, id)
					case <-ctx.Done():
						t.Fatalf("%d of %d events: %v", len(got), n, got)
					}
				}
				return got
			}

			k := newClientCursor()
			events, cursors, stop := connect(k)
			await(cursors, "opening cursor")
			first := publish(user, 5)
			if got := receive(events, 5); !slices.Equal(got, first) {
				stop()
				t.Fatalf("got %v; want %v", got, first)
			}
			stop()
			if cursor, ids, _ := strings.Cut(k.token(), "~"); cursor == "" || ids != strings.Join(first, ",") {
				t.Fatalf("the client holds cursor %q and IDs %v; want a cursor and %v", cursor, ids, first)
			}
			missed := publish(user, 3)
			cursorOnly := k.clone()
			cursorOnly.onCursor(cursorOnly.r.Cursor()) // the same cursor: no IDs after it

			events, cursors, stop = connect(k)
			if got := receive(events, 3); !sameIDs(got, missed) {
				stop()
				t.Fatalf("resumed with the IDs: got %v; want the missed %v", got, missed)
			}
			await(cursors, "cursor frame after the replay")
			live := publish(user, 1)
			got := receive(events, 1)
			stop()
			if !slices.Equal(got, live) || k.dups != 0 || k.noID != 0 {
				t.Fatalf("then %v (want the live %v); %d events dropped on ID, %d without one; want none", got, live, k.dups, k.noID)
			}

			// The cursor alone: the five come again with the three (a replay is in partition order),
			// then the live one; de-duplication drops the five.
			events, _, stop = connect(cursorOnly)
			got = receive(events, 4)
			stop()
			if want := append(slices.Clone(missed), live...); !sameIDs(got[:3], missed) || got[3] != live[0] || cursorOnly.dups != 5 {
				t.Fatalf("resumed with the cursor alone: got %v after dropping %d on ID; want %v after dropping 5", got, cursorOnly.dups, want)
			}
		})
	}
}

// sameIDs reports whether a and b hold the same IDs, in any order.
func sameIDs(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
