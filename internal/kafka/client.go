// Package kafka is realtime-service's only contact with Kafka, built on franz-go: the producer
// and admin Client used by the HTTP API and health checks, this node's Consumer (with its
// dead-letter topic), a Reader for resuming clients, the embedded single-node development
// broker (kfake), and Check, the `realtime-service check` smoke test.
//
// The contracts are those of docs/design.md, "Delivery semantics", docs/design.md, "HTTP API"
// and docs/configuration.md, "Variables". config.Kafka is turned into franz-go options in one place, ClientOpts.
// Errors follow errors.go: ErrTopicExists, ErrTopicNotFound, ErrUnavailable,
// ErrOffsetOutOfRange and *RequestError.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/realtime-service/realtime-service/internal/config"
)

// unknownTopicRetries is how many metadata refreshes in a row may report a produced-to topic
// as unknown before its records fail with ErrTopicNotFound. With MetadataMinAge from
// ClientOpts this answers within about a second, and tolerates the short window in which a
// just-created topic is not yet known to every broker.
const unknownTopicRetries = 2

// producerOpts are the producer settings shared by the Client and the Consumer's dead-letter
// producer: acks from all in-sync replicas and idempotence (franz-go's defaults, stated here so
// nobody turns them off: docs/design.md, "HTTP API"), no linger (every produce is waited for),
// missing topics reported quickly and never created, and cancellation allowed for records
// already sent, so that a produce to a dead broker fails within RequestTimeout instead of
// waiting for the broker to come back. The price of the last one: a produce that failed with
// ErrUnavailable may still have been written, and a retry by the caller may write it twice.
func producerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.UnknownTopicRetries(unknownTopicRetries),
		kgo.AllowIdempotentProduceCancellation(),
	}
}

// TopicInfo describes one topic as ListTopics reports it.
type TopicInfo struct {
	// Name is the topic's name.
	Name string
	// Partitions is the partition count.
	Partitions int32
	// ReplicationFactor is the number of replicas of each partition (that of partition 0).
	ReplicationFactor int16
	// Internal is set for the cluster's internal topics: those the broker flags internal
	// (__consumer_offsets, __transaction_state) and any other whose name starts with "__",
	// Kafka's naming convention for them.
	Internal bool
}

// BrokerInfo is what Ping learned from the cluster.
type BrokerInfo struct {
	// ClusterID is the cluster's ID (Kafka's cluster.id; the embedded broker's is
	// "realtime-service-<random>", kept in its data dir).
	ClusterID string
	// Brokers are the brokers' advertised addresses, host:port, sorted by node ID.
	Brokers []string
	// Controller is the node ID of the controller broker, -1 if unknown.
	Controller int32
}

// Client is the producer and admin client of the HTTP API and the health check. It is safe for
// concurrent use. Make it with NewClient and Close it.
type Client struct {
	cfg config.Kafka
	cl  *kgo.Client
	adm *kadm.Client
}

// NewClient returns a Client for the cluster at brokers (seed host:port list) with the
// options of ClientOpts and producerOpts. It does not connect: the first call does, so a
// broker that is down at start-up is reported by Ping and Produce, not here. kprom's client
// metrics (kafka_client_*, role="producer") are registered on reg, unless reg is nil, and
// unregistered by Close. extra are franz-go options appended last, for hooks such as the
// tracing hook of package telemetry (none by default); options that change producing (acks,
// idempotence, linger) would break Produce's contract. Errors are ClientOpts's.
func NewClient(cfg config.Kafka, brokers []string, reg prometheus.Registerer, log *slog.Logger, extra ...kgo.Opt) (*Client, error) {
	cfg = withDefaults(cfg)
	opts, err := ClientOpts(cfg, brokers)
	if err != nil {
		return nil, err
	}
	opts = append(opts, producerOpts()...)
	opts = append(opts, kgo.WithLogger(kgoLogger{orDiscard(log)}))
	if reg != nil {
		opts = append(opts, kgo.WithHooks(newKprom(reg, "producer")))
	}
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(cfg.RequestTimeout.Milliseconds(), 1<<31-1)))
	return &Client{cfg: cfg, cl: cl, adm: adm}, nil
}

// Produce writes recs and waits until every one is acknowledged by all in-sync replicas or has
// failed, as franz-go's ProduceSync does; the whole call is bounded by ctx and by
// config.Kafka.RequestTimeout. On success a record's Partition and Offset (and Timestamp, if
// it was zero) are filled in. It returns one error per record, in the order of recs, nil for
// each success:
//   - ErrTopicNotFound: the topic does not exist (answered within about a second; the topic
//     is not created);
//   - ErrUnavailable: no broker answered within RequestTimeout, or the cluster refused for a
//     reason of its own. The record may still have been written (see producerOpts);
//   - *RequestError: the topic name is not legal (INVALID_TOPIC_EXCEPTION), or Kafka refused
//     the record itself (e.g. MESSAGE_TOO_LARGE);
//   - ctx's error when ctx ended first.
func (c *Client) Produce(ctx context.Context, recs ...*kgo.Record) []error {
	errs := make([]error, len(recs))
	if len(recs) == 0 {
		return errs
	}
	var send []*kgo.Record
	for i, r := range recs {
		if !config.ValidTopic(r.Topic) { // Kafka answers such a name with an unknown topic
			errs[i] = fmt.Errorf("produce to %q: %w", r.Topic, newRequestError(kerr.InvalidTopicException,
				"topic name must be 1-249 of a-z A-Z 0-9 . _ - and not \".\" or \"..\""))
			continue
		}
		send = append(send, r)
	}
	if len(send) == 0 {
		return errs
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	byRecord := make(map[*kgo.Record]error, len(recs))
	for _, r := range c.cl.ProduceSync(pctx, send...) {
		byRecord[r.Record] = r.Err
	}
	// A topic deleted and re-created under the same name (or a broker that lost its state)
	// has a new topic ID; franz-go fails it with UNKNOWN_TOPIC_ID until the topic is purged.
	// Purge and try those records once more.
	var again []*kgo.Record
	var recreated []string
	for _, r := range recs {
		if errors.Is(byRecord[r], kerr.UnknownTopicID) {
			again = append(again, r)
			if !slices.Contains(recreated, r.Topic) {
				recreated = append(recreated, r.Topic)
			}
		}
	}
	if len(again) > 0 {
		c.cl.PurgeTopicsFromProducing(recreated...)
		for _, r := range c.cl.ProduceSync(pctx, again...) {
			byRecord[r.Record] = r.Err
		}
	}
	var missing []string
	for i, r := range recs {
		err := byRecord[r]
		if err == nil || errs[i] != nil {
			continue
		}
		errs[i] = classify(ctx, "produce to "+r.Topic, err)
		if errors.Is(errs[i], ErrTopicNotFound) && !slices.Contains(missing, r.Topic) {
			missing = append(missing, r.Topic)
		}
	}
	if len(missing) > 0 {
		// Forget the missing topics, so that a caller naming arbitrary topics cannot make this
		// client ask the cluster about them forever.
		c.cl.PurgeTopicsFromProducing(missing...)
	}
	return errs
}

// CreateTopic creates topic name with the given partition count and replication factor (-1
// for either means the broker's default, Kafka 2.4+) and topic configs (nil for none; a nil
// value means the default). Errors:
//   - ErrTopicExists when it exists;
//   - *RequestError for an invalid name (INVALID_TOPIC_EXCEPTION: 1-249 of a-z A-Z 0-9 . _ -,
//     not "." or "..", checked here too because the embedded broker does not), partition count
//     (INVALID_PARTITIONS: at least 1, or -1), replication factor (INVALID_REPLICATION_FACTOR: at
//     least 1, or -1, and at most the number of brokers) or config, with Kafka's reason;
//   - ErrUnavailable when no broker answered within RequestTimeout.
func (c *Client) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, configs map[string]*string) error {
	op := "create topic " + name
	switch {
	case !config.ValidTopic(name):
		return fmt.Errorf("%s: %w", op, newRequestError(kerr.InvalidTopicException,
			"topic name must be 1-249 of a-z A-Z 0-9 . _ - and not \".\" or \"..\""))
	case partitions == 0 || partitions < -1:
		return fmt.Errorf("%s: %w", op, newRequestError(kerr.InvalidPartitions,
			"number of partitions must be larger than 0, or -1 for the broker default"))
	case replicationFactor == 0 || replicationFactor < -1:
		return fmt.Errorf("%s: %w", op, newRequestError(kerr.InvalidReplicationFactor,
			"replication factor must be larger than 0, or -1 for the broker default"))
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	resp, err := c.adm.CreateTopic(rctx, partitions, replicationFactor, configs, name)
	if err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) && requestCodes[ke.Code] {
			err = newRequestError(ke, resp.ErrMessage)
		}
		return classify(ctx, op, err)
	}
	return nil
}

// ListTopics lists the cluster's topics, internal ones included and flagged, sorted by name.
// It asks a broker every time (no cached metadata), so a topic just created is listed.
// Errors: ErrUnavailable.
func (c *Client) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest() // nil Topics: all topics
	resp, err := req.RequestWith(rctx, c.cl)
	if err != nil {
		return nil, classify(ctx, "list topics", err)
	}
	topics := make([]TopicInfo, 0, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic == nil || t.ErrorCode != 0 {
			continue
		}
		info := TopicInfo{
			Name:       *t.Topic,
			Partitions: int32(len(t.Partitions)),
			Internal:   t.IsInternal || strings.HasPrefix(*t.Topic, "__"),
		}
		if len(t.Partitions) > 0 {
			info.ReplicationFactor = int16(len(t.Partitions[0].Replicas))
		}
		topics = append(topics, info)
	}
	slices.SortFunc(topics, func(a, b TopicInfo) int { return strings.Compare(a.Name, b.Name) })
	return topics, nil
}

// Ping makes one real round trip to a broker (a metadata request for no topics; never an
// answer from the client's cache), bounded by ctx and RequestTimeout, and reports the
// cluster's ID, brokers and controller. Errors: ErrUnavailable (wrapping the dial or request
// error), or ctx's error.
func (c *Client) Ping(ctx context.Context) (BrokerInfo, error) {
	return ping(ctx, c.cl, c.cfg)
}

// ClusterID returns the cluster's ID through Ping.
func (c *Client) ClusterID(ctx context.Context) (string, error) {
	info, err := c.Ping(ctx)
	return info.ClusterID, err
}

// Offsets returns the log start offset and high watermark of every partition of topics, for
// GET /v1/topics/{topic}. Errors: ErrTopicNotFound for a missing topic, ErrUnavailable.
func (c *Client) Offsets(ctx context.Context, topics []string) (map[string]map[int32]PartitionOffsets, error) {
	return listOffsets(ctx, c.adm, c.cfg.RequestTimeout, topics)
}

// Close waits for records still being produced (at most RequestTimeout), then closes the
// connections and unregisters the client metrics. Produce must not be called after Close.
func (c *Client) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
	defer cancel()
	_ = c.cl.Flush(ctx) // a timeout here means the broker is gone; Close fails what is left
	c.cl.Close()
}

// ping is Client.Ping for any franz-go client.
func ping(ctx context.Context, cl *kgo.Client, cfg config.Kafka) (BrokerInfo, error) {
	rctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // no topics: brokers and cluster only
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return BrokerInfo{}, classify(ctx, "ping", err)
	}
	info := BrokerInfo{Controller: resp.ControllerID}
	if resp.ClusterID != nil {
		info.ClusterID = *resp.ClusterID
	}
	brokers := slices.Clone(resp.Brokers)
	slices.SortFunc(brokers, func(a, b kmsg.MetadataResponseBroker) int { return int(a.NodeID - b.NodeID) })
	for _, b := range brokers {
		info.Brokers = append(info.Brokers, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	return info, nil
}
