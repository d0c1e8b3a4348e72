package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesThePageAndItsAssets(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/", "text/html", "<title>realtime-service demo</title>", 200},
		{"/static/app.js", "text/javascript", `import { createClient } from "/static/realtime.min.js"`, 200},
		{"/static/realtime.min.js", "text/javascript", "createClient", 200},
		{"/static/style.css", "text/css", ".notifications", 200},
		{"/static/vendor/socket.io.min.js", "text/javascript", "Socket.IO v4", 200},
		{"/status", "text/html", "<title>realtime-service status</title>", 200},
		{"/static/status.js", "text/javascript", "function drawChart(", 200},
		{"/static/status.css", "text/css", ".tile", 200},
		{"/nope", "", "", 404},
		{"/static/../web.go", "", "", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, rec.Code, tc.status)
			continue
		}
		if tc.status == 200 && (!strings.HasPrefix(rec.Header().Get("Content-Type"), tc.contentType) || !strings.Contains(string(body), tc.contains)) {
			t.Errorf("%s: %s, body without %q", tc.path, rec.Header().Get("Content-Type"), tc.contains)
		}
	}
}
