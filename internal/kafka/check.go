package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Check is `realtime-service check`, the successor of the original service's test-kafka.js. It
// runs these steps against the cluster at brokers:
//
//  1. connect: Ping;
//  2. topic: create notification.TopicTest with the broker's default partitions and replication
//     (already existing is a pass);
//  3. produce: one record with a unique value, acknowledged by all in-sync replicas;
//  4. consume: read that partition from the returned offset until that value comes back;
//  5. list: the topic list includes the test topic.
//
// and prints one line for each to out:
//
//	PASS  connect    127.0.0.1:9092 cluster realtime-service-1a2b3c4d, 1 broker(s) (3 ms)
//	PASS  topic      test-realtime-service already exists (1 ms)
//	PASS  produce    test-realtime-service/0@41 (2 ms)
//	PASS  consume    test-realtime-service/0@41 read back (5 ms)
//	PASS  list       5 topics, test-realtime-service among them (1 ms)
//
// Each step is bounded by ctx and cfg.RequestTimeout. When connecting fails, the remaining
// steps are skipped and Check prints what to check: the address in KAFKA_BROKERS, the
// broker's advertised listener, and the SASL and TLS variables. It returns true when every
// step passed.
func Check(ctx context.Context, cfg config.Kafka, brokers []string, out io.Writer) bool {
	cfg = withDefaults(cfg)
	c, err := NewClient(cfg, brokers, nil, nil)
	if err != nil {
		report(out, "connect", time.Now(), err)
		return false
	}
	defer c.Close()
	topic := notification.TopicTest

	begin := time.Now()
	info, err := c.Ping(ctx)
	if err != nil {
		report(out, "connect", begin, err)
		hints(out, cfg, brokers)
		return false
	}
	report(out, "connect", begin, nil, fmt.Sprintf("%s cluster %s, %d broker(s)",
		strings.Join(brokers, ","), info.ClusterID, len(info.Brokers)))

	ok := true
	begin = time.Now()
	switch err := c.CreateTopic(ctx, topic, -1, -1, nil); {
	case err == nil:
		report(out, "topic", begin, nil, topic+" created")
	case errors.Is(err, ErrTopicExists):
		report(out, "topic", begin, nil, topic+" already exists")
	default:
		report(out, "topic", begin, err)
		ok = false
	}

	begin = time.Now()
	value := checkValue()
	rec := &kgo.Record{Topic: topic, Key: []byte("realtime-service-check"), Value: value}
	if err := c.Produce(ctx, rec)[0]; err != nil {
		report(out, "produce", begin, err)
		report(out, "consume", time.Now(), errors.New("skipped: nothing was produced"))
		ok = false
	} else {
		report(out, "produce", begin, nil, fmt.Sprintf("%s/%d@%d", topic, rec.Partition, rec.Offset))
		begin = time.Now()
		if err := readBack(ctx, cfg, brokers, rec); err != nil {
			report(out, "consume", begin, err)
			ok = false
		} else {
			report(out, "consume", begin, nil, fmt.Sprintf("%s/%d@%d read back", topic, rec.Partition, rec.Offset))
		}
	}

	begin = time.Now()
	topics, err := c.ListTopics(ctx)
	switch {
	case err != nil:
		report(out, "list", begin, err)
		ok = false
	case !slices.ContainsFunc(topics, func(t TopicInfo) bool { return t.Name == topic }):
		report(out, "list", begin, fmt.Errorf("%d topics, %s not among them", len(topics), topic))
		ok = false
	default:
		report(out, "list", begin, nil, fmt.Sprintf("%d topics, %s among them", len(topics), topic))
	}
	return ok
}

// readBack consumes rec's partition from rec's offset until rec's value comes back, bounded by
// ctx and RequestTimeout.
func readBack(ctx context.Context, cfg config.Kafka, brokers []string, rec *kgo.Record) error {
	opts, err := ClientOpts(cfg, brokers)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		rec.Topic: {rec.Partition: kgo.NewOffset().At(rec.Offset)},
	}))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("%w: the record did not come back within %s", ErrUnavailable, cfg.RequestTimeout)
		}
		if err := fetches.Err0(); err != nil {
			return classify(ctx, "consume", err)
		}
		for _, r := range fetches.Records() {
			if r.Offset == rec.Offset {
				if string(r.Value) != string(rec.Value) {
					return fmt.Errorf("offset %d holds %q, want %q", r.Offset, r.Value, rec.Value)
				}
				return nil
			}
		}
	}
}

// checkValue is a value no other check run produces.
func checkValue() []byte {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return []byte("realtime-service check " + time.Now().UTC().Format(time.RFC3339Nano) + " " + hex.EncodeToString(b[:]))
}

// report prints one step's line: PASS with detail, or FAIL with err.
func report(out io.Writer, step string, begin time.Time, err error, detail ...string) {
	status, text := "PASS", strings.Join(detail, " ")
	if err != nil {
		status, text = "FAIL", err.Error()
	}
	fmt.Fprintf(out, "%s  %-9s  %s (%d ms)\n", status, step, text, time.Since(begin).Milliseconds())
}

// hints prints what to check when no broker could be reached.
func hints(out io.Writer, cfg config.Kafka, brokers []string) {
	fmt.Fprintf(out, "      check: KAFKA_BROKERS (%s) names reachable brokers as host:port\n", strings.Join(brokers, ","))
	fmt.Fprintln(out, "      check: the broker's advertised listener (advertised.listeners) is an address this host can reach")
	sasl := "unset"
	if cfg.SASL.Mechanism != "" {
		sasl = cfg.SASL.Mechanism + " as " + cfg.SASL.Username
	}
	tls := "off"
	if cfg.TLS || cfg.TLSCAFile != "" {
		tls = "on"
		if cfg.TLSCAFile != "" {
			tls += ", CA file " + cfg.TLSCAFile
		}
	}
	fmt.Fprintf(out, "      check: KAFKA_SASL_MECHANISM/KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD (%s) and KAFKA_TLS/KAFKA_TLS_CA_FILE (%s) match the broker's listener\n", sasl, tls)
}
