package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// wwwAuthenticate is the challenge of a 401 answer (RFC 6750 §3); with an unknown key it also
// carries error="invalid_token" (RFC 6750 §3.1).
const wwwAuthenticate = `Bearer realm="realtime-service"`

// requireAPIKey returns middleware that lets a request through only if it carries one of keys, as
// "Authorization: Bearer <key>" (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1)
// or "X-API-Key: <key>". Otherwise it answers 401 unauthorized with WWW-Authenticate. With no
// keys every request passes (the development mode config.Load allows with the embedded broker).
//
// Keys are compared as SHA-256 digests with crypto/subtle, against every key without stopping
// early, so the time taken says neither which key nearly matched nor how long the keys are.
func requireAPIKey(keys []string) func(http.Handler) http.Handler {
	if len(keys) == 0 {
		return func(h http.Handler) http.Handler { return h }
	}
	digests := make([][sha256.Size]byte, len(keys))
	for i, k := range keys {
		digests[i] = sha256.Sum256([]byte(k))
	}
	known := func(presented string) int {
		d := sha256.Sum256([]byte(presented))
		match := 0
		for i := range digests {
			match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
		}
		return match
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bearer, hasBearer := bearerToken(r)
			apiKey := r.Header.Get("X-API-Key")
			if !hasBearer && apiKey == "" {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate)
				writeProblem(w, r, unauthorizedProblem("An API key is required: send Authorization: Bearer <key> or X-API-Key: <key>."))
				return
			}
			match := 0
			if hasBearer {
				match |= known(bearer)
			}
			if apiKey != "" {
				match |= known(apiKey)
			}
			if match != 1 {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate+`, error="invalid_token"`)
				writeProblem(w, r, unauthorizedProblem("The API key is not valid."))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
