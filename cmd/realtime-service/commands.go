package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// check runs the Kafka smoke test (the successor of the original test-kafka.js) against
// KAFKA_BROKERS, or against a fresh embedded broker on a free port when it is unset.
func check(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	brokers := cfg.Kafka.Brokers
	if cfg.Kafka.Embedded() {
		kc := cfg.Kafka
		kc.EmbeddedAddr, kc.EmbeddedDataDir = "127.0.0.1:0", ""
		b, err := kafka.StartEmbedded(kc, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = []string{b.Addr()}
		fmt.Fprintf(stdout, "KAFKA_BROKERS is unset: checking a fresh embedded broker on %s\n", b.Addr())
	}
	if !kafka.Check(ctx, cfg.Kafka, brokers, stdout) {
		return errors.New("check failed")
	}
	return nil
}

// token prints a client token for --user, valid for --ttl, signed with REALTIME_JWT_SECRET, with
// the iss, aud and user claim the service requires (REALTIME_JWT_ISSUER, REALTIME_JWT_AUDIENCE,
// REALTIME_JWT_USER_CLAIM).
func token(cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "the user ID the token is for (its sub claim); required")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid, e.g. 15m, 1h, 24h")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the flag package printed the flags
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q (usage: token --user U [--ttl 1h])", fs.Arg(0))
	}
	if *user == "" || len(*user) > notification.MaxUserIDLen {
		return fmt.Errorf("token: --user is required, at most %d bytes", notification.MaxUserIDLen)
	}
	if cfg.Realtime.JWTSecret == "" {
		return errors.New("token: set REALTIME_JWT_SECRET to the secret the service verifies tokens with (a development server without one, on a loopback HTTP_ADDR, issues tokens at GET /v1/dev/token?user=<id>)")
	}
	claims := auth.Config{Issuer: cfg.Realtime.JWTIssuer, Audience: cfg.Realtime.JWTAudience, UserClaim: cfg.Realtime.JWTUserClaim}
	tok, err := auth.IssueFor([]byte(cfg.Realtime.JWTSecret), claims, *user, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// broker runs only the embedded broker on KAFKA_EMBEDDED_ADDR until ctx is done: for running
// several service nodes against one development broker.
func broker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	b, err := kafka.StartEmbedded(cfg.Kafka, log)
	if err != nil {
		return err
	}
	log.Info("embedded broker running; point nodes at it with KAFKA_BROKERS", "addr", b.Addr())
	<-ctx.Done()
	b.Close()
	log.Info("embedded broker stopped")
	return nil
}
