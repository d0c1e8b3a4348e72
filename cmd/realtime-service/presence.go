package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/presence"
	"github.com/realtime-service/realtime-service/internal/receipts"
)

// presenceParts are the node's presence tracker and cluster-wide view (REALTIME_PRESENCE_TOPIC)
// and its receipt recorder (REALTIME_RECEIPTS_TOPIC, nil when unset), each with its own
// asynchronous producer (docs/presence-and-receipts.md).
type presenceParts struct {
	cfg      config.Config
	brokers  []string
	client   *kafka.Client
	log      *slog.Logger
	prod     *kafka.AsyncProducer
	tracker  *presence.Tracker
	view     *presence.View
	rprod    *kafka.AsyncProducer
	receipts *receipts.Recorder
}

// newPresence makes the presence and receipts parts; it starts nothing (see run).
func newPresence(cfg config.Config, brokers []string, client *kafka.Client, reg prometheus.Registerer, log *slog.Logger) (*presenceParts, error) {
	p := &presenceParts{cfg: cfg, brokers: brokers, client: client, log: log}
	prod, err := kafka.NewAsyncProducer(cfg.Kafka, brokers, kafka.AsyncConfig{}, log)
	if err != nil {
		return nil, err
	}
	p.prod = prod
	p.tracker = presence.NewTracker(presence.TrackerConfig{Topic: cfg.Kafka.PresenceTopic, Node: cfg.Kafka.NodeID,
		Heartbeat: cfg.Realtime.PresenceHeartbeat, Producer: prod, Log: log, Metrics: reg})
	p.view = presence.NewView(presence.ViewConfig{Timeout: cfg.Realtime.PresenceTimeout, Tracker: p.tracker, Log: log, Metrics: reg})
	if cfg.Kafka.ReceiptsTopic == "" {
		return p, nil
	}
	p.rprod, err = kafka.NewAsyncProducer(cfg.Kafka, brokers, kafka.AsyncConfig{MaxBuffered: cfg.Realtime.ReceiptQueue}, log)
	if err != nil {
		prod.Close()
		return nil, err
	}
	p.receipts = receipts.New(receipts.Config{Topic: cfg.Kafka.ReceiptsTopic, Node: cfg.Kafka.NodeID, Producer: p.rprod, Metrics: reg})
	return p, nil
}

// run creates the topics if missing, then runs the tracker (heartbeats, records) and the view's
// reader until ctx is done. The presence topic is created compacted (cleanup.policy=compact:
// only each key's last record stays), the receipts topic with the broker's defaults; a topic
// that cannot be created is a warning (a broker down now may be up later; the produces say so).
func (p *presenceParts) run(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) {
	compact := "compact"
	ensure := func(topic string, configs map[string]*string) {
		if err := p.client.EnsureTopic(ctx, topic, configs); err != nil && ctx.Err() == nil {
			p.log.Warn("a topic could not be created", "topic", topic, "err", err)
		}
	}
	wg.Go(func() {
		ensure(p.cfg.Kafka.PresenceTopic, map[string]*string{"cleanup.policy": &compact})
		if p.rprod != nil {
			ensure(p.cfg.Kafka.ReceiptsTopic, nil)
		}
		wg.Go(func() { p.tracker.Run(ctx) })
		if err := kafka.Follow(ctx, p.cfg.Kafka, p.brokers, p.cfg.Kafka.PresenceTopic, p.log, p.view.Apply); err != nil {
			errc <- fmt.Errorf("presence view: %w", err)
		}
	})
}

// stop says the node's goodbye (presence.Tracker.Stop) and waits, within ctx, until Kafka took
// it and the receipts still queued.
func (p *presenceParts) stop(ctx context.Context) {
	p.tracker.Stop()
	if err := p.prod.Flush(ctx); err != nil {
		p.log.Warn("some presence records were not produced before exit", "err", err)
	}
	if p.rprod != nil {
		if err := p.rprod.Flush(ctx); err != nil {
			p.log.Warn("some receipts were not produced before exit", "err", err)
		}
	}
}

// close closes the producers.
func (p *presenceParts) close() {
	p.prod.Close()
	if p.rprod != nil {
		p.rprod.Close()
	}
}
