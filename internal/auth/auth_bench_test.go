package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures one token verification, as every connection handshake does it, per
// algorithm: HS256 (REALTIME_JWT_SECRET), RS256 with a 2048-bit key, ES256 (P-256) and EdDSA
// (Ed25519), the last three from a JWKS chosen by kid. verifications/s is per core (1 s / ns/op).
func BenchmarkVerify(b *testing.B) {
	k := testKeys()
	p := newIDP(b,
		jwk{kid: "rsa", key: &k.rsa.PublicKey},
		jwk{kid: "ec", key: &k.ec256.PublicKey},
		jwk{kid: "ed", key: k.ed.Public()})
	s, err := NewJWKS(JWKSConfig{URL: p.srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.refresh(b.Context(), false); err != nil {
		b.Fatal(err)
	}
	v, err := New(Config{Secret: secret, JWKS: s, Issuer: "https://idp.example", Audience: "realtime"})
	if err != nil {
		b.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "user-42", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"iss": "https://idp.example", "aud": "realtime"}
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"HS256", jwt.SigningMethodHS256, secret, ""},
		{"RS256", jwt.SigningMethodRS256, k.rsa, "rsa"},
		{"ES256", jwt.SigningMethodES256, k.ec256, "ec"},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, "ed"},
	} {
		tok := jwt.NewWithClaims(tc.method, claims)
		if tc.kid != "" {
			tok.Header["kid"] = tc.kid
		}
		signed, err := tok.SignedString(tc.key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(signed); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
		})
	}
}
