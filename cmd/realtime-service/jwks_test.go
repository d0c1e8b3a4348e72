package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// idpServer serves a JWK Set on loopback as an identity provider's certs endpoint does (Keycloak:
// /realms/<realm>/protocol/openid-connect/certs); the set can be replaced (a key rotation).
type idpServer struct {
	*httptest.Server
	mu  sync.Mutex
	set []byte
}

func newIDPServer(t *testing.T, keys map[string]any) *idpServer {
	t.Helper()
	p := &idpServer{}
	p.rotate(t, keys)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(p.set)
	}))
	t.Cleanup(p.Close)
	return p
}

// rotate makes the server publish keys (kid -> public key) from now on, encoded by jwkset.
func (p *idpServer) rotate(t *testing.T, keys map[string]any) {
	t.Helper()
	store := jwkset.NewMemoryStorage()
	for kid, key := range keys {
		j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.KeyWrite(t.Context(), j); err != nil {
			t.Fatal(err)
		}
	}
	set, err := store.JSONPublic(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.set = set
	p.mu.Unlock()
}

// transportResults says, per transport, whether a token connected: "ws", "sse", "socketio" ->
// "ok", or what the server answered instead.
func transportResults(t *testing.T, s *service, token string) map[string]string {
	t.Helper()
	out := map[string]string{}

	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/ws?access_token=" + token
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	switch {
	case err == nil:
		ws.Close()
		out["ws"] = "ok"
	case resp != nil:
		out["ws"] = resp.Status
	default:
		out["ws"] = err.Error()
	}

	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		out["sse"] = err.Error()
	} else {
		resp.Body.Close() // the stream stays open otherwise
		out["sse"] = resp.Status
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			out["sse"] = "ok"
		}
	}

	out["socketio"] = socketIOConnect(t, s.URL, token)
	return out
}

// socketIOConnect opens an Engine.IO v4 long-polling session and sends the Socket.IO CONNECT
// with {token} as its auth (what socket.io-client's io(url, {auth: {token}}) sends); it returns
// "ok" for a CONNECT answer and the CONNECT_ERROR packet otherwise.
func socketIOConnect(t *testing.T, base, token string) string {
	t.Helper()
	get := func(q string) string {
		resp, err := http.Get(base + "/socket.io/?EIO=4&transport=polling" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Engine.IO GET: %s %s", resp.Status, b)
		}
		return string(b)
	}
	open := get("")
	var handshake struct{ SID string }
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &handshake) != nil {
		t.Fatalf("Engine.IO open packet %q", open)
	}
	auth, _ := json.Marshal(map[string]string{"token": token})
	resp, err := http.Post(base+"/socket.io/?EIO=4&transport=polling&sid="+handshake.SID, "text/plain;charset=UTF-8",
		strings.NewReader("40"+string(auth)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, packet := range strings.Split(get("&sid="+handshake.SID), "\x1e") {
		switch {
		case strings.HasPrefix(packet, "40"):
			return "ok"
		case strings.HasPrefix(packet, "44"):
			return packet
		}
	}
	return "no CONNECT answer"
}

// TestIdentityProviderTokens: with REALTIME_JWKS_URL (a JWK Set served on loopback with an RSA
// and an EC key, as Keycloak or Auth0 serve theirs), REALTIME_JWT_ISSUER and
// REALTIME_JWT_AUDIENCE, tokens the provider signs connect on every transport; wrong iss or aud,
// an unknown kid, an expired token, alg swapped to HS256 with the public key as the secret,
// alg none, and a key the provider rotated out get 401 (Socket.IO: connect_error). Once the
// provider stops answering, the keys fetched earlier still verify and /health reports the JWKS
// degraded, with the service ready.
func TestIdentityProviderTokens(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	idp := newIDPServer(t, map[string]any{"rsa-1": &rsaKey.PublicKey, "ec-1": &ecKey.PublicKey})
	const iss, aud = "https://keycloak.example/realms/app", "realtime"
	s := startService(t, map[string]string{
		"REALTIME_JWT_SECRET":                "", // the provider's keys only
		"REALTIME_JWKS_URL":                  idp.URL + "/realms/app/protocol/openid-connect/certs",
		"REALTIME_JWKS_REFRESH_INTERVAL":     "100",
		"REALTIME_JWKS_MIN_REFRESH_INTERVAL": "60000",
		"REALTIME_JWKS_FETCH_TIMEOUT":        "1000",
		"REALTIME_JWT_ISSUER":                iss,
		"REALTIME_JWT_AUDIENCE":              aud,
	})

	now := time.Now()
	sign := func(method jwt.SigningMethod, key any, kid string, edit func(jwt.MapClaims)) string {
		claims := jwt.MapClaims{"sub": "alice", "iss": iss, "aud": []string{aud, "account"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(claims)
		}
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["kid"] = kid
		signed, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	good := map[string]string{
		"RS256": sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", nil),
		"ES256": sign(jwt.SigningMethodES256, ecKey, "ec-1", nil),
	}
	bad := map[string]string{
		"wrong iss":   sign(jwt.SigningMethodRS256, rsaKey, "rsa-1", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"wrong aud":   sign(jwt.SigningMethodES256, ecKey, "ec-1", func(c jwt.MapClaims) { c["aud"] = "account" }),
		"unknown kid": sign(jwt.SigningMethodRS256, rsaKey, "rsa-9", nil),
		"expired":     sign(jwt.SigningMethodES256, ecKey, "ec-1", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }),
		"alg swapped to HS256, public key as secret": sign(jwt.SigningMethodHS256, publicPEM, "rsa-1", nil),
		"alg none": sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", nil),
	}
	refused := func(name string, got map[string]string) {
		t.Helper()
		for tr, r := range got {
			if tr == "socketio" && !strings.HasPrefix(r, "44") || tr != "socketio" && r != "401 Unauthorized" {
				t.Errorf("%s token on %s: %s, want 401 (Socket.IO: CONNECT_ERROR)", name, tr, r)
			}
		}
	}
	accepted := func(name string, got map[string]string) {
		t.Helper()
		for tr, r := range got {
			if r != "ok" {
				t.Errorf("%s token on %s: %s, want a connection", name, tr, r)
			}
		}
	}
	for name, tok := range good {
		accepted(name, transportResults(t, s, tok))
	}
	for name, tok := range bad {
		refused(name, transportResults(t, s, tok))
	}

	// The provider rotates rsa-1 out: a background refresh drops it.
	idp.rotate(t, map[string]any{"ec-1": &ecKey.PublicKey})
	waitUntil(t, "the rotated-out key refused", func() bool {
		_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws?access_token="+good["RS256"], nil)
		return err != nil && resp != nil && resp.StatusCode == http.StatusUnauthorized
	})
	refused("rotated-out RS256", transportResults(t, s, good["RS256"]))
	accepted("ES256 after the rotation", transportResults(t, s, good["ES256"]))

	// The provider goes down: the cached key keeps verifying, /health says degraded.
	idp.Close()
	type check struct {
		Status  string
		Keys    int
		Message string
	}
	var h struct {
		Status  string
		Info    map[string]check
		Details map[string]check
	}
	waitUntil(t, "the JWKS reported degraded", func() bool {
		h.Info, h.Details = nil, nil
		s.do("GET", "/health", nil, &h)
		return h.Details["jwks"].Status == "degraded"
	})
	if j := h.Info["jwks"]; h.Status != "ok" || j.Keys != 1 || j.Message == "" {
		t.Errorf("/health with the provider down: status %s, jwks %+v; want ok, degraded with 1 key and a message", h.Status, j)
	}
	if resp := s.do("GET", "/health/ready", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/health/ready with the provider down: %d, want 200", resp.StatusCode)
	}
	accepted("ES256 with the provider down", transportResults(t, s, good["ES256"]))
	refused("unknown kid with the provider down", transportResults(t, s, bad["unknown kid"]))
}
