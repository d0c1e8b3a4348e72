package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/realtime-service/realtime-service/internal/config"
)

// Defaults for zero config.Kafka fields, the same as config.Load's (docs/configuration.md, "Variables"),
// so that a hand-built config.Kafka (tests, tools) behaves like a loaded one.
const (
	defaultClientID          = "realtime-service"
	defaultConnectionTimeout = 3 * time.Second
	defaultRequestTimeout    = 25 * time.Second
	defaultRetryBackoff      = 100 * time.Millisecond
	defaultEmbeddedAddr      = "127.0.0.1:9092"
	defaultPartitions        = 3

	// maxRetryBackoff caps the exponential retry backoff unless RetryBackoff itself is larger
	// (Kafka's retry.backoff.max.ms, KIP-580, defaults to 1 s; franz-go's default cap is 5 s).
	maxRetryBackoff = 5 * time.Second
)

// withDefaults fills the zero fields of cfg that this package reads with their defaults.
func withDefaults(cfg config.Kafka) config.Kafka {
	if cfg.ClientID == "" {
		cfg.ClientID = defaultClientID
	}
	if cfg.ConnectionTimeout <= 0 {
		cfg.ConnectionTimeout = defaultConnectionTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = defaultRetryBackoff
	}
	if cfg.EmbeddedAddr == "" {
		cfg.EmbeddedAddr = defaultEmbeddedAddr
	}
	if cfg.EmbeddedPartitions <= 0 {
		cfg.EmbeddedPartitions = defaultPartitions
	}
	return cfg
}

// ClientOpts turns the connection settings of cfg into franz-go options, in this one place;
// every client of this package (producer, consumer, reader, check, embedded-broker set-up)
// starts from them. brokers are the seed brokers (host:port); they are passed apart from cfg so
// that the embedded broker's resolved address can be used. Zero durations in cfg take the
// defaults of docs/configuration.md, "Variables".
//
// What it sets:
//   - SeedBrokers(brokers), ClientID(cfg.ClientID).
//   - DialTimeout(cfg.ConnectionTimeout).
//   - cfg.RequestTimeout bounds one request: RequestTimeoutOverhead (a request with its own
//     broker-side timeout, a fetch's long poll or a produce's, gets that on top),
//     RetryTimeout (all retries of one request), ProduceRequestTimeout and
//     RecordDeliveryTimeout (Kafka's request.timeout.ms and delivery.timeout.ms).
//   - RetryBackoffFn: cfg.RetryBackoff doubled on every retry, ±20 % jitter, capped at 5 s or
//     cfg.RetryBackoff if that is larger (Kafka's retry.backoff.ms / retry.backoff.max.ms, KIP-580).
//   - RequestRetries(cfg.Retries), used as is (0 means no retry; config.Load defaults it to 8).
//   - MetadataMinAge(cfg.RetryBackoff, at least 100 ms and at most 5 s): how soon metadata is
//     refreshed after an error, Kafka's metadata back-off; it decides how fast a missing topic is
//     reported (see ErrTopicNotFound).
//   - SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 from cfg.SASL.
//   - TLS (minimum TLS 1.2) when cfg.TLS is set or cfg.TLSCAFile is given, verified against the
//     system roots or, when cfg.TLSCAFile is set, the PEM certificates in that file only.
//
// Errors: no brokers, an unknown SASL mechanism, or a CA file that cannot be read or holds no
// PEM certificate.
func ClientOpts(cfg config.Kafka, brokers []string) ([]kgo.Opt, error) {
	cfg = withDefaults(cfg)
	if len(brokers) == 0 {
		return nil, errors.New("kafka: no seed brokers")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(cfg.ConnectionTimeout),
		kgo.RequestTimeoutOverhead(cfg.RequestTimeout),
		kgo.RetryTimeout(cfg.RequestTimeout),
		kgo.RetryBackoffFn(retryBackoff(cfg.RetryBackoff)),
		kgo.RequestRetries(cfg.Retries),
		kgo.MetadataMinAge(min(max(cfg.RetryBackoff, 100*time.Millisecond), 5*time.Second)),
		kgo.ProduceRequestTimeout(cfg.RequestTimeout),
		kgo.RecordDeliveryTimeout(cfg.RequestTimeout),
	}
	if m, err := saslMechanism(cfg.SASL); err != nil {
		return nil, err
	} else if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if cfg.TLS || cfg.TLSCAFile != "" {
		tc, err := tlsConfig(cfg.TLSCAFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

// retryBackoff returns franz-go's backoff function: base·2^(tries-1), jittered by ±20 %, capped
// at max(maxRetryBackoff, base).
func retryBackoff(base time.Duration) func(int) time.Duration {
	ceiling := max(maxRetryBackoff, base)
	return func(tries int) time.Duration {
		d := base
		for i := 1; i < tries && d < ceiling; i++ {
			d *= 2
		}
		d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
		return min(d, ceiling)
	}
}

// saslMechanism returns the franz-go mechanism for s, or nil when s.Mechanism is empty.
func saslMechanism(s config.SASL) (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "":
		return nil, nil
	case config.SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case config.SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case config.SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("kafka: unknown SASL mechanism %q: want %s, %s or %s",
			s.Mechanism, config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512)
	}
}

// tlsConfig returns a client TLS config: system roots, or only the certificates of caFile.
// franz-go sets ServerName per broker from the address it dials.
func tlsConfig(caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kafka: TLS CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("kafka: TLS CA file %s: no PEM certificate in it", caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// kgoLogger passes franz-go's warnings and errors to slog; its info and debug chatter (every
// metadata refresh, every request) is dropped.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	} else if level != kgo.LogLevelWarn {
		return
	}
	l.log.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}

// orDiscard returns log, or a logger that drops everything when log is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
