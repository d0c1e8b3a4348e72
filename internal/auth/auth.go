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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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

// Verify checks token's signature, exp (required), nbf/iat when present (5 s of leeway), that
// each of exp, nbf and iat is a JSON number (a NumericDate, RFC 7519 §2 and §4.1.4: "exp":"1893456000"
// is refused), the absence of a crit header, and a sub of 1 to notification.MaxUserIDLen bytes.
// The error wraps ErrInvalidToken with the reason.
func (v *Verifier) Verify(token string) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	var rc numericClaims
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

// numericClaims are jwt.RegisteredClaims whose exp, nbf and iat must be JSON numbers:
// jwt.NumericDate alone also takes a string holding digits, which RFC 7519 §2 does not allow.
type numericClaims struct {
	jwt.RegisteredClaims
}

// notNumericDate says which time claim is not a JSON number; the parser wraps it.
type notNumericDate struct{ claim string }

func (e *notNumericDate) Error() string {
	return e.claim + " must be a NumericDate, a JSON number of seconds (RFC 7519 §2), not a string or another JSON value"
}

func (c *numericClaims) UnmarshalJSON(b []byte) error {
	var times struct{ Exp, Nbf, Iat json.RawMessage }
	if err := json.Unmarshal(b, &times); err != nil {
		return err
	}
	for _, t := range []struct {
		claim string
		raw   json.RawMessage
	}{{"exp", times.Exp}, {"nbf", times.Nbf}, {"iat", times.Iat}} {
		if t.raw != nil && t.raw[0] != '-' && (t.raw[0] < '0' || t.raw[0] > '9') {
			return &notNumericDate{t.claim}
		}
	}
	return json.Unmarshal(b, &c.RegisteredClaims)
}

func reason(err error) string {
	var nd *notNumericDate
	switch {
	case errors.As(err, &nd):
		return nd.Error()
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

// OriginAllowed applies REALTIME_ALLOWED_ORIGINS to a browser request. A request without an
// Origin header (not a browser) is allowed. Otherwise origins compare as RFC 6454 §6.2 serializes
// them, scheme://host[:port] with scheme and host lower-cased and the scheme's default port
// (http 80, https 443) left out, so that scheme, host and port must all match:
//   - a same-origin request is allowed: Origin is the request's own origin, whose scheme is https
//     when the connection is TLS (r.TLS) and http otherwise, and whose host and port are r.Host's.
//     X-Forwarded-Proto is not trusted, so behind a proxy that terminates TLS the public origin
//     (https://...) must be listed;
//   - any other origin, "null" (RFC 6454 §7.3: sandboxed frames, file: pages) included, must be
//     listed, or the list must hold "*". An Origin that is not a serialized origin matches only "*".
func OriginAllowed(r *http.Request, allowed []string) bool {
	header := r.Header.Get("Origin")
	if header == "" {
		return true
	}
	origin, ok := SerializeOrigin(header)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if ok && origin != "null" && origin == serializeOrigin(scheme, r.Host) {
		return true
	}
	for _, a := range allowed {
		if a == "*" {
			return true
		}
		if listed, lok := SerializeOrigin(a); ok && lok && listed == origin {
			return true
		}
	}
	return false
}

// SerializeOrigin returns origin (an Origin header, or an entry of REALTIME_ALLOWED_ORIGINS) in
// the form of RFC 6454 §6.2: "scheme://host[:port]", scheme and host lower-cased, the default port
// of http (80) and https (443) left out; "null" stays "null". ok is false when origin has a path,
// query, fragment or user info, or lacks a scheme or host.
func SerializeOrigin(origin string) (s string, ok bool) {
	if origin == "null" {
		return origin, true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil || u.Path != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false
	}
	return serializeOrigin(u.Scheme, u.Host), true
}

// serializeOrigin serializes the origin of scheme and hostport (host, host:port or [ipv6]:port).
func serializeOrigin(scheme, hostport string) string {
	scheme = strings.ToLower(scheme)
	u := url.URL{Host: hostport}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}
