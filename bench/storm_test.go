package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestStormTokenAlg runs a tiny reconnect storm (20 WebSocket clients, the node restarted) with
// each asymmetric -token-alg against the real service (built and started as child processes, as
// `go run ./bench storm` does): the node holds no secret, only REALTIME_JWKS_URL, so every client
// must come back and receive a record after the restart with its RS256 or ES256 token verified
// by a key of the served JWK Set. It checks correctness, not the figures.
func TestStormTokenAlg(t *testing.T) {
	ctx, log, bin := buildForTest(t, 4*time.Minute, false)

	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			c := &common{transport: "ws", runs: 1, tokenAlg: alg}
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
			st, err := startStack(ctx, c, bin, log)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			if i := slices.IndexFunc(st.nodeEnv, func(kv string) bool {
				return strings.HasPrefix(kv, "REALTIME_JWT_SECRET=")
			}); i >= 0 {
				t.Fatalf("the node was started with REALTIME_JWT_SECRET; want only REALTIME_JWKS_URL")
			}
			if !slices.Contains(st.nodeEnv, "REALTIME_JWKS_URL="+st.signer.jwksURL()) || st.signer.jwksURL() == "" {
				t.Fatalf("the node's environment lacks REALTIME_JWKS_URL=%s", st.signer.jwksURL())
			}
			toks, err := st.tokens([]string{"probe"}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := jwt.NewParser().ParseUnverified(toks[0], jwt.MapClaims{})
			if err != nil || tok.Header["alg"] != alg || tok.Header["kid"] == nil {
				t.Fatalf("token header %v (%v); want alg %s and a kid", tok.Header, err, alg)
			}

			cfg := stormConfig{conns: 20, retry: 100 * time.Millisecond, resume: true,
				limit: 30 * time.Second, readBuf: 1024, parallel: 8}
			_, result, _, err := stormRun(ctx, st, c, cfg, 1, log)
			if err != nil {
				t.Fatal(err)
			}
			res := result.(stormResult)
			if res.TokenAlg != alg || res.Reconnected != 20 || res.Verified != 20 {
				t.Errorf("token alg %s: %d of 20 clients reconnected, %d verified delivery after the restart; want %s, 20 and 20",
					res.TokenAlg, res.Reconnected, res.Verified, alg)
			}
			if res.ConnsPerS <= 0 || res.NodeCPUS <= 0 {
				t.Errorf("connections/s %v, node CPU %v s; want both measured (positive)", res.ConnsPerS, res.NodeCPUS)
			}
			t.Logf("%s: back %.3f s after SIGTERM, %.0f connections/s, new node CPU %.2f s",
				alg, res.LastBackS, res.ConnsPerS, res.NodeCPUS)
		})
	}
}
