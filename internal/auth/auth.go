// Package auth verifies and issues the JWTs that clients connect with.
//
// A client token is an HS256 JWT (RFC 7519, RFC 7518 §3.2) whose `sub` is the user ID and whose
// `exp` is required. The user ID comes from the token alone: connections never take a user ID
// from anywhere else. Browsers cannot set headers on EventSource or WebSocket, so a token is
// accepted from, in order: `Authorization: Bearer <token>` (RFC 6750 §2.1), the `access_token`
// query parameter (RFC 6750 §2.3), or a WebSocket subprotocol `bearer.<token>` offered next to
// Subprotocol.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// Subprotocol is the WebSocket subprotocol a browser offers next to "bearer.<token>"; the server
// selects it, so the token is never echoed back.
const Subprotocol = "realtime.v1"

// SubprotocolTokenPrefix prefixes a token carried as a WebSocket subprotocol.
const SubprotocolTokenPrefix = "bearer."

// maxTokenLen bounds the token size accepted (a generous JWT is well under 2 KB).
const maxTokenLen = 8 << 10

// Errors returned by Authenticate and Verify; both mean 401.
var (
	ErrNoToken      = errors.New("no token: send Authorization: Bearer <token>, ?access_token=<token> or the WebSocket subprotocol bearer.<token>")
	ErrInvalidToken = errors.New("invalid token")
)

// Claims are what a verified token says.
type Claims struct {
	UserID  string    // sub
	Expires time.Time // exp
}

// Verifier checks client tokens. Safe for concurrent use.
type Verifier struct {
	secret        []byte
	parser        *jwt.Parser
	signatureHint string // appended to a bad-signature reason (NewDevelopmentVerifier)
}

// NewVerifier returns a Verifier for HS256 tokens signed with secret. Only HS256 is accepted, so
// `alg: none` and algorithm-confusion tokens are refused (RFC 8725 §3.1).
func NewVerifier(secret []byte) *Verifier {
	return &Verifier{
		secret: secret,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
		),
	}
}

// Verify checks token's signature, exp (required), nbf/iat when present (5 s of leeway), the
// absence of a crit header, and a sub of 1 to notification.MaxUserIDLen bytes.
// The error wraps ErrInvalidToken with the reason.
func (v *Verifier) Verify(token string) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	var rc jwt.RegisteredClaims
	tok, err := v.parser.ParseWithClaims(token, &rc, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		hint := ""
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			hint = v.signatureHint
		}
		return Claims{}, fmt.Errorf("%w: %s%s", ErrInvalidToken, reason(err), hint)
	}
	if _, ok := tok.Header["crit"]; ok { // RFC 7515 §4.1.11: extensions this verifier does not know
		return Claims{}, fmt.Errorf("%w: crit header with extensions this service does not understand", ErrInvalidToken)
	}
	switch {
	case rc.Subject == "":
		return Claims{}, fmt.Errorf("%w: sub (the user ID) is missing", ErrInvalidToken)
	case len(rc.Subject) > notification.MaxUserIDLen: // no record could name this user
		return Claims{}, fmt.Errorf("%w: sub (the user ID) is longer than %d bytes", ErrInvalidToken, notification.MaxUserIDLen)
	}
	return Claims{UserID: rc.Subject, Expires: rc.ExpiresAt.Time}, nil
}

func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "exp is missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature or algorithm (HS256 only)"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	default:
		return "rejected"
	}
}

// Authenticate finds the request's token (header, query, subprotocol: see the package doc) and
// verifies it. Any userId parameter of the request is ignored.
func (v *Verifier) Authenticate(r *http.Request) (Claims, error) {
	token := TokenFromRequest(r)
	if token == "" {
		return Claims{}, ErrNoToken
	}
	return v.Verify(token)
}

// TokenFromRequest returns the token a request carries, or "".
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(p), SubprotocolTokenPrefix); ok {
				return tok
			}
		}
	}
	return ""
}

// Issue signs an HS256 token for user, valid for ttl from now.
func Issue(secret []byte, user string, ttl time.Duration, now time.Time) (string, error) {
	if user == "" {
		return "", errors.New("auth: empty user ID")
	}
	if ttl <= 0 {
		return "", errors.New("auth: ttl must be positive")
	}
	claims := jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

type ctxKey struct{}

// WithClaims returns ctx carrying the claims of the authenticated user (set by the HTTP layer
// before a client endpoint runs).
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the claims WithClaims stored, if any.
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(Claims)
	return c, ok
}

// OriginAllowed applies REALTIME_ALLOWED_ORIGINS to a browser request: a request without an
// Origin header (not a browser) and a same-origin request (Origin's host is the request's Host)
// are always allowed; otherwise the origin must be listed, or the list must hold "*". Origins
// compare case-insensitively as scheme://host[:port] (RFC 6454 §6.1).
func OriginAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	origin = strings.ToLower(strings.TrimRight(origin, "/"))
	if _, host, ok := strings.Cut(origin, "://"); ok && host == strings.ToLower(r.Host) {
		return true
	}
	for _, a := range allowed {
		if a == "*" || a == origin {
			return true
		}
	}
	return false
}
