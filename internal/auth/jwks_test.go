package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// keys are the test's signing keys, made once per test binary (RSA key generation is slow).
type keys struct {
	rsa, rsa2, rsaSmall *rsa.PrivateKey
	ec256, ec384        *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
}

var testKeys = sync.OnceValue(func() keys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k keys
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// jwk is one key of a test JWK Set.
type jwk struct {
	kid, alg, use string
	key           any // a public key
}

// idp serves a JWK Set on loopback, as an identity provider's certs endpoint does.
type idp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body []byte
	hits atomic.Int32
}

func newIDP(t testing.TB, set ...jwk) *idp {
	t.Helper()
	p := &idp{}
	p.serve(t, set...)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		body := p.body
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if len(body) > 0 { // chunked, without Content-Length: the body's own bound must hold
			w.Write(body[:1])
			w.(http.Flusher).Flush()
			w.Write(body[1:])
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// serve replaces the set the idp serves (a key rotation).
func (p *idp) serve(t testing.TB, set ...jwk) {
	t.Helper()
	p.setBody(jwksJSON(t, set...))
}

func (p *idp) setBody(b []byte) {
	p.mu.Lock()
	p.body = b
	p.mu.Unlock()
}

// jwksJSON encodes set as a JWK Set with jwkset.
func jwksJSON(t testing.TB, set ...jwk) []byte {
	t.Helper()
	var out struct {
		Keys []json.RawMessage `json:"keys"`
	}
	out.Keys = []json.RawMessage{}
	for _, k := range set {
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.USE(k.use)}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(j.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		out.Keys = append(out.Keys, b)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signKID signs claims with key under method, naming kid in the header when it is not empty.
func signKID(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startJWKS runs a JWKS for url until the test ends, after its first fetch.
func startJWKS(t *testing.T, cfg JWKSConfig) *JWKS {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s, err := NewJWKS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(t.Context(), false); err != nil {
		t.Fatalf("first fetch: %v", err)
	}
	return s
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestVerifyJWKS: the token header picks the key, the key fixes the algorithm, and iss, aud and
// the user claim are checked.
func TestVerifyJWKS(t *testing.T) {
	k := testKeys()
	p := newIDP(t,
		jwk{kid: "rsa", alg: "RS256", use: "sig", key: &k.rsa.PublicKey},
		jwk{kid: "rsa-any", key: &k.rsa2.PublicKey}, // no alg: RS* and PS* both fit
		jwk{kid: "ec", alg: "ES256", use: "sig", key: &k.ec256.PublicKey},
		jwk{kid: "ec384", key: &k.ec384.PublicKey},
		jwk{kid: "ed", key: k.ed.Public()},
	)
	s := startJWKS(t, JWKSConfig{URL: p.srv.URL, MinRefreshInterval: time.Hour})
	v, err := New(Config{JWKS: s, Issuer: "https://idp.example/realms/app", Audience: "realtime"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "iss": "https://idp.example/realms/app", "aud": []string{"account", "realtime"}}
		for key, val := range extra {
			if val == nil {
				delete(c, key)
			} else {
				c[key] = val
			}
		}
		return c
	}
	rsaPEM := publicPEM(t, &k.rsa.PublicKey)
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"RS256", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(nil)), ""},
		{"PS256 with a key without alg", signKID(t, jwt.SigningMethodPS256, k.rsa2, "rsa-any", claims(nil)), ""},
		{"ES256", signKID(t, jwt.SigningMethodES256, k.ec256, "ec", claims(nil)), ""},
		{"ES384", signKID(t, jwt.SigningMethodES384, k.ec384, "ec384", claims(nil)), ""},
		{"EdDSA", signKID(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims(nil)), ""},
		{"aud as a string", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"aud": "realtime"})), ""},

		{"wrong iss", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"iss": "https://evil.example"})), "iss is not"},
		{"no iss", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"iss": nil})), "iss is missing"},
		{"wrong aud", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"aud": "account"})), "aud does not name"},
		{"no aud", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"aud": nil})), "aud is missing"},
		{"expired", signKID(t, jwt.SigningMethodES256, k.ec256, "ec", claims(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), "expired"},
		{"no kid", signKID(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil)), "no kid header"},
		{"kid not a string", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(nil))
			tok.Header["kid"] = 7
			s, _ := tok.SignedString(k.rsa)
			return s
		}(), "kid must be a string"},
		{"signed by another key", signKID(t, jwt.SigningMethodRS256, k.rsa2, "rsa", claims(nil)), "bad signature"},
		// RFC 8725 §2.1: the public key used as an HMAC secret.
		{"alg swapped to HS256, public key as secret", signKID(t, jwt.SigningMethodHS256, rsaPEM, "rsa", claims(nil)), "HS256 tokens are not accepted"},
		{"alg none", signKID(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa", claims(nil)), "bad signature or algorithm"},
		{"RS256 on an EC key", signKID(t, jwt.SigningMethodRS256, k.rsa, "ec384", claims(nil)), "does not fit the EC P-384 key"},
		{"ES384 on the P-256 key", signKID(t, jwt.SigningMethodES384, k.ec384, "ec", claims(nil)), "alg ES384 is not the alg ES256"},
		{"ES256 on the P-384 key", signKID(t, jwt.SigningMethodES256, k.ec256, "ec384", claims(nil)), "does not fit the EC P-384 key"},
		{"PS256 on a key whose JWK says RS256", signKID(t, jwt.SigningMethodPS256, k.rsa, "rsa", claims(nil)), "alg PS256 is not the alg RS256"},
		{"EdDSA on the RSA key", signKID(t, jwt.SigningMethodEdDSA, k.ed, "rsa-any", claims(nil)), "does not fit the RSA-2048 key"},
		{"user claim a number", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"sub": 42})), "sub (the user ID) must be a JSON string"},
		{"no user claim", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(jwt.MapClaims{"sub": nil})), "sub (the user ID) is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.reason == "" {
				if err != nil || c.UserID != "alice" {
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

// TestVerifyAlgorithmConfusionWithSecret: with a secret as well, an HS256 token signed with the
// RSA public key goes to the secret (the alg's own key source) and fails there.
func TestVerifyAlgorithmConfusionWithSecret(t *testing.T) {
	k := testKeys()
	p := newIDP(t, jwk{kid: "rsa", key: &k.rsa.PublicKey})
	pub := &k.rsa.PublicKey
	for name, cfg := range map[string]Config{
		"JWKS":       {Secret: secret, JWKS: startJWKS(t, JWKSConfig{URL: p.srv.URL})},
		"public key": {Secret: secret, PublicKey: pub},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			exp := time.Now().Add(time.Hour).Unix()
			forged := signKID(t, jwt.SigningMethodHS256, publicPEM(t, pub), "rsa", jwt.MapClaims{"sub": "mallory", "exp": exp})
			if _, err := v.Verify(forged); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "bad signature") {
				t.Errorf("forged HS256: err = %v", err)
			}
			good := signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", jwt.MapClaims{"sub": "alice", "exp": exp})
			if c, err := v.Verify(good); err != nil || c.UserID != "alice" {
				t.Errorf("RS256: %+v %v", c, err)
			}
			hs, _ := Issue(secret, "bob", time.Hour, time.Now())
			if c, err := v.Verify(hs); err != nil || c.UserID != "bob" {
				t.Errorf("HS256 with the secret: %+v %v", c, err)
			}
		})
	}
}

// TestVerifyPublicKeyAndJWKS: a kid the JWKS lacks falls back to the PEM key, whose type still
// fixes the algorithm.
func TestVerifyPublicKeyAndJWKS(t *testing.T) {
	k := testKeys()
	p := newIDP(t, jwk{kid: "rsa", key: &k.rsa.PublicKey})
	v, err := New(Config{PublicKey: k.ec256.Public(), JWKS: startJWKS(t, JWKSConfig{URL: p.srv.URL, MinRefreshInterval: time.Hour})})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"JWKS key by kid", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", jwt.MapClaims{"sub": "alice", "exp": exp}), ""},
		{"PEM key without kid", signKID(t, jwt.SigningMethodES256, k.ec256, "", jwt.MapClaims{"sub": "alice", "exp": exp}), ""},
		{"PEM key with a kid the JWKS lacks", signKID(t, jwt.SigningMethodES256, k.ec256, "legacy", jwt.MapClaims{"sub": "alice", "exp": exp}), ""},
		{"RS256 without kid on the PEM EC key", signKID(t, jwt.SigningMethodRS256, k.rsa, "", jwt.MapClaims{"sub": "alice", "exp": exp}), "does not fit the EC P-256 key"},
		{"HS256 without a secret", signKID(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": exp}), "HS256 tokens are not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.reason == "" {
				if err != nil || c.UserID != "alice" {
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

// TestVerifyUserClaim: REALTIME_JWT_USER_CLAIM names the claim with the user ID.
func TestVerifyUserClaim(t *testing.T) {
	v, err := New(Config{Secret: secret, UserClaim: "preferred_username"})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "f81d4fae-7dec", "preferred_username": "alice", "exp": exp})
	if c, err := v.Verify(tok); err != nil || c.UserID != "alice" {
		t.Errorf("claims %+v err %v", c, err)
	}
	tok = sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "f81d4fae-7dec", "exp": exp})
	if _, err := v.Verify(tok); err == nil || !strings.Contains(err.Error(), "preferred_username (the user ID) is missing") {
		t.Errorf("without the claim: err = %v", err)
	}
	tok = sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"preferred_username": strings.Repeat("u", 257), "exp": exp})
	if _, err := v.Verify(tok); err == nil || !strings.Contains(err.Error(), "longer than 256") {
		t.Errorf("long user: err = %v", err)
	}
}

// TestVerifyLongerHMAC: HS384 and HS512 verify with a secret as long as their hash output.
func TestVerifyLongerHMAC(t *testing.T) {
	long := []byte(strings.Repeat("s", 64))
	v := NewVerifier(long)
	exp := time.Now().Add(time.Hour).Unix()
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		if c, err := v.Verify(sign(t, m, long, jwt.MapClaims{"sub": "alice", "exp": exp})); err != nil || c.UserID != "alice" {
			t.Errorf("%s: %+v %v", m.Alg(), c, err)
		}
	}
	v = NewVerifier(long[:48])
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS512, long[:48], jwt.MapClaims{"sub": "alice", "exp": exp})); err == nil || !strings.Contains(err.Error(), "at least 64 bytes") {
		t.Errorf("HS512 with 48 bytes: %v", err)
	}
}

// TestJWKSRotation: a token naming a new kid makes the JWKS fetch the set again, once per
// MinRefreshInterval; a key rotated out then stops verifying.
func TestJWKSRotation(t *testing.T) {
	k := testKeys()
	p := newIDP(t, jwk{kid: "old", key: &k.rsa.PublicKey})
	reg := prometheus.NewRegistry()
	s := startJWKS(t, JWKSConfig{URL: p.srv.URL, MinRefreshInterval: time.Hour, Metrics: reg})
	v, err := New(Config{JWKS: s})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	oldTok := signKID(t, jwt.SigningMethodRS256, k.rsa, "old", jwt.MapClaims{"sub": "alice", "exp": exp})
	newTok := signKID(t, jwt.SigningMethodES256, k.ec256, "new", jwt.MapClaims{"sub": "alice", "exp": exp})
	if _, err := v.Verify(oldTok); err != nil {
		t.Fatal(err)
	}

	p.serve(t, jwk{kid: "new", key: &k.ec256.PublicKey}) // the provider rotates: "old" is gone
	if c, err := v.Verify(newTok); err != nil || c.UserID != "alice" {
		t.Fatalf("new key after rotation: %+v %v", c, err)
	}
	if _, err := v.Verify(oldTok); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "unknown kid") {
		t.Errorf("rotated-out key: err = %v", err)
	}
	hits := p.hits.Load()
	for range 5 { // made-up kids: no fetch within MinRefreshInterval
		if _, err := v.Verify(signKID(t, jwt.SigningMethodRS256, k.rsa, "made-up", jwt.MapClaims{"sub": "alice", "exp": exp})); err == nil {
			t.Fatal("made-up kid verified")
		}
	}
	if got := p.hits.Load(); got != hits {
		t.Errorf("%d fetches for made-up kids within the minimum refresh interval", got-hits)
	}
	if got := testutil.ToFloat64(s.mUnknownKID.WithLabelValues("rate_limited")); got != 6 {
		t.Errorf("rate_limited = %v, want 6 (the rotated-out kid and 5 made-up ones)", got)
	}
	if got := testutil.ToFloat64(s.mUnknownKID.WithLabelValues("fetched")); got != 1 {
		t.Errorf("fetched = %v, want 1", got)
	}
}

// TestJWKSProviderDown: once the provider stops answering, the cached keys keep verifying and
// Status reports the failure next to the keys in use.
func TestJWKSProviderDown(t *testing.T) {
	k := testKeys()
	p := newIDP(t, jwk{kid: "rsa", key: &k.rsa.PublicKey})
	s := startJWKS(t, JWKSConfig{URL: p.srv.URL, FetchTimeout: time.Second})
	v, _ := New(Config{JWKS: s})
	if st := s.Status(); st.Keys != 1 || st.LastError != nil || st.LastSuccess.IsZero() {
		t.Fatalf("status after a good fetch: %+v", st)
	}
	p.srv.Close()
	if err := s.refresh(t.Context(), false); err == nil {
		t.Fatal("fetch from a stopped server succeeded")
	}
	st := s.Status()
	if st.Keys != 1 || st.LastError == nil || !st.LastAttempt.After(st.LastSuccess) {
		t.Errorf("status with the provider down: %+v", st)
	}
	tok := signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if c, err := v.Verify(tok); err != nil || c.UserID != "alice" {
		t.Errorf("cached key with the provider down: %+v %v", c, err)
	}
}

// TestJWKSBadSets: a set that is too large, not JSON, or holds no usable signing key fails the
// fetch and leaves the keys in use alone.
func TestJWKSBadSets(t *testing.T) {
	k := testKeys()
	good := jwksJSON(t, jwk{kid: "rsa", key: &k.rsa.PublicKey})
	huge := append([]byte(`{"keys":[],"pad":"`), make([]byte, MaxJWKSBytes)...)
	for i := 18; i < len(huge); i++ {
		huge[i] = 'x'
	}
	huge = append(huge, `"}`...)
	for _, tc := range []struct {
		name, metric, want string
		body               []byte
	}{
		{"too large", "too_large", "larger than", huge},
		{"not JSON", "error", "decode", []byte("<html>")},
		{"no usable key", "error", "no usable signing key", jwksJSON(t,
			jwk{kid: "enc", use: "enc", key: &k.rsa.PublicKey},
			jwk{kid: "small", key: &k.rsaSmall.PublicKey},
			jwk{key: &k.rsa2.PublicKey}, // no kid
		)},
		{"symmetric key", "error", "no usable signing key", []byte(`{"keys":[{"kty":"oct","kid":"hs","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t)
			p.setBody(good)
			s := startJWKS(t, JWKSConfig{URL: p.srv.URL, Metrics: prometheus.NewRegistry()})
			p.setBody(tc.body)
			err := s.refresh(t.Context(), false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if got := testutil.ToFloat64(s.mFetches.WithLabelValues(tc.metric)); got != 1 {
				t.Errorf("fetches{result=%q} = %v", tc.metric, got)
			}
			if _, ok := s.lookup("rsa"); !ok || s.Status().Keys != 1 {
				t.Errorf("the good set's key is gone")
			}
		})
	}
}

func TestJWKSSkipsUnusableKeys(t *testing.T) {
	k := testKeys()
	p := newIDP(t, jwk{kid: "rsa", key: &k.rsa.PublicKey}, jwk{kid: "enc", use: "enc", key: &k.rsa2.PublicKey},
		jwk{kid: "small", key: &k.rsaSmall.PublicKey})
	s := startJWKS(t, JWKSConfig{URL: p.srv.URL})
	st := s.Status()
	if st.Keys != 1 || len(st.Skipped) != 2 || !strings.Contains(strings.Join(st.Skipped, ";"), `use "enc"`) ||
		!strings.Contains(strings.Join(st.Skipped, ";"), "1024 bits") {
		t.Errorf("status %+v", st)
	}
	if _, ok := s.lookup("enc"); ok {
		t.Error("an encryption key verifies tokens")
	}
}

func TestCheckJWKSURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://idp.example/realms/app/protocol/openid-connect/certs": true,
		"https://tenant.auth0.com/.well-known/jwks.json":               true,
		"http://127.0.0.1:8080/certs":                                  true,
		"http://localhost:8080/certs":                                  true,
		"http://[::1]:8080/certs":                                      true,
		"http://idp.example/certs":                                     false,
		"http://10.0.0.1/certs":                                        false,
		"ftp://idp.example/certs":                                      false,
		"idp.example/certs":                                            false,
		"https://user:pw@idp.example/certs":                            false,
		"":                                                             false,
	} {
		if err := CheckJWKSURL(u); (err == nil) != ok {
			t.Errorf("CheckJWKSURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

// TestJWKSRefusesRedirectToHTTP: a redirect may not leave https for a network host.
func TestJWKSRefusesRedirectToHTTP(t *testing.T) {
	s, err := NewJWKS(JWKSConfig{URL: "https://idp.example/certs"})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://idp.example/certs", nil)
	if err := s.client.CheckRedirect(req, []*http.Request{req}); err == nil {
		t.Error("redirect to http://idp.example allowed")
	}
}

func TestJWKSRun(t *testing.T) {
	k := testKeys()
	p := newIDP(t, jwk{kid: "rsa", key: &k.rsa.PublicKey})
	s, err := NewJWKS(JWKSConfig{URL: p.srv.URL, RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	for p.hits.Load() < 3 { // fetched at start, then every RefreshInterval
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if _, ok := s.lookup("rsa"); !ok {
		t.Error("no key after Run")
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	k := testKeys()
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ec256)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		pem        []byte
	}{
		{"RSA PKIX", "RSA-2048", publicPEM(t, &k.rsa.PublicKey)},
		{"RSA PKCS1", "RSA-2048", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})},
		{"EC P-256", "EC P-256", publicPEM(t, &k.ec256.PublicKey)},
		{"EC P-384", "EC P-384", publicPEM(t, &k.ec384.PublicKey)},
		{"Ed25519", "Ed25519", publicPEM(t, k.ed.Public())},
		{"certificate", "RSA-2048", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})},
		{"RSA 1024", "error: at least 2048", publicPEM(t, &k.rsaSmall.PublicKey)},
		{"EC P-224", "error: P-256, P-384 or P-521", publicPEM(t, &p224.PublicKey)},
		{"private key", "error: give the public key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})},
		{"not PEM", "error: no PEM block", []byte("MIIBIjANBg")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParsePublicKeyPEM(tc.pem)
			got := keyType(key)
			if err != nil {
				got = "error: " + err.Error()
			}
			if !strings.HasPrefix(got, tc.want) && !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) || (err == nil) != !strings.HasPrefix(tc.want, "error") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIssueFor: a token issued for a configuration is accepted by its verifier.
func TestIssueFor(t *testing.T) {
	cfg := Config{Secret: secret, Issuer: "https://idp.example", Audience: "realtime", UserClaim: "preferred_username"}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := IssueFor(secret, cfg, "alice", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(tok); err != nil || c.UserID != "alice" {
		t.Errorf("claims %+v err %v", c, err)
	}
	plain, _ := Issue(secret, "alice", time.Hour, time.Now())
	if _, err := v.Verify(plain); err == nil {
		t.Error("a token without iss and aud verified")
	}
}
