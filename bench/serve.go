package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// runServe starts an owned stack, prints how to reach it, and keeps it up until -duration or
// Ctrl-C: for running wrk, a browser or a profiler by hand.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c common
	c.register(fs, "ws")
	duration := fs.Duration("duration", 10*time.Minute, "how long to keep the stack up")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if c.target != "" {
		return errors.New("serve starts its own stack; -target makes no sense here")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *duration+time.Minute)
	defer cancel()
	bin, err := buildBinary(ctx, root, c.bin, c.rev, stderr)
	if err != nil {
		return err
	}
	defer bin.remove()
	st, err := startStack(ctx, &c, bin, stderr)
	if err != nil {
		return err
	}
	defer st.close()
	tok, err := st.tokens([]string{"alice"}, *duration+time.Hour)
	if err != nil {
		return err
	}
	keys := "JWT secret  " + string(st.secret)
	hint := fmt.Sprintf("  go run ./bench latency -target %s -brokers %s -jwt-secret %s -api-key %s -debug-addr %s -pid %d\n",
		st.url, strings.Join(st.brokers, ","), st.secret, st.apiKey, st.debugAddr, st.nodePID)
	if u := st.signer.jwksURL(); u != "" {
		keys = fmt.Sprintf("JWKS        %s (%s; the node has no secret, and -target modes sign HS256 only)", u, st.signer.alg)
		hint = ""
	}
	fmt.Fprintf(stdout, `stack up for %v (Ctrl-C stops it):
  node        %s   (pid %d, file limit %s)
  pprof       http://%s/debug/pprof/
  brokers     %s
  API key     %s
  %s
  token(alice) %s

  API_KEY=%s wrk -t2 -c64 -d30s --latency -s bench/wrk/concept-mastered.lua %s/v1/notifications/concept-mastered
%s`, *duration, st.url, st.nodePID, procFileLimit(st.nodePID), st.debugAddr, strings.Join(st.brokers, ","), st.apiKey, keys, tok[0],
		st.apiKey, st.url, hint)
	select {
	case <-ctx.Done():
	case <-time.After(*duration):
	}
	return nil
}
