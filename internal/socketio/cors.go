package socketio

import (
	"net/http"

	"github.com/realtime-service/realtime-service/internal/auth"
)

// allowOrigin applies the service's origin rule (auth.OriginAllowed with Config.AllowedOrigins:
// same origin or a listed origin, matching scheme, host and port, or "*") to r and, for an allowed browser
// origin, sets the CORS response headers of the Fetch standard with credentials (the origin
// echoed, Access-Control-Allow-Credentials: true, Vary: Origin), which socket.io-client's
// long-polling with withCredentials needs. It reports whether r may proceed: requests without an
// Origin header always may.
func (h *Handler) allowOrigin(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if !auth.OriginAllowed(r, h.cfg.AllowedOrigins) {
		return false
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Set("Access-Control-Allow-Credentials", "true")
	hdr.Add("Vary", "Origin")
	return true
}

// preflight answers a CORS preflight (OPTIONS) for the long-polling requests: GET and POST with
// whatever headers the client asks for (socket.io-client's extraHeaders).
func preflight(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Methods", "GET, POST")
	if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		hdr.Set("Access-Control-Allow-Headers", rh)
		hdr.Add("Vary", "Access-Control-Request-Headers")
	}
	hdr.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
