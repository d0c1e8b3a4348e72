package auth

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte(strings.Repeat("k", 32))

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	v := NewVerifier(secret)
	now := time.Now()
	good, err := Issue(secret, "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"issued", good, ""},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}), "expired"},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"}), "exp is missing"},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}), "sub"},
		{"wrong key", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), jwt.MapClaims{"sub": "alice", "exp": exp}), "bad signature"},
		{"HS512 with a 32-byte secret", sign(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "alice", "exp": exp}), "at least 64 bytes"},
		{"RS256 without a public key", sign(t, jwt.SigningMethodRS256, testKeys().rsa, jwt.MapClaims{"sub": "alice", "exp": exp}), "RS256 tokens are not accepted"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice", "exp": exp}), "bad signature"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": exp, "nbf": now.Add(time.Hour).Unix()}), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": exp, "iat": now.Add(time.Hour).Unix()}), "not valid yet"},
		{"sub longer than any user ID", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": strings.Repeat("u", 257), "exp": exp}), "longer than 256"},
		{"crit header", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": exp})
			tok.Header["crit"] = []string{"x-unknown"}
			s, err := tok.SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), "crit"},
		// RFC 7519 §2: a NumericDate is a JSON number; jwt.NumericDate alone takes these strings.
		{"exp as a string", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": strconv.FormatInt(exp, 10)}), "exp must be a NumericDate"},
		{"nbf as a string", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": exp, "nbf": "0"}), "nbf must be a NumericDate"},
		{"iat as a string", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": exp, "iat": strconv.FormatInt(now.Unix(), 10)}), "iat must be a NumericDate"},
		{"exp null", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": nil}), "exp must be a NumericDate"},
		{"garbage", "not.a.jwt", "malformed"},
		{"huge", strings.Repeat("a", 9000), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.reason == "" {
				if err != nil || c.UserID != "alice" || c.Expires.Unix() != exp {
					t.Fatalf("claims %+v err %v", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %v, want ErrInvalidToken with %q", err, tc.reason)
			}
		})
	}
}

func TestTokenFromRequestIgnoresUserIDParameters(t *testing.T) {
	v := NewVerifier(secret)
	tok, _ := Issue(secret, "alice", time.Hour, time.Now())
	cases := map[string]func() (string, map[string]string){
		"bearer header": func() (string, map[string]string) {
			return "/?userId=bob", map[string]string{"Authorization": "Bearer " + tok}
		},
		"query": func() (string, map[string]string) { return "/?userId=bob&access_token=" + tok, nil },
		"subprotocol": func() (string, map[string]string) {
			return "/?userId=bob", map[string]string{"Sec-WebSocket-Protocol": Subprotocol + ", " + SubprotocolTokenPrefix + tok}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			target, hdr := mk()
			r := httptest.NewRequest("GET", target, nil)
			for k, v := range hdr {
				r.Header.Set(k, v)
			}
			c, err := v.Authenticate(r)
			if err != nil || c.UserID != "alice" {
				t.Errorf("claims %+v err %v: want alice whatever userId says", c, err)
			}
		})
	}
	if _, err := v.Authenticate(httptest.NewRequest("GET", "/?userId=bob", nil)); !errors.Is(err, ErrNoToken) {
		t.Errorf("no token: err = %v", err)
	}
}

func TestClaimsInContext(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if _, ok := FromContext(r.Context()); ok {
		t.Fatal("claims in a bare context")
	}
	ctx := WithClaims(r.Context(), Claims{UserID: "alice"})
	if c, ok := FromContext(ctx); !ok || c.UserID != "alice" {
		t.Errorf("got %+v %v", c, ok)
	}
}

// TestOriginAllowed: scheme, host and port must all match (RFC 6454 §5), the request's own
// origin or a listed one, after RFC 6454 §6.2 serialization (case, default ports).
func TestOriginAllowed(t *testing.T) {
	const (
		plain = "http://svc.example:3000/v1/ws" // the request's origin is http://svc.example:3000
		tls   = "https://svc.example/v1/ws"     // served over TLS on 443: https://svc.example
	)
	for _, tc := range []struct {
		name    string
		target  string
		origin  string
		allowed []string
		want    bool
	}{
		{"no Origin: not a browser", plain, "", nil, true},
		{"same origin", plain, "http://svc.example:3000", nil, true},
		{"same origin, upper case", plain, "HTTP://SVC.EXAMPLE:3000", nil, true},
		{"same host, other port", plain, "http://svc.example:3001", nil, false},
		{"same host and port, https for an http request", plain, "https://svc.example:3000", nil, false},
		{"same host and port, ftp", plain, "ftp://svc.example:3000", nil, false},
		{"other host", plain, "https://evil.example", nil, false},
		{"TLS same origin", tls, "https://svc.example", nil, true},
		{"TLS same origin, default port spelled out", tls, "https://svc.example:443", nil, true},
		{"TLS request, http origin", tls, "http://svc.example", nil, false},
		{"TLS request, ftp origin", tls, "ftp://svc.example", nil, false},
		{"TLS request, http origin on 443", tls, "http://svc.example:443", nil, false},
		{"http default port", "http://svc.example/v1/ws", "http://svc.example:80", nil, true},
		{"X-Forwarded-Proto is not trusted", "http://svc.example/v1/ws", "https://svc.example", nil, false},
		{"listed", plain, "https://app.example.com", []string{"https://app.example.com"}, true},
		{"listed, case and default port", plain, "https://APP.example.com", []string{"https://app.example.com:443"}, true},
		{"listed host, other port", plain, "https://app.example.com:444", []string{"https://app.example.com"}, false},
		{"listed host, other scheme", plain, "http://app.example.com", []string{"https://app.example.com"}, false},
		{"listed host, ftp", plain, "ftp://app.example.com", []string{"https://app.example.com"}, false},
		{"not listed", plain, "https://evil.example", []string{"https://app.example.com"}, false},
		{"star", plain, "https://evil.example", []string{"*"}, true},
		{"null", plain, "null", nil, false},
		{"null, others listed", plain, "null", []string{"https://app.example.com"}, false},
		{"null listed", plain, "null", []string{"null"}, true},
		{"not an origin: a path", plain, "http://svc.example:3000/", nil, false},
		{"not an origin: user info", plain, "http://u@svc.example:3000", nil, false},
		{"IPv6 same origin", "http://[::1]:3000/v1/ws", "http://[::1]:3000", nil, true},
		{"IPv6 other port", "http://[::1]:3000/v1/ws", "http://[::1]:3001", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil) // https targets get a TLS connection state
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.name == "X-Forwarded-Proto is not trusted" {
				r.Header.Set("X-Forwarded-Proto", "https")
			}
			if got := OriginAllowed(r, tc.allowed); got != tc.want {
				t.Errorf("Origin %q on %s with %v: %v, want %v", tc.origin, tc.target, tc.allowed, got, tc.want)
			}
		})
	}
}

func TestSerializeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"HTTPS://App.Example.COM:443": "https://app.example.com",
		"http://a.example:80":         "http://a.example",
		"http://a.example:443":        "http://a.example:443",
		"https://a.example:80":        "https://a.example:80",
		"ftp://a.example:21":          "ftp://a.example:21",
		"http://[::1]:80":             "http://[::1]",
		"null":                        "null",
		"https://a.example/":          "",
		"https://a.example?x":         "",
		"https://a.example#f":         "",
		"a.example":                   "",
		"":                            "",
	} {
		got, ok := SerializeOrigin(in)
		if got != want || ok != (want != "") {
			t.Errorf("SerializeOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestDevelopmentVerifierExplainsAStaleToken: after a development restart a token of the earlier
// run (another random secret) is refused with a reason that says why and where a new one comes
// from; other refusals, and the production verifier, keep their plain reasons.
func TestDevelopmentVerifierExplainsAStaleToken(t *testing.T) {
	now := time.Now()
	stale, err := Issue([]byte(strings.Repeat("x", 32)), "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	expired := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()})
	for _, tc := range []struct {
		name     string
		v        *Verifier
		token    string
		wantHint bool
	}{
		{"development, earlier run's token", NewDevelopmentVerifier(secret), stale, true},
		{"development, expired", NewDevelopmentVerifier(secret), expired, false},
		{"production, wrong key", NewVerifier(secret), stale, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.token)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			hinted := strings.Contains(err.Error(), "changes at every start") && strings.Contains(err.Error(), "GET /v1/dev/token?user=<id>")
			if hinted != tc.wantHint {
				t.Errorf("err = %q; development hint present = %v, want %v", err, hinted, tc.wantHint)
			}
		})
	}
}
