package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Users authenticates the users of the client endpoints; *auth.Verifier implements it.
type Users interface {
	// Authenticate returns the claims of the request's token (header, access_token query
	// parameter or WebSocket subprotocol); errors wrap auth.ErrNoToken or auth.ErrInvalidToken.
	Authenticate(r *http.Request) (auth.Claims, error)
}

// requireUser guards the client endpoints (/v1/ws, /v1/events). Before any upgrade or stream it
// answers 403 forbidden-origin when a browser page of an origin not in REALTIME_ALLOWED_ORIGINS
// calls (auth.OriginAllowed), and 401 user-unauthorized when the request has no valid user token
// (missing, expired, wrongly signed, alg none). Otherwise the claims go on the request context
// (auth.WithClaims) and, for a cross-origin page, Access-Control-Allow-Origin names its origin.
func requireUser(users Users, origins []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !auth.OriginAllowed(r, origins) {
				writeProblem(w, r, newProblem(codeForbiddenOrigin, "Origin "+r.Header.Get("Origin")+" is not allowed: add it to REALTIME_ALLOWED_ORIGINS."))
				return
			}
			if origin := r.Header.Get("Origin"); origin != "" {
				w.Header().Set("Access-Control-Allow-Origin", origin)
				w.Header().Add("Vary", "Origin")
			}
			claims, err := users.Authenticate(r)
			if err != nil {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate+`, error="invalid_token"`)
				detail := "A valid user token is required: " + err.Error() + "."
				if errors.Is(err, auth.ErrNoToken) {
					w.Header().Set("WWW-Authenticate", wwwAuthenticate)
					detail = "A user token is required: send Authorization: Bearer <token>, ?access_token=<token> or the WebSocket subprotocol bearer.<token>."
				}
				writeProblem(w, r, newProblem(codeUserUnauthorized, detail))
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), claims)))
		})
	}
}

// DevTokenHandler serves GET /v1/dev/token?user=<id>[&ttl=<duration>] in development mode only
// (main mounts it when config.Config.DevTokens holds: no client-token key configured and a
// loopback listener): it signs a client token for any user with the random secret of this run,
// so the demo page works with zero configuration.
//
//	200 {"token":"eyJ...","userId":"alice","expiresAt":"2026-11-29T11:00:00Z"}
//	400 validation-error (user missing, ttl not a duration from 1s to 24h)
func DevTokenHandler(secret []byte) http.Handler {
	type response struct {
		Token     string    `json:"token"`
		UserID    string    `json:"userId"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		ttl := time.Hour
		var fields []notification.FieldError
		switch {
		case user == "":
			fields = append(fields, notification.FieldError{Field: "user", Code: "required", Message: "is required"})
		case len(user) > notification.MaxUserIDLen:
			fields = append(fields, notification.FieldError{Field: "user", Code: "max", Message: "must be at most " + strconv.Itoa(notification.MaxUserIDLen) + " bytes"})
		}
		if s := r.URL.Query().Get("ttl"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second || d > 24*time.Hour {
				fields = append(fields, notification.FieldError{Field: "ttl", Code: "duration", Message: "must be a duration from 1s to 24h, e.g. 15m"})
			}
			ttl = d
		}
		if fields != nil {
			writeProblem(w, r, validationProblem(fields))
			return
		}
		now := time.Now()
		tok, err := auth.Issue(secret, user, ttl, now)
		if err != nil {
			writeProblem(w, r, internalProblem())
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		encode(w, r, http.StatusOK, response{Token: tok, UserID: user, ExpiresAt: now.Add(ttl).UTC().Truncate(time.Second)})
	})
}
