package kafka

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/plugin/kprom"
)

// Metric names. The franz-go client metrics (connections, requests, bytes and records produced
// and fetched, buffered records) are kprom's, named kafka_client_*, with a const label
// role="producer" (the Client), role="consumer" (the Consumer's client) or role="dead-letters"
// (a RoleDeadLetter Consumer's client, which produces to the dead-letter topic). The consumer's
// own metrics are kafka_consumer_* and kafka_dlq_consumer_* (see newConsumerMetrics).
const (
	metricsNamespace = "kafka"
	clientSubsystem  = "client"
)

// newKprom returns kprom metrics for one franz-go client, registered on reg when the client is
// created and unregistered when it is closed. Two open clients of the same role on one reg
// collide (kprom panics on a duplicate registration): one Client and one running Consumer per
// registry.
func newKprom(reg prometheus.Registerer, role string) *kprom.Metrics {
	return kprom.NewMetrics(metricsNamespace,
		kprom.Registerer(reg),
		kprom.Subsystem(clientSubsystem),
		kprom.WithStaticLabel(prometheus.Labels{"role": role}),
	)
}

// consumerMetrics are the Consumer's own metrics.
type consumerMetrics struct {
	// records counts records handed to the Handler, by topic.
	records *prometheus.CounterVec
	// deadLetters counts records copied to the dead-letter topic, by source topic and code
	// (the notification.DecodeError code, or "handler-error").
	deadLetters *prometheus.CounterVec
	// deadLettersTruncated counts the records of deadLetters that were copied truncated (too
	// large to be copied whole), by source topic.
	deadLettersTruncated *prometheus.CounterVec
	// deadLettersInFlight is the number of dead-letter copies produced and not yet acked.
	deadLettersInFlight prometheus.Gauge
	// deadLetterErrors counts poison records whose dead-letter produce failed (truncated copy
	// included), by source topic: they were skipped.
	deadLetterErrors *prometheus.CounterVec
	// poisonSkipped counts poison records skipped without a copy (RoleDeliver), by topic.
	poisonSkipped *prometheus.CounterVec
	// commitErrors counts failed offset commits.
	commitErrors prometheus.Counter
	// lag is the high watermark minus the next offset to hand off, by topic and partition, as of
	// the last fetch of that partition.
	lag *prometheus.GaugeVec
}

// newConsumerMetrics creates the consumer metrics and registers them on reg (none when reg is
// nil): records, lag and commit errors under kafka_<subsystem>_ ("consumer", or "dlq_consumer"
// for RoleDeadLetter), the dead-letter and poison metrics always under kafka_consumer_. A
// metric that is already registered on reg (a second Consumer on one registry, e.g. after a
// restart in tests, or the dead-letter metrics of both roles) is reused.
func newConsumerMetrics(reg prometheus.Registerer, subsystem string) (*consumerMetrics, error) {
	m := &consumerMetrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: subsystem, Name: "records_total",
			Help: "Records handed off by the consumer, by topic.",
		}, []string{"topic"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "consumer", Name: "dead_letters_total",
			Help: "Records copied to the dead-letter topic, by source topic and error code.",
		}, []string{"topic", "code"}),
		deadLettersTruncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "consumer", Name: "dead_letters_truncated_total",
			Help: "Records copied to the dead-letter topic truncated, too large to be copied whole, by source topic.",
		}, []string{"topic"}),
		deadLettersInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "consumer", Name: "dead_letters_in_flight",
			Help: "Copies to the dead-letter topic produced and not yet acknowledged.",
		}),
		deadLetterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "consumer", Name: "dead_letter_errors_total",
			Help: "Poison records whose copy to the dead-letter topic failed (they were skipped), by source topic.",
		}, []string{"topic"}),
		poisonSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "consumer", Name: "poison_skipped_total",
			Help: "Poison records this node's consumer skipped without copying them, by topic: the dead-letter duty (group <KAFKA_GROUP_ID>.dlq) copies each once per cluster.",
		}, []string{"topic"}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: subsystem, Name: "commit_errors_total",
			Help: "Offset commits that failed.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: subsystem, Name: "lag",
			Help: "High watermark minus the next offset to hand off, by topic and partition.",
		}, []string{"topic", "partition"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.records = register(reg, m.records, &err)
	m.deadLetters = register(reg, m.deadLetters, &err)
	m.deadLettersTruncated = register(reg, m.deadLettersTruncated, &err)
	m.deadLettersInFlight = register(reg, m.deadLettersInFlight, &err)
	m.deadLetterErrors = register(reg, m.deadLetterErrors, &err)
	m.poisonSkipped = register(reg, m.poisonSkipped, &err)
	m.commitErrors = register(reg, m.commitErrors, &err)
	m.lag = register(reg, m.lag, &err)
	return m, err
}

// register registers c on reg and returns it, or the collector already registered under the
// same description. Any other error is stored in *errp.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
	case errors.As(err, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
		*errp = errors.Join(*errp, err)
	default:
		*errp = errors.Join(*errp, err)
	}
	return c
}

// setLag records the lag of one partition.
func (m *consumerMetrics) setLag(topic string, partition int32, lag int64) {
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(max(lag, 0)))
}

// dropLag removes the lag of partitions this node no longer consumes.
func (m *consumerMetrics) dropLag(parts map[string][]int32) {
	for topic, ps := range parts {
		for _, p := range ps {
			m.lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
}
