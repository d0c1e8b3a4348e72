package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/realtime-service/realtime-service/internal/auth"
)

// tokenAlgs are the values of -token-alg.
var tokenAlgs = []string{"HS256", "RS256", "ES256"}

// tokenSigner signs the clients' tokens so that the node accepts them (-token-alg): HS256 with
// the node's REALTIME_JWT_SECRET, or RS256 (RSA-2048) / ES256 (P-256) with a key pair made for
// this stack, whose public half the node fetches from a JWK Set (RFC 7517 §5) this tool serves
// on loopback (REALTIME_JWKS_URL), as it would from an identity provider (docs/identity-providers.md).
type tokenSigner struct {
	alg    string // HS256, RS256 or ES256
	method jwt.SigningMethod
	key    any    // []byte (HS256), *rsa.PrivateKey (RS256), *ecdsa.PrivateKey (ES256)
	kid    string // the JWK's kid, in every token's header; "" for HS256
	jwks   *httptest.Server
}

// newTokenSigner returns a signer for alg: HS256 signs with secret; RS256 and ES256 make a key
// pair and start serving its JWK Set on 127.0.0.1 (stop it with close).
func newTokenSigner(alg string, secret []byte) (*tokenSigner, error) {
	s := &tokenSigner{alg: alg}
	var pub any
	switch alg {
	case "HS256":
		s.method, s.key = jwt.SigningMethodHS256, secret
		return s, nil
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		s.method, s.key, pub = jwt.SigningMethodRS256, k, &k.PublicKey
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		s.method, s.key, pub = jwt.SigningMethodES256, k, &k.PublicKey
	default:
		return nil, fmt.Errorf("-token-alg %q: want one of %v", alg, tokenAlgs)
	}
	s.kid = "bench-" + randomHex(4)
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
		KID: s.kid, ALG: jwkset.ALG(alg), USE: jwkset.UseSig}})
	if err != nil {
		return nil, fmt.Errorf("JWK of the %s key: %w", alg, err)
	}
	body, err := json.Marshal(map[string]any{"keys": []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		return nil, err
	}
	s.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	return s, nil
}

// env is the node's environment naming the key source: REALTIME_JWT_SECRET for HS256,
// REALTIME_JWKS_URL (and no secret) otherwise.
func (s *tokenSigner) env() []string {
	if s.jwks == nil {
		return []string{"REALTIME_JWT_SECRET=" + string(s.key.([]byte))}
	}
	return []string{"REALTIME_JWKS_URL=" + s.jwks.URL}
}

// jwksURL is the URL of the JWK Set served, or "" for HS256.
func (s *tokenSigner) jwksURL() string {
	if s.jwks == nil {
		return ""
	}
	return s.jwks.URL
}

// close stops serving the JWK Set.
func (s *tokenSigner) close() {
	if s != nil && s.jwks != nil {
		s.jwks.Close()
	}
}

// tokens signs one token per user (its sub), valid for ttl, in the form internal/auth.Issue
// gives (sub, iat, exp). Asymmetric signing is slow (RSA-2048: about 1 ms a token), so the
// tokens are signed on every core; this happens before any measurement.
func (s *tokenSigner) tokens(users []string, ttl time.Duration) ([]string, error) {
	now := time.Now()
	out := make([]string, len(users))
	if s.alg == "HS256" {
		for i, u := range users {
			t, err := auth.Issue(s.key.([]byte), u, ttl, now)
			if err != nil {
				return nil, err
			}
			out[i] = t
		}
		return out, nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		workers  = runtime.GOMAXPROCS(0)
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(users); i += workers {
				t := jwt.NewWithClaims(s.method, jwt.MapClaims{
					"sub": users[i], "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
				t.Header["kid"] = s.kid
				signed, err := t.SignedString(s.key)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				out[i] = signed
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("sign %s token: %w", s.alg, firstErr)
	}
	return out, nil
}
