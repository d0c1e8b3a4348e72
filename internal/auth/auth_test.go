package auth

import (
	"errors"
	"net/http/httptest"
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
		{"HS512", sign(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "alice", "exp": exp}), "bad signature"},
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

func TestOriginAllowed(t *testing.T) {
	for _, tc := range []struct {
		origin  string
		allowed []string
		want    bool
	}{
		{"", nil, true},
		{"http://svc.example:3000", nil, true}, // same origin as the Host below
		{"HTTP://SVC.EXAMPLE:3000", nil, true},
		{"https://evil.example", nil, false},
		{"https://app.example.com", []string{"https://app.example.com"}, true},
		{"https://app.example.com:444", []string{"https://app.example.com"}, false},
		{"https://evil.example", []string{"https://app.example.com"}, false},
		{"https://evil.example", []string{"*"}, true},
		{"null", nil, false},
		{"https://APP.example.com/", []string{"https://app.example.com"}, true},
		{"http://svc.example:3001", nil, false},
		{"http://app.example.com", []string{"https://app.example.com"}, false},
	} {
		r := httptest.NewRequest("GET", "http://svc.example:3000/v1/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := OriginAllowed(r, tc.allowed); got != tc.want {
			t.Errorf("Origin %q with %v: %v, want %v", tc.origin, tc.allowed, got, tc.want)
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
