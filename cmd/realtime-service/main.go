// Command realtime-service turns Kafka records into real-time notifications: it consumes the
// notification topics and pushes each event to every live WebSocket, SSE and Socket.IO
// connection of the users it names, and offers an HTTP API to produce records and manage topics.
//
// Usage:
//
//	realtime-service [serve]                    run the service (embedded broker when KAFKA_BROKERS is unset)
//	realtime-service check                      check the Kafka connection end to end
//	realtime-service token --user U [--ttl 1h]  print a client token signed with REALTIME_JWT_SECRET
//	realtime-service broker                     run only the embedded broker (development)
//	realtime-service healthcheck                exit 0 if the local service answers GET /health/live
//
// Configuration is read from the environment; see docs/configuration.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/telemetry"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "realtime-service:", err)
		os.Exit(1)
	}
}

// errUsage is returned for a command line that names no known command; run has printed usage.
var errUsage = errors.New("usage: realtime-service [serve|check|token|broker|healthcheck] (see --help)")

const usage = `Usage:
  realtime-service [serve]                    run the service (embedded Kafka broker when KAFKA_BROKERS is unset)
  realtime-service check                      check the Kafka connection: connect, create topic, produce, consume, list
  realtime-service token --user U [--ttl 1h]  print a client token signed with REALTIME_JWT_SECRET
  realtime-service broker                     run only the embedded Kafka broker (development)
  realtime-service healthcheck                exit 0 if the service on HTTP_ADDR answers GET /health/live (container HEALTHCHECK)
Configuration comes from the environment; see docs/configuration.md.
`

// run is the whole program: it parses args, reads the configuration through getenv, and runs the
// command until it finishes or ctx is done or SIGINT/SIGTERM arrives. Output meant for the user
// goes to stdout, logs to stderr. It returns the first error; main prints it on one line.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := "serve", []string(nil)
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	if isHelp(cmd) || (cmd != "token" && len(rest) > 0 && isHelp(rest[0])) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if cmd != "token" && len(rest) > 0 { // only token takes flags; "broker --port 1" must not start a broker
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%s: unexpected argument %q", cmd, rest[0])
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	switch cmd {
	case "serve":
		tp, prop, shutdown, err := telemetry.Setup(ctx, getenv)
		if err != nil {
			return err
		}
		tr := newTracing(tp, prop)
		if tr.on() {
			log.Info("OpenTelemetry tracing is on: spans go to the OTLP endpoint of OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		defer func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetry.FlushTimeout)
			defer cancel()
			if err := shutdown(fctx); err != nil {
				log.Warn("some spans could not be exported at exit", "err", err)
			}
		}()
		return serve(ctx, cfg, log, tr)
	case "check":
		return check(ctx, cfg, log, stdout)
	case "token":
		return token(cfg, rest, stdout, stderr)
	case "broker":
		return broker(ctx, cfg, log)
	case "healthcheck":
		return healthcheck(ctx, cfg, stdout)
	default:
		fmt.Fprint(stderr, usage)
		return errUsage
	}
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// newLogger returns the service's structured logger: text or JSON lines on w at the level asked,
// with the trace_id and span_id of the span in a record's context, if any (telemetry.LogHandler).
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // config.Load accepted it
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts)))
}
