package realtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
)

// ErrOtherUser is returned by Conn.Refresh for a valid token that names another user than the
// connection's. The caller answers the client if its protocol has an answer, then closes the
// connection with DisconnectOtherUser.
var ErrOtherUser = errors.New("token for another user")

// Refresh results, the values of realtime_token_refreshes_total's result label.
const (
	refreshOK        = "ok"
	refreshInvalid   = "invalid"
	refreshOtherUser = "other-user"
)

// Refresh replaces the connection's token in place (docs/client-protocol.md, "Refresh in
// place"): token is verified by v as at connect (auth.Verifier.Verify) and, when its user claim
// is the connection's user, the connection's expiry moves to the token's exp, which Refresh
// returns. Nothing else changes: the connection stays registered and its queue and cursor are
// untouched, so no event is lost or sent twice. The new exp replaces the old one even if it is
// earlier.
//
// Errors: a wrapped auth.ErrInvalidToken (also for an empty token, or a nil v: the endpoint has
// no verifier) leaves the connection as it was, to be closed at its current expiry; ErrOtherUser
// leaves closing to the caller. Each call counts once in
// realtime_token_refreshes_total{transport, result="ok"|"invalid"|"other-user"}.
func (c *Conn) Refresh(v *auth.Verifier, token string) (time.Time, error) {
	result := refreshInvalid
	defer func() { c.hub.m.refreshes.WithLabelValues(formatName(c.format), result).Inc() }()
	switch {
	case v == nil:
		return time.Time{}, fmt.Errorf("%w: token refresh is not enabled on this endpoint", auth.ErrInvalidToken)
	case token == "":
		return time.Time{}, fmt.Errorf("%w: no token", auth.ErrInvalidToken)
	}
	claims, err := v.Verify(token)
	if err != nil {
		return time.Time{}, err
	}
	if claims.UserID != c.user {
		result = refreshOtherUser
		return time.Time{}, ErrOtherUser
	}
	c.mu.Lock()
	c.expires = claims.Expires
	c.mu.Unlock()
	result = refreshOK
	return claims.Expires, nil
}

// Names of the /v1/ws client frames and of the server's answers to a refresh.
const (
	clientRefresh      = "refresh"       // {"type":"refresh","token":"<jwt>"}
	refreshedEvent     = "refreshed"     // data {"expiresAt": RFC 3339}
	refreshErrorEvent  = "refresh-error" // data {"code","message"}
	refreshInvalidCode = "invalid-token"
)

// refreshAnswer is the control frame answering a /v1/ws refresh: "refreshed" with the new expiry
// (RFC 3339, UTC, seconds as in the token's exp), or "refresh-error" with code "invalid-token"
// and the verifier's reason. It carries no cursor, so the client's cursor stays where it is.
func refreshAnswer(f Format, expires time.Time, err error) []byte {
	if err != nil {
		return Control{Event: refreshErrorEvent, Data: map[string]string{"code": refreshInvalidCode, "message": err.Error()}}.Frame(f)
	}
	return Control{Event: refreshedEvent, Data: map[string]string{"expiresAt": expires.UTC().Format(time.RFC3339)}}.Frame(f)
}
