package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/httpapi"
)

func TestBodyTooLarge(t *testing.T) {
	// MaxBodyBytes is 4096 in testConfig; this body is a valid notification of about 5 kB.
	big := `{"conceptId":"c","userIds":["` + strings.Repeat("u", 5000) + `"],"conceptName":"n","masteryLevel":0.5}`
	tests := []struct {
		name          string
		path          string
		contentLength bool // false: length unknown (chunked), so the limit trips while reading
	}{
		{"notification, Content-Length", conceptPath, true},
		{"notification, chunked", conceptPath, false},
		{"records, Content-Length", "/v1/topics/t/records", true},
		{"records, chunked", "/v1/topics/t/records", false},
		{"create topic, chunked", "/v1/topics", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			body := big
			if tc.path == "/v1/topics/t/records" {
				body = `{"value":` + big + `}`
			}
			r := request(http.MethodPost, tc.path, body)
			if !tc.contentLength {
				r.ContentLength = -1
			}
			w := s.serve(r)
			p := problemOf(t, w, http.StatusRequestEntityTooLarge, "body-too-large")
			if c := w.Header().Get("Connection"); c != "close" {
				t.Errorf("Connection = %q, want close: the rest of the body is not read", c)
			}
			if !strings.Contains(p.Detail, "4096") {
				t.Errorf("detail %q does not state the limit", p.Detail)
			}
			if n := s.kafka.calls(); n != 0 {
				t.Errorf("Produce called %d times", n)
			}
			if len(s.kafka.created) != 0 {
				t.Errorf("topic created")
			}
		})
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	tests := []struct {
		name        string
		contentType string // "" : no header
		want        int
	}{
		{"missing", "", http.StatusUnsupportedMediaType},
		{"text/plain", "text/plain", http.StatusUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"json with a suffix is not json", "application/problem+json", http.StatusUnsupportedMediaType},
		{"malformed", "application/json;;", http.StatusUnsupportedMediaType},
		{"json", "application/json", http.StatusCreated},
		{"json with charset", "application/json; charset=utf-8", http.StatusCreated},
		{"json with charset in capitals", "application/json; charset=UTF-8", http.StatusCreated},
		{"json in another charset", "application/json; charset=iso-8859-1", http.StatusUnsupportedMediaType},
		{"json in capitals", "Application/JSON", http.StatusCreated},
	}
	for _, path := range []string{conceptPath, "/v1/topics/t/records"} {
		for _, tc := range tests {
			t.Run(path+" "+tc.name, func(t *testing.T) {
				s := newServer(t)
				body := validConcept
				if path != conceptPath {
					body = `{"value":1}`
				}
				r := request(http.MethodPost, path, body)
				r.Header.Del("Content-Type")
				if tc.contentType != "" {
					r.Header.Set("Content-Type", tc.contentType)
				}
				w := s.serve(r)
				if tc.want != http.StatusUnsupportedMediaType {
					if w.Code != tc.want {
						t.Fatalf("status = %d, want %d: %s", w.Code, tc.want, w.Body)
					}
					return
				}
				problemOf(t, w, tc.want, "unsupported-media-type")
				if n := s.kafka.calls(); n != 0 {
					t.Errorf("Produce called %d times", n)
				}
			})
		}
	}
}

// TestABodyTricklingInIsCutOff: the server has no read timeout (client streams are long-lived),
// so a produce whose body never completes must be answered once KAFKA_REQUEST_TIMEOUT passes
// instead of holding its handler and connection forever.
func TestABodyTricklingInIsCutOff(t *testing.T) {
	s := newServer(t, func(c *config.Config, _ *httpapi.Deps) { c.Kafka.RequestTimeout = 100 * time.Millisecond })
	srv := httptest.NewServer(s.handler)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{", conceptPath, testKey)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // only so that a failing test ends
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body trickles: %v", err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if n := s.kafka.calls(); n != 0 {
		t.Errorf("Produce called %d times", n)
	}
}

// TestAnUnreadBodyThatNeverComesIsCutOff: a request that declares a body and sends none holds its
// connection no longer than KAFKA_REQUEST_TIMEOUT, also on routes that never read a body (net/http
// reads up to 256 KiB of it before it answers): one without an API key, an unknown route, a probe.
func TestAnUnreadBodyThatNeverComesIsCutOff(t *testing.T) {
	s := newServer(t, func(c *config.Config, _ *httpapi.Deps) { c.Kafka.RequestTimeout = 100 * time.Millisecond })
	srv := httptest.NewServer(s.handler)
	defer srv.Close()
	for _, tc := range []struct {
		request string
		status  int
	}{
		{"POST " + conceptPath, http.StatusUnauthorized},
		{"POST /no/such/route", http.StatusNotFound},
		{"GET /health/live", http.StatusOK},
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", tc.request)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // only so that a failing test ends
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Errorf("%s: no answer while the body does not come: %v", tc.request, err)
			continue
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.request, resp.StatusCode, tc.status)
		}
	}
}
