package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/presence"
	"github.com/realtime-service/realtime-service/internal/realtime"
	"github.com/realtime-service/realtime-service/internal/status"
)

// The OpenAPI document served at GET /openapi.json is held to the handlers: every route of
// routes.go is in it (and nothing else), every documented response of every operation is
// produced by a real request below, each request is checked against the document (valid ones
// pass, broken ones are refused by it too) and each answer is checked against it.

// conformance is a test server with every optional dependency and a health check to fail.
type conformance struct {
	*testServer
	down *atomic.Bool
	t    *testing.T
}

func newConformance(t *testing.T, configure ...func(*config.Config)) *conformance {
	c := &conformance{down: &atomic.Bool{}, t: t}
	checker := health.New(time.Second)
	c.testServer = newServer(t, func(cfg *config.Config, d *httpapi.Deps) {
		for _, f := range configure {
			f(cfg)
		}
		d.Health = checker
		d.Health.Require("kafka", func(context.Context) (map[string]any, error) {
			if c.down.Load() {
				return nil, errors.New("no broker answered")
			}
			return map[string]any{"clusterId": "test"}, nil
		})
		d.Health.Add("realtime", func(context.Context) (map[string]any, error) {
			return map[string]any{"connections": 0}, nil
		})
		d.Users = auth.NewVerifier([]byte(userSecret))
		d.WebSocket = marker("ws")
		d.SSE = marker("sse")
		d.SocketIO = marker("socket.io")
		d.DevToken = httpapi.DevTokenHandler([]byte(userSecret))
		d.Presence = presence.NewView(presence.ViewConfig{})
		d.Receipts = realtime.NewHub(realtime.HubConfig{})
		withStatus(time.UnixMilli(1_700_000_000_000))(cfg, d)
	})
	c.health = checker
	c.kafka.topics = []kafka.TopicInfo{{Name: "orders", Partitions: 3, ReplicationFactor: 1}}
	return c
}

// loadDocument fetches GET /openapi.json from the handler and loads it as an OpenAPI document.
func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	s := newServer(t)
	w := s.serve(httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(w.Body.Bytes())
	if err != nil {
		t.Fatalf("load /openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("/openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %s, want 3.1", doc.OpenAPI)
	}
	return doc
}

// apiCase is one real request and the answer it must get.
type apiCase struct {
	name        string
	method      string
	path        string
	body        string
	contentType string // default application/json when there is a body
	noKey       bool   // send no API key
	header      map[string]string
	setup       func(*conformance)
	config      func(*config.Config) // changes the server's configuration
	status      int
	code        string // the problem code of an error answer
	// badRequest: the request breaks the document's own request rules, so the validator must
	// refuse it (and the handler answers 4xx).
	badRequest bool
}

const (
	oaConcept = `{"conceptId":"js-arrays","userIds":["alice"],"conceptName":"JavaScript Arrays","masteryLevel":0.92}`
	oaSession = `{"sessionId":"s-42","userIds":["alice","bob"],"message":"Starts in 5 minutes","scheduledTime":"2026-11-29T10:00:00Z"}`
)

// largeButValid is the notification body with so many user IDs that it is still valid but over
// the test server's 4096-byte body limit.
func largeButValid(body string) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	users := make([]string, 30)
	for i := range users {
		users[i] = fmt.Sprintf("%03d-%s", i, strings.Repeat("u", 190))
	}
	m["userIds"] = users
	b, _ := json.Marshal(m)
	return string(b)
}

// brief cuts a validation error to its first lines: kin-openapi prints whole schemas and values.
func brief(err error) string {
	s := err.Error()
	if len(s) > 800 {
		s = s[:800] + "..."
	}
	return s
}

func failProduce(err error) func(*conformance) {
	return func(c *conformance) { c.kafka.produceErr = func(*kgo.Record) error { return err } }
}

// sentBefore sends body to path with Idempotency-Key k1 first: the case's own request, with
// another body, reuses the key.
func sentBefore(path, body string) func(*conformance) {
	return func(c *conformance) {
		r := request(http.MethodPost, path, body)
		r.Header.Set("Idempotency-Key", "k1")
		if w := c.serve(r); w.Code != http.StatusCreated {
			c.t.Fatalf("first request: %d %s", w.Code, w.Body)
		}
	}
}

// inProgress starts a request to path with Idempotency-Key k1 that Kafka does not answer
// until the test ends.
func inProgress(path, body string) func(*conformance) {
	return func(c *conformance) {
		started := make(chan struct{})
		c.kafka.waitForContext = true
		c.kafka.onProduce = sync.OnceFunc(func() { close(started) })
		ctx, cancel := context.WithCancel(context.Background())
		r := request(http.MethodPost, path, body).WithContext(ctx)
		r.Header.Set("Idempotency-Key", "k1")
		done := make(chan struct{})
		go func() { defer close(done); c.serve(r) }()
		c.t.Cleanup(func() { cancel(); <-done })
		<-started
	}
}

func apiCases() []apiCase {
	boom := errors.New("boom")
	idem := map[string]string{"Idempotency-Key": "k1"}
	var cases []apiCase
	for _, n := range []struct{ path, body string }{
		{"/v1/notifications/concept-mastered", oaConcept},
		{"/v1/notifications/session-starting-soon", oaSession},
	} {
		cases = append(cases,
			apiCase{name: "created", method: "POST", path: n.path, body: n.body, status: 201},
			apiCase{name: "created with delivery options", method: "POST", path: n.path,
				body: n.body[:len(n.body)-1] + `,"expiresAt":"2026-11-29T10:05:00Z","ttlMs":60000,"collapseKey":"k"}`, status: 201},
			apiCase{name: "delivery options invalid", method: "POST", path: n.path,
				body: n.body[:len(n.body)-1] + `,"ttlMs":-1,"collapseKey":""}`, status: 400, code: "validation-error", badRequest: true},
			apiCase{name: "validation", method: "POST", path: n.path, body: `{"userIds":[],"masteryLevel":2,"extra":1}`, status: 400, code: "validation-error", badRequest: true},
			apiCase{name: "invalid json", method: "POST", path: n.path, body: `{"conceptId":`, status: 400, code: "invalid-json", badRequest: true},
			apiCase{name: "no key", method: "POST", path: n.path, body: n.body, noKey: true, status: 401, code: "unauthorized", badRequest: true},
			apiCase{name: "unknown key", method: "POST", path: n.path, body: n.body, noKey: true, header: map[string]string{"X-API-Key": "not-a-key-0123456789"}, status: 401, code: "unauthorized"},
			apiCase{name: "topic missing", method: "POST", path: n.path, body: n.body, setup: failProduce(kafka.ErrTopicNotFound), status: 404, code: "topic-not-found"},
			apiCase{name: "topic keyed by user", method: "POST", path: n.path, body: n.body, config: func(c *config.Config) {
				c.Kafka.Topics = []config.TopicEvent{
					{Topic: "session-notifications", Event: "chat", Shape: notification.Shape{Recipients: "key"}},
					{Topic: "concept-notifications", Event: "grade", Shape: notification.Shape{Recipients: "header:user-id", Value: "raw-base64"}},
				}
			}, status: 409, code: "topic-shape-mismatch"},
			apiCase{name: "too large", method: "POST", path: n.path, body: largeButValid(n.body), status: 413, code: "body-too-large"},
			apiCase{name: "not json", method: "POST", path: n.path, body: n.body, contentType: "text/plain", status: 415, code: "unsupported-media-type", badRequest: true},
			apiCase{name: "bug", method: "POST", path: n.path, body: n.body, setup: func(c *conformance) { c.kafka.panicOnProduce = true }, status: 500, code: "internal-error"},
			apiCase{name: "kafka down", method: "POST", path: n.path, body: n.body, setup: failProduce(kafka.ErrUnavailable), status: 503, code: "kafka-unavailable"},
			apiCase{name: "idempotency key", method: "POST", path: n.path, body: n.body, header: idem, status: 201},
			apiCase{name: "idempotency key retried", method: "POST", path: n.path, body: n.body, header: idem, setup: sentBefore(n.path, n.body), status: 201},
			apiCase{name: "idempotency key not ascii", method: "POST", path: n.path, body: n.body, header: map[string]string{"Idempotency-Key": "caf\u00e9"}, status: 400, code: "invalid-idempotency-key", badRequest: true},
			apiCase{name: "idempotency key reused", method: "POST", path: n.path, body: n.body, header: idem, setup: sentBefore(n.path, n.body+" "), status: 422, code: "idempotency-key-mismatch"},
			apiCase{name: "idempotency key in use", method: "POST", path: n.path, body: n.body, header: idem, setup: inProgress(n.path, n.body), status: 409, code: "idempotency-key-in-use"},
		)
	}

	const records = "/v1/topics/orders/records"
	failSecond := func(err error) func(*conformance) {
		return func(c *conformance) {
			c.kafka.produceErr = func(r *kgo.Record) error {
				if string(r.Value) == "2" {
					return err
				}
				return nil
			}
		}
	}
	cases = append(cases,
		apiCase{name: "one record", method: "POST", path: records, body: `{"key":"k1","value":{"hello":"world"},"headers":[{"key":"event-type","value":"greeting"},{"key":"empty","value":null}]}`, status: 201},
		apiCase{name: "batch", method: "POST", path: records, body: `{"records":[{"value":1},{"key":"k","value":"two"}]}`, status: 201},
		apiCase{name: "batch, Kafka refuses one", method: "POST", path: records, body: `{"records":[{"value":1},{"value":2}]}`, setup: failSecond(kafka.ErrUnavailable), status: 207},
		apiCase{name: "batch, one invalid", method: "POST", path: records, body: `{"records":[{"value":1},{"key":"no value"}]}`, status: 207, badRequest: true},
		apiCase{name: "record without value", method: "POST", path: records, body: `{"key":"k"}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "null value", method: "POST", path: records, body: `{"value":null}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "records invalid json", method: "POST", path: records, body: `[`, status: 400, code: "invalid-json", badRequest: true},
		apiCase{name: "empty batch", method: "POST", path: records, body: `{"records":[]}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "records beside value", method: "POST", path: records, body: `{"value":1,"records":[{"value":1}]}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "batch, every record invalid", method: "POST", path: records, body: `{"records":[{"key":"a"},{"headers":[]}]}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "illegal topic name", method: "POST", path: "/v1/topics/bad%20topic!/records", body: `{"value":1}`, status: 400, code: "invalid-topic-name", badRequest: true},
		apiCase{name: "records no key", method: "POST", path: records, body: `{"value":1}`, noKey: true, status: 401, code: "unauthorized", badRequest: true},
		apiCase{name: "internal topic", method: "POST", path: "/v1/topics/__consumer_offsets/records", body: `{"value":1}`, status: 403, code: "internal-topic"},
		apiCase{name: "dead-letter topic", method: "POST", path: "/v1/topics/realtime-service.dlq/records", body: `{"value":1}`, status: 403, code: "internal-topic"},
		apiCase{name: "record, topic missing", method: "POST", path: records, body: `{"value":1}`, setup: failProduce(kafka.ErrTopicNotFound), status: 404, code: "topic-not-found"},
		apiCase{name: "batch, topic missing", method: "POST", path: records, body: `{"records":[{"value":1},{"value":2}]}`, setup: failProduce(kafka.ErrTopicNotFound), status: 404, code: "topic-not-found"},
		apiCase{name: "records too large", method: "POST", path: records, body: `{"value":"` + strings.Repeat("x", 5000) + `"}`, status: 413, code: "body-too-large"},
		apiCase{name: "records not json", method: "POST", path: records, body: `{"value":1}`, contentType: "text/plain", status: 415, code: "unsupported-media-type", badRequest: true},
		apiCase{name: "records bug", method: "POST", path: records, body: `{"value":1}`, setup: func(c *conformance) { c.kafka.panicOnProduce = true }, status: 500, code: "internal-error"},
		apiCase{name: "record, kafka down", method: "POST", path: records, body: `{"value":1}`, setup: failProduce(kafka.ErrUnavailable), status: 503, code: "kafka-unavailable"},
		apiCase{name: "record, idempotency key", method: "POST", path: records, body: `{"value":1}`, header: idem, status: 201},
		apiCase{name: "batch, idempotency key", method: "POST", path: records, body: `{"records":[{"value":1},{"value":2}]}`, header: idem, status: 201},
		apiCase{name: "record, idempotency key too long", method: "POST", path: records, body: `{"value":1}`, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 258)}, status: 400, code: "invalid-idempotency-key", badRequest: true},
		apiCase{name: "record, idempotency key reused", method: "POST", path: records, body: `{"value":1}`, header: idem, setup: sentBefore(records, `{"value":2}`), status: 422, code: "idempotency-key-mismatch"},
		apiCase{name: "record, idempotency key in use", method: "POST", path: records, body: `{"value":1}`, header: idem, setup: inProgress(records, `{"value":1}`), status: 409, code: "idempotency-key-in-use"},
		apiCase{name: "batch, kafka down", method: "POST", path: records, body: `{"records":[{"value":1},{"key":"bad"}]}`, setup: failProduce(kafka.ErrUnavailable), status: 503, code: "kafka-unavailable", badRequest: true},
	)

	cases = append(cases,
		apiCase{name: "list", method: "GET", path: "/v1/topics", status: 200},
		apiCase{name: "list no key", method: "GET", path: "/v1/topics", noKey: true, status: 401, code: "unauthorized", badRequest: true},
		apiCase{name: "list bug", method: "GET", path: "/v1/topics", setup: func(c *conformance) { c.kafka.listErr = boom }, status: 500, code: "internal-error"},
		apiCase{name: "list kafka down", method: "GET", path: "/v1/topics", setup: func(c *conformance) { c.kafka.listErr = kafka.ErrUnavailable }, status: 503, code: "kafka-unavailable"},

		apiCase{name: "describe", method: "GET", path: "/v1/topics/orders", status: 200},
		apiCase{name: "describe illegal name", method: "GET", path: "/v1/topics/bad%20name", status: 400, code: "invalid-topic-name", badRequest: true},
		apiCase{name: "describe no key", method: "GET", path: "/v1/topics/orders", noKey: true, status: 401, code: "unauthorized", badRequest: true},
		apiCase{name: "describe internal", method: "GET", path: "/v1/topics/__consumer_offsets", status: 403, code: "internal-topic"},
		apiCase{name: "describe missing", method: "GET", path: "/v1/topics/nothing-here", status: 404, code: "topic-not-found"},
		apiCase{name: "describe bug", method: "GET", path: "/v1/topics/orders", setup: func(c *conformance) { c.kafka.listErr = boom }, status: 500, code: "internal-error"},
		apiCase{name: "describe kafka down", method: "GET", path: "/v1/topics/orders", setup: func(c *conformance) { c.kafka.listErr = kafka.ErrUnavailable }, status: 503, code: "kafka-unavailable"},

		apiCase{name: "create", method: "POST", path: "/v1/topics", body: `{"name":"grades","partitions":3,"replicationFactor":1,"configs":{"retention.ms":"604800000"}}`, status: 201},
		apiCase{name: "create validation", method: "POST", path: "/v1/topics", body: `{"name":"bad name","partitions":0}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "create invalid json", method: "POST", path: "/v1/topics", body: `{"name":`, status: 400, code: "invalid-json", badRequest: true},
		apiCase{name: "create rejected", method: "POST", path: "/v1/topics", body: `{"name":"grades","partitions":3,"replicationFactor":3}`, setup: func(c *conformance) {
			c.kafka.createErr = &kafka.RequestError{Code: "INVALID_REPLICATION_FACTOR", Message: "replication factor 3 is larger than the 1 broker(s)"}
		}, status: 400, code: "kafka-rejected"},
		apiCase{name: "create no key", method: "POST", path: "/v1/topics", body: `{"name":"g","partitions":1,"replicationFactor":1}`, noKey: true, status: 401, code: "unauthorized", badRequest: true},
		apiCase{name: "create internal", method: "POST", path: "/v1/topics", body: `{"name":"__mine","partitions":1,"replicationFactor":1}`, status: 403, code: "internal-topic"},
		apiCase{name: "create exists", method: "POST", path: "/v1/topics", body: `{"name":"orders","partitions":1,"replicationFactor":1}`, setup: func(c *conformance) { c.kafka.createErr = kafka.ErrTopicExists }, status: 409, code: "topic-exists"},
		apiCase{name: "create too large", method: "POST", path: "/v1/topics", body: `{"name":"g","partitions":1,"replicationFactor":1,"configs":{"x":"` + strings.Repeat("x", 5000) + `"}}`, status: 413, code: "body-too-large"},
		apiCase{name: "create not json", method: "POST", path: "/v1/topics", body: `{"name":"g","partitions":1,"replicationFactor":1}`, contentType: "text/plain", status: 415, code: "unsupported-media-type", badRequest: true},
		apiCase{name: "create bug", method: "POST", path: "/v1/topics", body: `{"name":"g","partitions":1,"replicationFactor":1}`, setup: func(c *conformance) { c.kafka.createErr = boom }, status: 500, code: "internal-error"},
		apiCase{name: "create kafka down", method: "POST", path: "/v1/topics", body: `{"name":"g","partitions":1,"replicationFactor":1}`, setup: func(c *conformance) { c.kafka.createErr = kafka.ErrUnavailable }, status: 503, code: "kafka-unavailable"},
	)

	down := func(c *conformance) { c.down.Store(true) }
	shuttingDown := func(c *conformance) { c.health.SetShuttingDown() }
	cases = append(cases,
		apiCase{name: "health", method: "GET", path: "/health", noKey: true, status: 200},
		apiCase{name: "health down", method: "GET", path: "/health", noKey: true, setup: down, status: 503},
		apiCase{name: "live", method: "GET", path: "/health/live", noKey: true, setup: down, status: 200},
		apiCase{name: "ready", method: "GET", path: "/health/ready", noKey: true, status: 200},
		apiCase{name: "not ready", method: "GET", path: "/health/ready", noKey: true, setup: down, status: 503},
		apiCase{name: "shutting down", method: "GET", path: "/health/ready", noKey: true, setup: shuttingDown, status: 503},
		apiCase{name: "metrics", method: "GET", path: "/metrics", noKey: true, status: 200},
		apiCase{name: "openapi", method: "GET", path: "/openapi.json", noKey: true, status: 200},

		apiCase{name: "status", method: "GET", path: "/v1/status", status: 200},
		apiCase{name: "status since", method: "GET", path: "/v1/status?since=1700000000000", status: 200},
		apiCase{name: "status bad since", method: "GET", path: "/v1/status?since=yesterday", status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "status no key", method: "GET", path: "/v1/status", noKey: true, status: 401, code: "unauthorized", badRequest: true},

		apiCase{name: "dev token", method: "GET", path: "/v1/dev/token?user=alice&ttl=15m", noKey: true, status: 200},
		apiCase{name: "dev token without user", method: "GET", path: "/v1/dev/token", noKey: true, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "dev token bad ttl", method: "GET", path: "/v1/dev/token?user=alice&ttl=1y", noKey: true, status: 400, code: "validation-error"},

		apiCase{name: "ws without token", method: "GET", path: "/v1/ws", noKey: true, status: 401, code: "user-unauthorized"},
		apiCase{name: "ws bad token", method: "GET", path: "/v1/ws?access_token=not.a.token", noKey: true, status: 401, code: "user-unauthorized"},
		apiCase{name: "ws foreign origin", method: "GET", path: "/v1/ws?access_token=" + userToken, noKey: true, header: map[string]string{"Origin": "https://evil.example"}, status: 403, code: "forbidden-origin"},
		apiCase{name: "events without token", method: "GET", path: "/v1/events", noKey: true, status: 401, code: "user-unauthorized"},
		apiCase{name: "events foreign origin", method: "GET", path: "/v1/events?access_token=" + userToken, noKey: true, header: map[string]string{"Origin": "https://evil.example"}, status: 403, code: "forbidden-origin"},
	)

	const read = "/v1/events/read?access_token="
	cases = append(cases,
		apiCase{name: "presence", method: "GET", path: "/v1/users/alice/presence", status: 200},
		apiCase{name: "presence id too long", method: "GET", path: "/v1/users/" + strings.Repeat("u", 257) + "/presence", status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "presence no key", method: "GET", path: "/v1/users/alice/presence", noKey: true, status: 401, code: "unauthorized", badRequest: true},
		apiCase{name: "presence query", method: "POST", path: "/v1/presence/query", body: `{"userIds":["alice","bob"]}`, status: 200},
		apiCase{name: "presence query over the limit", method: "POST", path: "/v1/presence/query", body: `{"userIds":["a","b","c"]}`,
			config: func(c *config.Config) { c.Realtime.PresenceQueryMaxUsers = 2 }, status: 400, code: "validation-error"},
		apiCase{name: "presence query without ids", method: "POST", path: "/v1/presence/query", body: `{}`, status: 400, code: "validation-error", badRequest: true},
		apiCase{name: "presence query invalid json", method: "POST", path: "/v1/presence/query", body: `{"userIds":[`, status: 400, code: "invalid-json", badRequest: true},
		apiCase{name: "presence query no key", method: "POST", path: "/v1/presence/query", body: `{"userIds":[]}`, noKey: true, status: 401, code: "unauthorized", badRequest: true},
		apiCase{name: "presence query too large", method: "POST", path: "/v1/presence/query", body: `{"userIds":["` + strings.Repeat("u", 5000) + `"]}`, status: 413, code: "body-too-large", badRequest: true},
		apiCase{name: "presence query not json", method: "POST", path: "/v1/presence/query", body: `{"userIds":[]}`, contentType: "text/plain", status: 415, code: "unsupported-media-type", badRequest: true},
		apiCase{name: "read", method: "POST", path: read + userToken, body: `{"ids":["concept-notifications:0:42"]}`, noKey: true, status: 204},
		apiCase{name: "read bad id", method: "POST", path: read + userToken, body: `{"ids":["not an id"]}`, noKey: true, status: 400, code: "validation-error"},
		apiCase{name: "read too many", method: "POST", path: read + userToken, body: `{"ids":["t:0:1","t:0:2"]}`, noKey: true,
			config: func(c *config.Config) { c.Realtime.ReadMaxIDs = 1 }, status: 400, code: "validation-error"},
		apiCase{name: "read without token", method: "POST", path: "/v1/events/read", body: `{"ids":["t:0:1"]}`, noKey: true, status: 401, code: "user-unauthorized"},
		apiCase{name: "read foreign origin", method: "POST", path: read + userToken, body: `{"ids":["t:0:1"]}`, noKey: true, header: map[string]string{"Origin": "https://evil.example"}, status: 403, code: "forbidden-origin"},
		apiCase{name: "read too large", method: "POST", path: read + userToken, body: `{"ids":["` + strings.Repeat("u", 5000) + `"]}`, noKey: true, status: 413, code: "body-too-large", badRequest: true},
		apiCase{name: "read not json", method: "POST", path: read + userToken, body: `{"ids":["t:0:1"]}`, contentType: "text/plain", noKey: true, status: 415, code: "unsupported-media-type", badRequest: true},
	)
	return cases
}

// served answers that come from other packages (realtime, socketio) through marker handlers
// here; their protocols are described in prose and tested end to end in cmd/realtime-service.
var servedElsewhere = []string{"GET /v1/ws 101", "GET /v1/events 200", "GET /v1/ws 429", "GET /v1/events 429", "GET /v1/ws 503", "GET /v1/events 503", "GET /socket.io/ 200", "GET /socket.io/ 101", "POST /socket.io/ 200", "GET /status 200"}

// authenticate checks only that the credential of the scheme is present: whether the key is
// known is the handler's business (401), not the document's.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch in.SecuritySchemeName {
	case "bearerApiKey":
		if _, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer "); ok {
			return nil
		}
	case "apiKeyHeader":
		if h.Get("X-API-Key") != "" {
			return nil
		}
	}
	return fmt.Errorf("no credential for %s", in.SecuritySchemeName)
}

func TestOpenAPIConformance(t *testing.T) {
	doc := loadDocument(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tc := range apiCases() {
		t.Run(tc.method+" "+tc.path+" "+tc.name, func(t *testing.T) {
			var configure []func(*config.Config)
			if tc.config != nil {
				configure = append(configure, tc.config)
			}
			c := newConformance(t, configure...)
			if tc.setup != nil {
				tc.setup(c)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.body != "" {
				ct := tc.contentType
				if ct == "" {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
			}
			if !tc.noKey {
				req.Header.Set("Authorization", "Bearer "+testKey)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}

			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("the document has no operation for %s %s: %v", tc.method, tc.path, err)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: true}}
			reqErr := openapi3filter.ValidateRequest(t.Context(), in)
			switch {
			case tc.badRequest && reqErr == nil:
				t.Errorf("the document accepts this request, which the handler refuses with %d %s", tc.status, tc.code)
			case !tc.badRequest && reqErr != nil:
				t.Errorf("the document refuses this request: %s", brief(reqErr))
			}

			w := c.serve(req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				problemOf(t, w, tc.status, tc.code)
			}
			respErr := openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in,
				Status:                 w.Code,
				Header:                 w.Header(),
				Body:                   io.NopCloser(bytes.NewReader(w.Body.Bytes())),
				Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			})
			if respErr != nil {
				t.Errorf("the answer does not conform to the document: %s\nbody: %s", brief(respErr), w.Body)
			}
			covered[route.Method+" "+route.Path+" "+strconv.Itoa(w.Code)] = true
		})
	}

	// Every documented answer of every operation was produced above.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				key := method + " " + path + " " + status
				if !covered[key] && !slices.Contains(servedElsewhere, key) {
					t.Errorf("documented answer %s is produced by no test case", key)
				}
			}
		}
	}
}

// Unmatched requests get the documented NotFound and MethodNotAllowed problems.
func TestOpenAPIUnmatchedRoutes(t *testing.T) {
	doc := loadDocument(t)
	for _, tc := range []struct {
		method, path, response string
		status                 int
	}{
		{"GET", "/v1/nothing", "NotFound", 404},
		{"POST", "/nothing", "NotFound", 404},
		{"DELETE", "/v1/topics", "MethodNotAllowed", 405},
		{"PUT", "/v1/notifications/concept-mastered", "MethodNotAllowed", 405},
	} {
		s := newConformance(t)
		w := s.serve(request(tc.method, tc.path, ""))
		if w.Code != tc.status {
			t.Fatalf("%s %s: status %d, want %d", tc.method, tc.path, w.Code, tc.status)
		}
		resp := doc.Components.Responses[tc.response]
		if resp == nil || resp.Value == nil {
			t.Fatalf("the document has no response %s", tc.response)
		}
		mt := resp.Value.Content.Get(w.Header().Get("Content-Type"))
		if mt == nil {
			t.Fatalf("%s: content type %q is not documented", tc.response, w.Header().Get("Content-Type"))
		}
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s %s: the answer does not conform to %s: %v", tc.method, tc.path, tc.response, err)
		}
		for name := range resp.Value.Headers {
			if w.Header().Get(name) == "" {
				t.Errorf("%s %s: documented header %s missing", tc.method, tc.path, name)
			}
		}
	}
}

// Every route of routes.go is in the document, and the document has no operation that is not a
// route: a new route cannot be forgotten.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc := loadDocument(t)
	deps := httpapi.Deps{
		Kafka: &fakeKafka{}, Health: health.New(0), Gatherer: newServer(t).reg,
		Users: auth.NewVerifier([]byte(userSecret)), WebSocket: marker("ws"), SSE: marker("sse"),
		SocketIO: marker("socket.io"), DevToken: marker("dev-token"), Web: marker("web"),
		Status:   status.New(status.Config{Gatherer: prometheus.NewRegistry()}),
		Presence: presence.NewView(presence.ViewConfig{}), Receipts: realtime.NewHub(realtime.HubConfig{}),
	}
	routes := httpapi.Routes(testConfig(), deps)
	if len(routes) < 10 {
		t.Fatalf("Routes = %v: too few", routes)
	}
	anyMethod := map[string]bool{}
	methods := map[string]bool{}
	for _, pattern := range routes {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			path, method = pattern, ""
		}
		item := doc.Paths.Value(path)
		if item == nil {
			t.Errorf("route %q is not in the document", pattern)
			continue
		}
		if method == "" {
			anyMethod[path] = true
			if len(item.Operations()) == 0 {
				t.Errorf("route %q has no operation in the document", pattern)
			}
			continue
		}
		methods[method+" "+path] = true
		if item.GetOperation(method) == nil {
			t.Errorf("route %q is not in the document", pattern)
		}
	}
	var extra []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !methods[method+" "+path] && !anyMethod[path] {
				extra = append(extra, method+" "+path)
			}
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("the document has operations that are no route: %v", extra)
	}
}

// The document's Problem schema is problem.go's problem type, member for member (required =
// never omitted), and its ProblemCode enum is problem.go's list of codes.
func TestOpenAPIProblemSchemaMatchesProblemGo(t *testing.T) {
	doc := loadDocument(t)
	schema := doc.Components.Schemas["Problem"].Value
	var members, required []string
	typ := reflect.TypeFor[httpapi.Problem]()
	for i := range typ.NumField() {
		name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		members = append(members, name)
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	var props []string
	for name := range schema.Properties {
		props = append(props, name)
	}
	sort.Strings(members)
	sort.Strings(props)
	sort.Strings(required)
	docRequired := slices.Sorted(slices.Values(schema.Required))
	if !slices.Equal(props, members) {
		t.Errorf("Problem schema properties = %v, problem.go members = %v", props, members)
	}
	if !slices.Equal(docRequired, required) {
		t.Errorf("Problem schema required = %v, problem.go's never-omitted members = %v", docRequired, required)
	}
	if schema.AdditionalProperties.Has == nil || *schema.AdditionalProperties.Has {
		t.Error("Problem schema allows additional properties; problem.go writes no others")
	}

	var enum []string
	for _, v := range doc.Components.Schemas["ProblemCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(enum)
	if codes := problemGoCodes(t); !slices.Equal(enum, codes) {
		t.Errorf("ProblemCode enum = %v, problem.go codes = %v", enum, codes)
	}
}

// problemGoCodes returns the values of the code* constants of problem.go.
func problemGoCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "problem.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if strings.HasPrefix(name.Name, "code") && i < len(vs.Values) {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					codes = append(codes, s)
				}
			}
		}
		return true
	})
	sort.Strings(codes)
	if len(codes) < 10 {
		t.Fatalf("found only %d codes in problem.go", len(codes))
	}
	return codes
}

// TestOpenAPIDocumentsTheTransportsQueryParameters: every query parameter the WebSocket and SSE
// handlers read (r.URL.Query().Get("<name>") in internal/realtime's ws.go and sse.go) is a
// documented query parameter of its route, and docs/client-protocol.md names it, so that a client
// author finds the resume parameters the demo page uses (?cursor=, ?lastEventId=).
func TestOpenAPIDocumentsTheTransportsQueryParameters(t *testing.T) {
	doc := loadDocument(t)
	protocol, err := os.ReadFile("../../docs/client-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for file, path := range map[string]string{"../realtime/ws.go": "/v1/ws", "../realtime/sse.go": "/v1/events"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			get, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || get.Sel.Name != "Get" {
				return true
			}
			query, ok := get.X.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := query.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Query" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				name, _ := strconv.Unquote(lit.Value)
				names = append(names, name)
			}
			return true
		})
		if len(names) == 0 {
			t.Errorf("%s reads no query parameter: the test no longer finds them", file)
		}
		op := doc.Paths.Value(path).Get
		for _, name := range names {
			if op.Parameters.GetByInAndName("query", name) == nil {
				t.Errorf("%s reads ?%s=, which openapi.json does not list for GET %s", file, name, path)
			}
			if !bytes.Contains(protocol, []byte("?"+name+"=")) {
				t.Errorf("%s reads ?%s=, which docs/client-protocol.md does not mention", file, name)
			}
		}
	}
}
