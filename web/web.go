// Package web holds the demo page and the status page, embedded in the binary: GET / serves
// index.html, GET /status status.html (which draws GET /v1/status on <canvas>, no chart library),
// and /static/... their scripts, style sheets, the vendored socket.io-client bundle (MIT, see
// static/vendor/socket.io-client.LICENSE) and static/realtime.min.js, the project's JS client
// (clients/js) as its `npm run build` bundles it. The pages are plain HTML and JavaScript; the
// client's bundle is the one built file, copied here by `go generate ./web` (which needs npm and
// `npm ci --prefix clients/js`), and TestClientBundleIsFresh fails when the copy differs from a
// fresh build of clients/js/src.
package web

//go:generate npm --prefix ../clients/js run build
//go:generate cp ../clients/js/dist/realtime.min.js static/realtime.min.js

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
