package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/dedup"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
	"github.com/realtime-service/realtime-service/internal/replay"
	"github.com/realtime-service/realtime-service/internal/socketio"
	"github.com/realtime-service/realtime-service/internal/stage"
	"github.com/realtime-service/realtime-service/internal/status"
	"github.com/realtime-service/realtime-service/web"
)

// serve wires Kafka -> notification -> hub -> connections and the HTTP API, runs them until ctx
// is done, then shuts down gracefully within cfg.HTTP.ShutdownTimeout:
//  1. readiness turns 503 (load balancers stop sending new clients);
//  2. the consumers stop: the node's commits what it handed to the hub and leaves its group, the
//     dead-letter duty's waits for its copies, commits and leaves the shared group (its
//     partitions go to the other nodes at once);
//  3. the HTTP server stops accepting, in-flight API requests finish, and every client connection
//     gets what was queued for it and a "going away" close (1001), so clients reconnect elsewhere;
//  4. the producer flushes and closes; the embedded broker, if any, closes last.
//
// tr traces requests, produces, consumes and fan-outs when it is on (see tracing.go).
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, tr tracing) error {
	if err := cfg.CheckServe(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The status page's last warnings and errors: kept beside what goes to stderr, unchanged.
	errs := status.NewErrorLog(0)
	log = slog.New(errs.Handler(log.Handler()))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	brokers := cfg.Kafka.Brokers
	if cfg.Kafka.Embedded() {
		b, err := kafka.StartEmbedded(cfg.Kafka, log)
		if err != nil {
			return fmt.Errorf("%w (another instance's broker? use it with KAFKA_BROKERS=%s, or pick another KAFKA_EMBEDDED_ADDR)", err, cfg.Kafka.EmbeddedAddr)
		}
		defer b.Close()
		brokers = []string{b.Addr()}
	}
	secret := []byte(cfg.Realtime.JWTSecret)
	if !cfg.ClientTokensConfigured() { // embedded broker only: CheckServe requires a key source with a real broker
		secret = make([]byte, 32)
		rand.Read(secret)
	}

	client, err := kafka.NewClient(cfg.Kafka, brokers, reg, log, tr.clientOpts(cfg.Kafka)...)
	if err != nil {
		return err
	}
	defer client.Close()

	reader, err := kafka.NewReader(cfg.Kafka, brokers, log)
	if err != nil {
		return err
	}
	defer reader.Close()
	decoder, err := notification.NewTopicDecoder(notification.NewValidator(), topicEvents(cfg.Kafka))
	if err != nil { // config.Load checked every Shape
		return err
	}
	dups, err := dedup.New(dedup.Config{Window: cfg.Realtime.IdempotencyWindow, MaxKeys: cfg.Realtime.IdempotencyMaxKeys, Metrics: reg})
	if err != nil {
		return err
	}
	replayer, err := replay.New(reader, decoder, replay.Config{
		Duplicates:   dups,
		MaxRecords:   cfg.Realtime.ReplayMaxRecords,
		Timeout:      cfg.Kafka.RequestTimeout,
		Concurrency:  cfg.Realtime.ReplayConcurrency,
		PerUser:      cfg.Realtime.ReplayPerUser,
		QueuePerUser: cfg.Realtime.ReplayQueuePerUser,
		Metrics:      reg,
	})
	if err != nil {
		return err
	}
	pr, err := newPresence(cfg, brokers, client, reg, log)
	if err != nil {
		return err
	}
	defer pr.close()
	stages, err := stage.New(reg)
	if err != nil {
		return err
	}
	hcfg := realtime.HubConfig{
		Stages:          stages,
		Batched:         true,
		SendQueueBytes:  cfg.Realtime.SendQueueBytes,
		MaxConnsPerUser: cfg.Realtime.MaxConnectionsPerUser,
		CursorEvery:     cfg.Realtime.CursorEvery,
		Log:             log,
		Metrics:         reg,
		History: realtime.HistoryConfig{PerUser: cfg.Realtime.HistorySize, TTL: cfg.Realtime.HistoryTTL,
			MaxBytes: cfg.Realtime.HistoryMaxBytes},
		Replayer: replayer,
	}
	if pr.tracker != nil {
		hcfg.Presence = pr.tracker
	}
	if pr.receipts != nil {
		hcfg.Receipts = pr.receipts
	}
	hub := realtime.NewHub(hcfg)
	consumer, err := newConsumer(cfg.Kafka, brokers, decoder, dups, hub, stages, reg, log, tr)
	if err != nil {
		return err
	}
	deadLetters, err := newDeadLetterConsumer(cfg.Kafka, brokers, decoder, consumer, reg, log)
	if err != nil {
		return err
	}

	checker := health.New(0)
	checker.Require("kafka", func(ctx context.Context) (map[string]any, error) {
		info, err := client.Ping(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"clusterId": info.ClusterID, "brokers": info.Brokers}, nil
	})
	checker.Require("consumer", func(context.Context) (map[string]any, error) {
		return map[string]any{"group": cfg.Kafka.ConsumerGroup(), "topics": cfg.Kafka.TopicNames()}, consumer.Health()
	})
	checker.Add("dead-letters", func(context.Context) (map[string]any, error) {
		return map[string]any{"group": cfg.Kafka.DeadLetterGroup(), "topic": cfg.Kafka.DLQTopic}, deadLetters.Health()
	})
	checker.Require("realtime", func(context.Context) (map[string]any, error) {
		details := map[string]any{"connections": hub.Connections()}
		if hub.Codec() == nil { // resume cursors need the cluster ID: not ready to serve resumes yet
			return details, errors.New("waiting for the Kafka cluster ID to read resume cursors")
		}
		if !hub.Consuming() { // where live events start is unknown until partitions are assigned
			return details, errors.New("waiting for the consumer group to assign partitions")
		}
		return details, nil
	})

	admit := admission.New(admission.Config{
		MaxConnections:       cfg.Realtime.MaxConnections,
		MaxPending:           cfg.Realtime.MaxPending,
		MaxPendingPerAddress: cfg.Realtime.MaxPendingPerAddress,
		TrustedProxies:       cfg.HTTP.TrustedProxies,
		Log:                  log,
		Metrics:              reg,
	})
	users, jwks, err := clientTokens(cfg, secret, reg, log)
	if err != nil {
		return err
	}
	endpoints := realtime.EndpointConfig{
		Admission:    admit,
		Verifier:     users,
		PingInterval: cfg.Realtime.PingInterval,
		PongTimeout:  cfg.Realtime.PongTimeout,
		WriteTimeout: cfg.Realtime.WriteTimeout,
		Log:          log,
	}
	if jwks != nil {
		checker.Add("jwks", jwksCheck(jwks))
	}
	sio := socketio.NewHandler(hub, socketio.Config{
		Verifier:          users,
		Admission:         admit,
		AllowedOrigins:    cfg.Realtime.AllowedOrigins,
		PingInterval:      cfg.Realtime.PingInterval,
		PongTimeout:       cfg.Realtime.PongTimeout,
		WriteTimeout:      cfg.Realtime.WriteTimeout,
		AuthTimeout:       cfg.Realtime.AuthTimeout,
		MaxPayload:        cfg.Realtime.MaxMessageBytes,
		PreAuthMaxPayload: cfg.Realtime.PreAuthMaxMessageBytes,
		NoCursorArg:       !cfg.Realtime.SocketIOCursorArg,
		ReplayTimeout:     cfg.Kafka.RequestTimeout,
		Log:               log,
		Metrics:           reg,
	})
	sampler := status.New(status.Config{Gatherer: reg, Node: cfg.Kafka.NodeID, Errors: errs})
	deps := httpapi.Deps{
		Kafka:      client,
		Health:     checker,
		Gatherer:   reg,
		Registerer: reg,
		Users:      users,
		WebSocket:  realtime.NewWebSocketHandler(hub, endpoints),
		SSE:        realtime.NewSSEHandler(hub, endpoints),
		Receipts:   hub,
		SocketIO:   sio,
		Web:        web.Handler(),
		Status:     sampler,
	}

	if pr.view != nil {
		deps.Presence = pr.view
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTP.Addr, err)
	}
	defer ln.Close() // on the error paths before Serve; Serve's own close is then a no-op
	// Development mode is decided on the bound address: HTTP_ADDR=localhost:0 is loopback, ":3000" is not.
	if cfg.DevTokens(ln.Addr()) {
		deps.DevToken = httpapi.DevTokenHandler(secret)
	}
	// What a client that is slow, silent or idle can hold (SECURITY.md, "Limits"):
	//   - ReadHeaderTimeout: a connection whose request headers are not in within 10 s is closed,
	//     a TCP connection that sends nothing included, so each slowloris connection lasts 10 s;
	//   - a request body must arrive within KAFKA_REQUEST_TIMEOUT (httpapi sets that deadline);
	//   - IdleTimeout: a keep-alive connection idle between requests is closed after 2 min, more
	//     than the 60 s idle timeout common load balancers use, so that the balancer ends idle
	//     connections and never sends a request on one this server is closing;
	//   - no ReadTimeout or WriteTimeout: client streams live for hours; every write to them is
	//     bounded by REALTIME_WRITE_TIMEOUT and /v1/ws reads by its ping deadline instead;
	//   - MaxHeaderBytes: 64 KiB of request line and headers (net/http answers 431 past it),
	//     room for a token in a query or a header, and cookies.
	srv := &http.Server{
		Handler:           tr.handler(httpapi.NewServer(log, cfg, deps)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The one line that says which mode this is and why; a warning when anything is open.
	mode, reason := cfg.Mode(ln.Addr())
	level := slog.LevelInfo
	if mode == "development" || len(cfg.HTTP.APIKeys) == 0 || !cfg.ClientTokensConfigured() {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "realtime-service listening", "mode", mode, "reason", reason, "addr", ln.Addr().String(),
		"brokers", brokers, "group", cfg.Kafka.ConsumerGroup(), "topics", cfg.Kafka.TopicNames())

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	consumerCtx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsumer()
	consumerDone := make(chan struct{})
	wg.Go(func() {
		defer close(consumerDone)
		if err := consumer.Run(consumerCtx); err != nil {
			errc <- fmt.Errorf("consumer: %w", err)
		}
	})
	deadLettersDone := make(chan struct{})
	wg.Go(func() {
		defer close(deadLettersDone)
		if err := deadLetters.Run(consumerCtx); err != nil {
			errc <- fmt.Errorf("dead-letter consumer: %w", err)
		}
	})
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	wg.Go(func() { watchCluster(ctx, client, hub, cfg.Kafka.TopicNames(), log) })
	wg.Go(func() { sampler.Run(ctx) })
	pr.run(ctx, &wg, errc)
	if jwks != nil {
		wg.Go(func() { jwks.Run(ctx) })
	}
	if cfg.DebugAddr != "" {
		dbg, err := startDebug(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer dbg.Close()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.HTTP.ShutdownTimeout)
	case runErr = <-errc:
		log.Error("stopping after a fatal error", "err", runErr)
	}
	cancel()

	sctx, cancelShutdown := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancelShutdown()
	checker.SetShuttingDown()
	stopConsumer()
	for _, done := range []chan struct{}{consumerDone, deadLettersDone} {
		select {
		case <-done:
		case <-sctx.Done():
		}
	}
	var sg sync.WaitGroup
	sg.Go(func() {
		if err := hub.Shutdown(sctx); err != nil {
			log.Warn("some client connections did not close in time", "err", err)
		}
	})
	sg.Go(func() {
		if err := sio.Shutdown(sctx); err != nil {
			log.Warn("some Socket.IO sessions did not close in time", "err", err)
		}
	})
	sg.Go(func() {
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("some HTTP requests did not finish in time", "err", err)
			srv.Close()
		}
	})
	sg.Wait()
	pr.stop(sctx) // after the hub closed every connection: their tombstones, then the node's
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// clientTokens returns the verifier of client tokens for cfg's key sources, and the JWKS among
// them (nil without REALTIME_JWKS_URL), which the caller runs. Without any key source (development),
// it verifies with devSecret, the random secret of this run, and explains a token of an earlier run.
func clientTokens(cfg config.Config, devSecret []byte, reg prometheus.Registerer, log *slog.Logger) (*auth.Verifier, *auth.JWKS, error) {
	if !cfg.ClientTokensConfigured() {
		return auth.NewDevelopmentVerifier(devSecret), nil, nil
	}
	rc := cfg.Realtime
	ac := auth.Config{PublicKey: rc.JWTPublicKey, Issuer: rc.JWTIssuer, Audience: rc.JWTAudience, UserClaim: rc.JWTUserClaim}
	if rc.JWTSecret != "" {
		ac.Secret = []byte(rc.JWTSecret)
	}
	if rc.JWKSURL != "" {
		jwks, err := auth.NewJWKS(auth.JWKSConfig{
			URL:                rc.JWKSURL,
			RefreshInterval:    rc.JWKSRefreshInterval,
			MinRefreshInterval: rc.JWKSMinRefreshInterval,
			FetchTimeout:       rc.JWKSFetchTimeout,
			Log:                log,
			Metrics:            reg,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("REALTIME_JWKS_URL: %w", err)
		}
		ac.JWKS = jwks
	}
	v, err := auth.New(ac)
	if err != nil {
		return nil, nil, err
	}
	return v, ac.JWKS, nil
}

// jwksCheck reports the identity provider's key set: up after a good fetch, degraded while
// fetches fail but the keys of an earlier one still verify tokens, down before any key was
// fetched. It is informational: a node whose provider is down keeps serving.
func jwksCheck(jwks *auth.JWKS) health.Check {
	return func(context.Context) (map[string]any, error) {
		st := jwks.Status()
		details := map[string]any{"url": st.URL, "keys": st.Keys, "lastRefresh": nil}
		if !st.LastSuccess.IsZero() {
			details["lastRefresh"] = st.LastSuccess.UTC().Format(time.RFC3339)
		}
		if len(st.Skipped) > 0 {
			details["skipped"] = st.Skipped
		}
		switch {
		case st.Keys == 0 && st.LastError != nil:
			return details, fmt.Errorf("no key fetched yet: %w", st.LastError)
		case st.Keys == 0:
			return details, errors.New("first fetch in progress")
		case st.LastError != nil:
			return details, health.Degraded(fmt.Errorf("the last fetch failed (%s), verifying with the %d keys of the last good one: %w",
				st.LastAttempt.UTC().Format(time.RFC3339), st.Keys, st.LastError))
		}
		return details, nil
	}
}

// topicEvents maps each consumed topic to its event name and Shape.
func topicEvents(cfg config.Kafka) map[string]notification.Topic {
	topics := make(map[string]notification.Topic, len(cfg.Topics))
	for _, t := range cfg.Topics {
		topics[t.Topic] = notification.Topic{Event: t.Event, Shape: t.Shape}
	}
	return topics
}

// newConsumer makes this node's consumer: each record is decoded and validated, then handed to
// the hub, unless dups drops it as a producer's retry (package dedup: it is neither delivered
// nor kept in the history); a record that fails is skipped (newDeadLetterConsumer's members
// copy it to the dead-letter topic, once per cluster, with the reason: the decode here is
// DecodeForDelivery, which leaves the wording to them). With tracing on, each record's hand-off is a fan-out span in the record's trace.
func newConsumer(cfg config.Kafka, brokers []string, decoder *notification.Decoder, dups *dedup.Window, hub *realtime.Hub, stages *stage.Timer, reg prometheus.Registerer, log *slog.Logger, tr tracing) (*kafka.Consumer, error) {
	var fetched time.Time // the current poll's: Polled and the handler run on one goroutine
	deliver := func(rec *kgo.Record) (*realtime.Event, error) {
		stages.Observe(stage.ProduceFetch, fetched.Sub(rec.Timestamp))
		ev, err := decoder.DecodeForDelivery(rec)
		decoded := time.Now()
		stages.Observe(stage.FetchDecode, decoded.Sub(fetched))
		if err != nil {
			return nil, err
		}
		if dups.Drop(rec) {
			return nil, nil
		}
		return hub.PublishDecoded(ev, decoded), nil
	}
	handler := func(_ context.Context, rec *kgo.Record) error {
		_, err := deliver(rec)
		return err
	}
	if tr.on() {
		handler = tr.traceDelivery(deliver)
	}
	return kafka.NewConsumer(cfg, brokers, kafka.ConsumerConfig{
		Role:     kafka.RoleDeliver,
		Handler:  handler,
		Assigned: hub.Assigned,
		Revoked:  hub.Revoked,
		Polled:   func(at time.Time) { fetched = at },
		Flush:    hub.Flush, // one write per connection per polled batch
		Opts:     tr.consumerOpts(cfg),
	}, reg, log)
}

// newDeadLetterConsumer makes this node's member of the dead-letter duty group, shared by all
// nodes (kafka.RoleDeadLetter): for the partitions Kafka assigns it, it decodes each record
// again and copies those that fail to the dead-letter topic, so that each poison record is
// copied once per cluster, whatever the number of nodes. It runs behind delivery, this node's
// consumer: it hands a partition's records off once delivery has handed them off too and is not
// catching up (a burst), or a second later, so that a burst of poison records is skipped by
// delivery before the duty takes CPU and broker time to copy it (docs/design.md, "Many nodes").
func newDeadLetterConsumer(cfg config.Kafka, brokers []string, decoder *notification.Decoder, delivery *kafka.Consumer, reg prometheus.Registerer, log *slog.Logger) (*kafka.Consumer, error) {
	return kafka.NewConsumer(cfg, brokers, kafka.ConsumerConfig{
		Role: kafka.RoleDeadLetter,
		Behind: func(topic string, partition int32, next int64) bool {
			handed, ok := delivery.Handed(topic, partition)
			return ok && handed < next || delivery.CatchingUp()
		},
		Handler: func(_ context.Context, rec *kgo.Record) error {
			_, err := decoder.Decode(rec)
			return err
		},
	}, reg, log)
}

// watchCluster gives the hub its cursor codec as soon as the cluster ID is known, retrying while
// Kafka is unreachable.
func watchCluster(ctx context.Context, client *kafka.Client, hub *realtime.Hub, topics []string, log *slog.Logger) {
	for {
		id, err := client.ClusterID(ctx)
		if err == nil {
			codec, err := realtime.NewCursorCodec(id, topics)
			if err != nil {
				log.Error("resume cursors are disabled", "err", err)
				return
			}
			hub.SetCursorCodec(codec)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// startDebug serves net/http/pprof on addr (DEBUG_ADDR), apart from the public listener.
func startDebug(addr string, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on DEBUG_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("pprof listening", "addr", ln.Addr().String())
	return srv, nil
}
