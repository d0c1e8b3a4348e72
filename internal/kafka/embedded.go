package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Broker is the embedded single-node Kafka broker (franz-go's kfake) used when KAFKA_BROKERS
// is unset: for development and small installs, with no replication
// (docs/configuration.md, "Development mode and production mode"). Make it with StartEmbedded
// and Close it.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// StartEmbedded starts the embedded broker and returns once it accepts connections and the
// default topics exist.
//
//   - It listens on cfg.EmbeddedAddr (host:port, default 127.0.0.1:9092; port 0 picks a free
//     port, see Addr). It advertises that address to clients; an unspecified host (0.0.0.0,
//     [::]) is advertised as 127.0.0.1, so remote clients need a concrete host to produce.
//   - With cfg.EmbeddedDataDir set, the log, topics and committed consumer-group offsets are
//     kept in that directory and reloaded on the next start (kfake's DataDir); otherwise
//     everything is in memory and lost on exit.
//   - It creates the topics of cfg.Topics, cfg.DLQTopic and notification.TopicTest that do not
//     exist yet, with cfg.EmbeddedPartitions partitions (default 3) and replication factor 1.
//   - It logs one warning saying that it is a single-node development broker and where its
//     data lives.
//
// Errors: the address cannot be listened on, the data dir cannot be loaded, or the topics
// cannot be created.
func StartEmbedded(cfg config.Kafka, log *slog.Logger) (*Broker, error) {
	cfg = withDefaults(cfg)
	log = orDiscard(log)
	listen := func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, cfg.EmbeddedAddr)
		if err != nil {
			return nil, err
		}
		return advertisedListener{ln}, nil
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.ClusterID(newClusterID()), // a reloaded data dir keeps its own ID
		kfake.WithLogger(kfakeLogger{log}),
	}
	if cfg.EmbeddedDataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.EmbeddedDataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start embedded broker on %s: %w", cfg.EmbeddedAddr, err)
	}
	b := &Broker{cluster: cluster, addr: cluster.ListenAddrs()[0]}
	if err := b.createTopics(cfg); err != nil {
		b.Close()
		return nil, err
	}
	data := "in memory: everything is lost on exit (set KAFKA_EMBEDDED_DATA_DIR to keep it)"
	if cfg.EmbeddedDataDir != "" {
		data = "in " + cfg.EmbeddedDataDir
	}
	log.Warn("EMBEDDED KAFKA BROKER: single node, no replication, for development and small installs only; set KAFKA_BROKERS to use a real cluster",
		"addr", b.addr, "data", data)
	return b, nil
}

// Addr returns the address the broker listens on and advertises, host:port, with the port
// resolved when cfg.EmbeddedAddr asked for port 0.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker: it closes the listener and every connection, and with a data dir
// writes its state there. Safe to call more than once.
func (b *Broker) Close() { b.cluster.Close() }

// defaultTopics are the topics StartEmbedded creates.
func defaultTopics(cfg config.Kafka) []string {
	topics := append(cfg.TopicNames(), notification.TopicTest)
	if cfg.DLQTopic != "" {
		topics = append(topics, cfg.DLQTopic)
	}
	return topics
}

// createTopics creates the default topics that do not exist yet.
func (b *Broker) createTopics(cfg config.Kafka) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ClientID(cfg.ClientID))
	if err != nil {
		return fmt.Errorf("kafka: embedded broker: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout)
	defer cancel()
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, cfg.EmbeddedPartitions, 1, nil, defaultTopics(cfg)...)
	if err != nil {
		return fmt.Errorf("kafka: embedded broker: create topics: %w", err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: embedded broker: create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// newClusterID returns "realtime-service-" and 8 random hex digits.
func newClusterID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "realtime-service-" + hex.EncodeToString(b[:])
}

// advertisedListener reports a dialable address: kfake advertises its listener's Addr to
// clients, and an unspecified IP (0.0.0.0, ::) cannot be dialled everywhere.
type advertisedListener struct{ net.Listener }

func (l advertisedListener) Addr() net.Addr {
	a := l.Listener.Addr()
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tcp.Port}
	}
	return a
}

// kfakeLogger passes the embedded broker's warnings and errors to slog.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error("embedded kafka: " + strings.TrimSpace(fmt.Sprintf(msg, args...)))
	case kfake.LogLevelWarn:
		l.log.Warn("embedded kafka: " + strings.TrimSpace(fmt.Sprintf(msg, args...)))
	}
}
