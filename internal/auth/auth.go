// Package auth verifies and issues the JWTs that clients connect with.
//
// A client token is a JWT (RFC 7519) whose user claim (`sub` unless configured) is the user ID and
// whose `exp` is required. It is verified with a shared secret (HS256/384/512, RFC 7518 §3.2), a
// public key (RSA, EC or Ed25519), or the keys of an identity provider's JWK Set chosen by `kid`
// (JWKS, RFC 7517), the algorithm always fixed by the key (see Config). The user ID comes from the
// token alone: connections never take a user ID from anywhere else. Browsers cannot set headers on EventSource or WebSocket, so a token is
// accepted from, in order: `Authorization: Bearer <token>` (RFC 6750 §2.1), the `access_token`
// query parameter (RFC 6750 §2.3), or a WebSocket subprotocol `bearer.<token>` offered next to
// Subprotocol.
package auth

import (
	"context"
	"crypto"
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

// MaxTokenLen bounds the token size accepted, in bytes (a generous JWT is well under 2 KB; an
// identity provider's token with many claims may reach 4 KB).
const MaxTokenLen = 8 << 10

// Errors returned by Authenticate and Verify; both mean 401.
var (
	ErrNoToken      = errors.New("no token: send Authorization: Bearer <token>, ?access_token=<token> or the WebSocket subprotocol bearer.<token>")
	ErrInvalidToken = errors.New("invalid token")
)

// Claims are what a verified token says.
type Claims struct {
	UserID  string    // the user claim (Config.UserClaim, default sub)
	Expires time.Time // exp
}

// Config says which keys verify client tokens and what a token must claim. At least one key
// source (Secret, PublicKey, JWKS) must be set; several may be. The key is chosen by the token's
// header, and the algorithm by the key (RFC 8725 §3.1), never the other way round:
//   - alg HS256, HS384 or HS512: Secret, which must be at least as long as the hash output
//     (32, 48, 64 bytes; RFC 7518 §3.2);
//   - any other alg with a kid, and JWKS set: the JWKS key with that kid (fetched again when
//     unknown, rate limited), else PublicKey if set;
//   - any other alg without a kid: PublicKey (a JWKS key is only ever chosen by kid).
//
// RSA keys verify RS256/384/512 and PS256/384/512, EC keys ES256/384/512 by curve, Ed25519 keys
// EdDSA; `alg: none` is never accepted.
type Config struct {
	// Secret verifies HS256/384/512 tokens (REALTIME_JWT_SECRET); nil refuses them.
	Secret []byte
	// PublicKey verifies asymmetric tokens (REALTIME_JWT_PUBLIC_KEY_FILE, see ParsePublicKeyPEM).
	PublicKey crypto.PublicKey
	// JWKS verifies asymmetric tokens by kid (REALTIME_JWKS_URL); the caller runs it (JWKS.Run).
	JWKS *JWKS
	// Issuer, when set, must equal the token's iss (REALTIME_JWT_ISSUER, RFC 7519 §4.1.1).
	Issuer string
	// Audience, when set, must be one of the token's aud values (REALTIME_JWT_AUDIENCE,
	// RFC 7519 §4.1.3).
	Audience string
	// UserClaim names the claim holding the user ID, a JSON string of 1 to
	// notification.MaxUserIDLen bytes (REALTIME_JWT_USER_CLAIM; "" means "sub").
	UserClaim string
}

// Verifier checks client tokens. Safe for concurrent use.
type Verifier struct {
	secret        []byte
	publicKey     crypto.PublicKey
	jwks          *JWKS
	userClaim     string
	parser        *jwt.Parser
	signatureHint string // appended to a bad-signature reason (NewDevelopmentVerifier)
}

// New returns a Verifier for cfg. The error says what cfg lacks or holds wrongly.
func New(cfg Config) (*Verifier, error) {
	if cfg.Secret == nil && cfg.PublicKey == nil && cfg.JWKS == nil {
		return nil, errors.New("auth: no key source (a secret, a public key or a JWKS)")
	}
	if cfg.Secret != nil && len(cfg.Secret) < hmacMinBytes["HS256"] {
		return nil, fmt.Errorf("auth: a secret of %d bytes: at least %d are required (RFC 7518 §3.2)", len(cfg.Secret), hmacMinBytes["HS256"])
	}
	if cfg.PublicKey != nil {
		if err := usableKey(cfg.PublicKey); err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(validMethods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5 * time.Second),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{
		secret:    cfg.Secret,
		publicKey: cfg.PublicKey,
		jwks:      cfg.JWKS,
		userClaim: cfg.UserClaim,
		parser:    jwt.NewParser(opts...),
	}, nil
}

// NewVerifier returns a Verifier for HS256/384/512 tokens signed with secret (at least 32 bytes;
// it panics on a shorter one), their user ID in sub. `alg: none` and algorithm-confusion tokens
// are refused (RFC 8725 §3.1).
func NewVerifier(secret []byte) *Verifier {
	v, err := New(Config{Secret: secret})
	if err != nil {
		panic(err)
	}
	return v
}

// Verify checks token's signature with the key its header selects (see Config), exp (required),
// nbf/iat when present (5 s of leeway), iss and aud when configured, that each of exp, nbf and
// iat is a JSON number (a NumericDate, RFC 7519 §2 and §4.1.4: "exp":"1893456000" is refused),
// the absence of a crit header, and a user claim that is a string of 1 to
// notification.MaxUserIDLen bytes. The error wraps ErrInvalidToken with the reason.
func (v *Verifier) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	rc := numericClaims{userClaim: v.userClaim}
	tok, err := v.parser.ParseWithClaims(token, &rc, v.key)
	if err != nil {
		hint := ""
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			hint = v.signatureHint
		}
		return Claims{}, fmt.Errorf("%w: %s%s", ErrInvalidToken, reason(err, &rc), hint)
	}
	if _, ok := tok.Header["crit"]; ok { // RFC 7515 §4.1.11: extensions this verifier does not know
		return Claims{}, fmt.Errorf("%w: crit header with extensions this service does not understand", ErrInvalidToken)
	}
	switch {
	case rc.user == "":
		return Claims{}, fmt.Errorf("%w: %s (the user ID) is missing", ErrInvalidToken, v.userClaim)
	case len(rc.user) > notification.MaxUserIDLen: // no record could name this user
		return Claims{}, fmt.Errorf("%w: %s (the user ID) is longer than %d bytes", ErrInvalidToken, v.userClaim, notification.MaxUserIDLen)
	}
	return Claims{UserID: rc.user, Expires: rc.ExpiresAt.Time}, nil
}

// key selects the key that verifies t (see Config); the parser has already refused an alg
// outside validMethods.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if min, ok := hmacMinBytes[alg]; ok {
		switch {
		case v.secret == nil:
			return nil, &keyError{alg + " tokens are not accepted: no REALTIME_JWT_SECRET"}
		case len(v.secret) < min:
			return nil, &keyError{fmt.Sprintf("%s needs a secret of at least %d bytes (RFC 7518 §3.2); REALTIME_JWT_SECRET is shorter", alg, min)}
		}
		return v.secret, nil
	}
	kid, hasKID := t.Header["kid"]
	if hasKID && v.jwks != nil {
		s, ok := kid.(string)
		if !ok {
			return nil, &keyError{"kid must be a string"}
		}
		k, err := v.jwks.key(s)
		switch {
		case err == nil:
			if k.alg != "" && k.alg != alg { // RFC 7517 §4.4
				return nil, &keyError{fmt.Sprintf("alg %s is not the alg %s of the JWKS key", alg, k.alg)}
			}
			return pinAlg(k.key, alg)
		case v.publicKey == nil:
			return nil, err
		}
	}
	switch {
	case v.publicKey != nil:
		return pinAlg(v.publicKey, alg)
	case v.jwks != nil:
		return nil, &keyError{"no kid header: the keys of REALTIME_JWKS_URL are chosen by kid"}
	}
	return nil, &keyError{alg + " tokens are not accepted: no REALTIME_JWT_PUBLIC_KEY_FILE or REALTIME_JWKS_URL"}
}

// numericClaims are jwt.RegisteredClaims whose exp, nbf and iat must be JSON numbers:
// jwt.NumericDate alone also takes a string holding digits, which RFC 7519 §2 does not allow.
// user is the string value of the claim named userClaim.
type numericClaims struct {
	jwt.RegisteredClaims
	userClaim string
	user      string
}

// notNumericDate says which time claim is not a JSON number; the parser wraps it.
type notNumericDate struct{ claim string }

func (e *notNumericDate) Error() string {
	return e.claim + " must be a NumericDate, a JSON number of seconds (RFC 7519 §2), not a string or another JSON value"
}

// notString says the user claim is not a JSON string; the parser wraps it.
type notString struct{ claim string }

func (e *notString) Error() string { return e.claim + " (the user ID) must be a JSON string" }

func (c *numericClaims) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, claim := range []string{"exp", "nbf", "iat"} {
		if t, ok := all[claim]; ok && t[0] != '-' && (t[0] < '0' || t[0] > '9') {
			return &notNumericDate{claim}
		}
	}
	if u, ok := all[c.userClaim]; ok {
		if u[0] != '"' || json.Unmarshal(u, &c.user) != nil {
			return &notString{c.userClaim}
		}
	}
	return json.Unmarshal(b, &c.RegisteredClaims)
}

// reason says why the parser refused a token, in words for its holder; rc holds the claims
// parsed, if any.
func reason(err error, rc *numericClaims) string {
	var nd *notNumericDate
	var ns *notString
	var ke *keyError
	switch {
	case errors.As(err, &ke):
		return ke.Error()
	case errors.As(err, &nd):
		return nd.Error()
	case errors.As(err, &ns):
		return ns.Error()
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && rc.ExpiresAt == nil:
		return "exp is missing"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && rc.Issuer == "":
		return "iss is missing (REALTIME_JWT_ISSUER requires it)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "aud is missing (REALTIME_JWT_AUDIENCE requires it)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "iss is not the issuer this service accepts (REALTIME_JWT_ISSUER)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "aud does not name this service (REALTIME_JWT_AUDIENCE)"
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

// Issue signs an HS256 token for user (its sub), valid for ttl from now.
func Issue(secret []byte, user string, ttl time.Duration, now time.Time) (string, error) {
	return IssueFor(secret, Config{}, user, ttl, now)
}

// IssueFor signs an HS256 token for user that a Verifier of cfg accepts: the user in
// cfg.UserClaim (sub when empty), iss and aud set to cfg.Issuer and cfg.Audience when they are
// set. Only cfg's claim settings are used, never its keys.
func IssueFor(secret []byte, cfg Config, user string, ttl time.Duration, now time.Time) (string, error) {
	if user == "" {
		return "", errors.New("auth: empty user ID")
	}
	if ttl <= 0 {
		return "", errors.New("auth: ttl must be positive")
	}
	claims := jwt.MapClaims{
		"sub": user,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if cfg.UserClaim != "" {
		claims[cfg.UserClaim] = user
	}
	if cfg.Issuer != "" {
		claims["iss"] = cfg.Issuer
	}
	if cfg.Audience != "" {
		claims["aud"] = cfg.Audience
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
