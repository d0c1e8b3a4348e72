// Package web holds the demo page and the status page, embedded in the binary: GET / serves
// index.html, GET /status status.html (which draws GET /v1/status on <canvas>, no chart library),
// and /static/... their scripts, style sheets and the vendored socket.io-client bundle (MIT, see
// static/vendor/socket.io-client.LICENSE). Plain HTML and JavaScript, no build step.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// Handler serves the demo page at "/", the status page at "/status" and their assets under
// "/static/".
func Handler() http.Handler {
	static, _ := fs.Sub(files, "static") // the directory is embedded, so Sub cannot fail
	assets := http.StripPrefix("/static/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/" || r.URL.Path == "/index.html":
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, static, "index.html")
		case r.URL.Path == "/status":
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, static, "status.html")
		case strings.HasPrefix(r.URL.Path, "/static/"):
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
