package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// producer produces records for the handlers and waits for Kafka's answer, at most timeout.
type producer struct {
	kafka   Kafka
	timeout time.Duration
	metrics *metrics
	log     *slog.Logger
}

// produce sends recs and returns one error per record, in order; nil means Kafka acknowledged the
// record and set its Partition and Offset. endpoint labels kafka_produce_duration_seconds.
func (p producer) produce(ctx context.Context, endpoint string, recs []*kgo.Record) []error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	errs := p.kafka.Produce(ctx, recs...)
	p.metrics.produceDuration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	if len(errs) != len(recs) { // a broken promise: count nothing as acknowledged
		err := fmt.Errorf("kafka: Produce returned %d results for %d records", len(errs), len(recs))
		p.log.Error("produce", slog.String("endpoint", endpoint), slog.Any("error", err))
		errs = make([]error, len(recs))
		for i := range errs {
			errs[i] = err
		}
	}
	var produced, failed float64
	for _, err := range errs {
		if err == nil {
			produced++
		} else {
			failed++
		}
	}
	p.metrics.records.WithLabelValues(resultProduced).Add(produced)
	p.metrics.records.WithLabelValues(resultFailed).Add(failed)
	return errs
}

// rejected counts n records that were not sent because they were invalid.
func (p producer) rejected(n int) {
	p.metrics.records.WithLabelValues(resultInvalid).Add(float64(n))
}

// recordPosition is the 201 answer to a produce of one record: where Kafka wrote it. ID is the
// event ID "<topic>:<partition>:<offset>" (notification.EventID).
type recordPosition struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func positionOf(rec *kgo.Record) recordPosition {
	return recordPosition{
		ID:        notification.EventID(rec.Topic, rec.Partition, rec.Offset),
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
	}
}
