package realtime

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/auth"
)

// clientEndpoints opens and closes connections on /v1/ws and /v1/events alike. An open
// connection is also closed when the test ends, so that a failing test does not hang in the
// server's Close (register it with t.Cleanup first).
var clientEndpoints = []struct {
	name string
	new  func(*Hub, EndpointConfig) http.Handler
	// open connects; it returns the refusal's response when the server answers with a status.
	open func(t *testing.T, url string) (closer func(), refused *http.Response)
}{
	{"ws", NewWebSocketHandler, func(t *testing.T, url string) (func(), *http.Response) {
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
		if err == websocket.ErrBadHandshake {
			return nil, resp
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		go readAll(ws) // answers pings and the server's close frame
		return func() { ws.Close() }, nil
	}},
	{"sse", NewSSEHandler, func(t *testing.T, url string) (func(), *http.Response) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			cancel()
			return nil, resp
		}
		closer := func() { cancel(); resp.Body.Close() }
		t.Cleanup(closer) // before the server's Close, which waits for the stream
		return closer, nil
	}},
}

// TestClientEndpointsAdmitUpToTheNodeCap: with REALTIME_MAX_CONNECTIONS = 2, two connections
// open, the third gets 503 node-full with Retry-After, closing one admits another, and once every
// connection is closed no admission slot is held.
func TestClientEndpointsAdmitUpToTheNodeCap(t *testing.T) {
	for _, ep := range clientEndpoints {
		t.Run(ep.name, func(t *testing.T) {
			adm := admission.New(admission.Config{MaxConnections: 2})
			h := NewHub(HubConfig{})
			srv := httptest.NewServer(asUser("alice", ep.new(h, EndpointConfig{Admission: adm})))
			t.Cleanup(srv.Close)
			mustOpen := func() func() {
				t.Helper()
				closer, refused := ep.open(t, srv.URL)
				if refused != nil {
					t.Fatalf("refused with %d, want admitted", refused.StatusCode)
				}
				return closer
			}
			first, second := mustOpen(), mustOpen()
			_, refused := ep.open(t, srv.URL)
			if refused == nil {
				t.Fatal("the third connection was admitted past the cap of 2")
			}
			var p struct {
				Type, Code string
				Status     int
			}
			json.NewDecoder(refused.Body).Decode(&p)
			refused.Body.Close()
			if refused.StatusCode != http.StatusServiceUnavailable || p.Status != 503 || p.Code != "node-full" ||
				p.Type != "/problems/node-full" || refused.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("refusal %d %+v (%s), want a 503 node-full problem", refused.StatusCode, p, refused.Header.Get("Content-Type"))
			}
			if refused.Header.Get("Retry-After") == "" {
				t.Error("the refusal has no Retry-After")
			}
			first()
			waitFor(t, "the closed connection's slot", func() bool { return adm.Connections() == 1 })
			third := mustOpen()
			second()
			third()
			waitFor(t, "every slot released", func() bool { return adm.Connections() == 0 && h.Connections() == 0 })
		})
	}
}

// TestClientEndpointsReleaseAdmissionOnEveryPath: whatever ends a connection (or keeps it from
// opening), its admission slot comes back.
func TestClientEndpointsReleaseAdmissionOnEveryPath(t *testing.T) {
	type setup struct {
		hub     HubConfig
		ep      EndpointConfig
		expires time.Duration // the token's lifetime
	}
	paths := []struct {
		name  string
		setup setup
		// run drives one connection to its end; it may leave the connection open for the
		// server to close.
		run func(t *testing.T, h *Hub, url string)
	}{
		{"refused by the per-user cap (429)", setup{hub: HubConfig{MaxConnsPerUser: 1}}, func(t *testing.T, h *Hub, url string) {
			if _, _, err := h.Register(ConnOptions{User: "alice", Transport: newFake(FormatSSE, false)}); err != nil {
				t.Fatal(err)
			}
			for _, ep := range clientEndpoints {
				if _, refused := ep.open(t, url+"/"+ep.name); refused == nil || refused.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("%s: want 429", ep.name)
				}
			}
		}},
		{"failed WebSocket upgrade", setup{}, func(t *testing.T, h *Hub, url string) {
			resp, err := http.Get(url + "/ws") // no Upgrade header: gorilla answers 400
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain GET on /v1/ws: %d, want 400", resp.StatusCode)
			}
		}},
		{"the client closes", setup{}, func(t *testing.T, h *Hub, url string) {
			for _, ep := range clientEndpoints {
				closer, refused := ep.open(t, url+"/"+ep.name)
				if refused != nil {
					t.Fatalf("%s refused", ep.name)
				}
				waitFor(t, "registration", func() bool { return h.Connections() == 1 })
				closer()
				waitFor(t, "the close", func() bool { return h.Connections() == 0 })
			}
		}},
		{"ping timeout", setup{ep: EndpointConfig{PingInterval: 20 * time.Millisecond, PongTimeout: 20 * time.Millisecond}}, func(t *testing.T, h *Hub, url string) {
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() }) // never reads, so never answers a ping
			waitFor(t, "the ping timeout", func() bool { return h.m.disconnectCount("ping_timeout") == 1 })
		}},
		{"token expiry", setup{ep: EndpointConfig{PingInterval: 20 * time.Millisecond}, expires: 50 * time.Millisecond}, func(t *testing.T, h *Hub, url string) {
			for _, ep := range clientEndpoints {
				if _, refused := ep.open(t, url+"/"+ep.name); refused != nil { // the server closes it
					t.Fatalf("%s refused", ep.name)
				}
			}
			waitFor(t, "both tokens expired", func() bool { return h.m.disconnectCount("token_expired") == 2 })
		}},
		{"message too big", setup{}, func(t *testing.T, h *Hub, url string) {
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			ws.WriteMessage(websocket.BinaryMessage, make([]byte, maxClientMessage+1))
			go readAll(ws)
			waitFor(t, "the 1009 close", func() bool { return h.m.disconnectCount("too_big") == 1 })
		}},
		{"shutdown", setup{}, func(t *testing.T, h *Hub, url string) {
			for _, ep := range clientEndpoints {
				if _, refused := ep.open(t, url+"/"+ep.name); refused != nil { // the server closes it
					t.Fatalf("%s refused", ep.name)
				}
			}
			waitFor(t, "registrations", func() bool { return h.Connections() == 2 })
			if err := h.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, ep := range clientEndpoints { // refused while shutting down (503, not node-full)
				if _, refused := ep.open(t, url+"/"+ep.name); refused != nil {
					refused.Body.Close()
				}
			}
		}},
	}
	for _, tc := range paths {
		t.Run(tc.name, func(t *testing.T) {
			adm := admission.New(admission.Config{})
			h := NewHub(tc.setup.hub)
			cfg := tc.setup.ep
			cfg.Admission = adm
			lifetime := tc.setup.expires
			if lifetime == 0 {
				lifetime = time.Hour
			}
			mux := http.NewServeMux()
			mux.Handle("/ws", NewWebSocketHandler(h, cfg))
			mux.Handle("/sse", NewSSEHandler(h, cfg))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := auth.WithClaims(r.Context(), auth.Claims{UserID: "alice", Expires: time.Now().Add(lifetime)})
				mux.ServeHTTP(w, r.WithContext(ctx))
			}))
			t.Cleanup(srv.Close)
			tc.run(t, h, srv.URL)
			waitFor(t, "every admission slot released", func() bool { return adm.Connections() == 0 })
		})
	}
}

// disconnectCount is realtime_disconnects_total{reason}.
func (m *metrics) disconnectCount(reason string) int {
	var d dto.Metric
	m.disconnects.WithLabelValues(reason).Write(&d)
	return int(d.GetCounter().GetValue())
}

// readAll reads ws until it fails, as a browser does: gorilla answers pings and echoes the close.
func readAll(ws *websocket.Conn) {
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return
		}
	}
}
