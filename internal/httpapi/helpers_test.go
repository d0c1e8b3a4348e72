package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/config"
	"github.com/realtime-service/realtime-service/internal/health"
	"github.com/realtime-service/realtime-service/internal/httpapi"
	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// Keys the test server accepts.
const (
	testKey  = "test-key-0123456789"
	otherKey = "other-key-abcdefghij"
)

// fakeKafka records what the server asks of Kafka. Records are written to partition 2 from offset
// 40 on, per topic, unless produceErr fails them.
type fakeKafka struct {
	mu sync.Mutex
	// produceErr, when set, decides each record's fate: a non-nil error fails it.
	produceErr func(rec *kgo.Record) error
	// waitForContext makes Produce block until its context ends, then fail every record with
	// the context's error: Kafka that never answers.
	waitForContext bool
	// panicOnProduce makes Produce panic.
	panicOnProduce bool
	// onProduce, when set, is called as Produce begins.
	onProduce func()

	produceCalls int
	produced     []*kgo.Record // acknowledged records, in order
	deadlines    []time.Duration
	offsets      map[string]int64

	topics    []kafka.TopicInfo
	listErr   error
	createErr error
	created   []createCall
}

type createCall struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

func (f *fakeKafka) Produce(ctx context.Context, recs ...*kgo.Record) []error {
	if f.panicOnProduce {
		panic("fake kafka exploded")
	}
	if f.onProduce != nil {
		f.onProduce()
	}
	if f.waitForContext {
		if _, ok := ctx.Deadline(); !ok { // would wait forever: fail instead of hanging the test
			errs := make([]error, len(recs))
			for i := range errs {
				errs[i] = errors.New("fake kafka: Produce without a deadline")
			}
			return errs
		}
		<-ctx.Done()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.produceCalls++
	if d, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, time.Until(d))
	} else {
		f.deadlines = append(f.deadlines, -1)
	}
	if f.offsets == nil {
		f.offsets = map[string]int64{}
	}
	errs := make([]error, len(recs))
	for i, rec := range recs {
		if f.waitForContext {
			errs[i] = ctx.Err()
			continue
		}
		if f.produceErr != nil {
			if err := f.produceErr(rec); err != nil {
				errs[i] = err
				continue
			}
		}
		rec.Partition = 2
		rec.Offset = 40 + f.offsets[rec.Topic]
		f.offsets[rec.Topic]++
		f.produced = append(f.produced, rec)
	}
	return errs
}

func (f *fakeKafka) CreateTopic(_ context.Context, name string, partitions int32, rf int16, configs map[string]*string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := createCall{Name: name, Partitions: partitions, ReplicationFactor: rf}
	if configs != nil {
		c.Configs = map[string]string{}
		for k, v := range configs {
			c.Configs[k] = *v
		}
	}
	f.created = append(f.created, c)
	return f.createErr
}

func (f *fakeKafka) ListTopics(context.Context) ([]kafka.TopicInfo, error) {
	return slices.Clone(f.topics), f.listErr
}

// Offsets reports, for each known topic asked about, every partition starting at 0 and ending
// after the records produced to the topic.
func (f *fakeKafka) Offsets(_ context.Context, topics []string) (map[string]map[int32]kafka.PartitionOffsets, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[int32]kafka.PartitionOffsets{}
	for _, t := range f.topics {
		if !slices.Contains(topics, t.Name) {
			continue
		}
		out[t.Name] = map[int32]kafka.PartitionOffsets{}
		for p := range t.Partitions {
			out[t.Name][p] = kafka.PartitionOffsets{Start: 0, End: f.offsets[t.Name]}
		}
	}
	return out, f.listErr
}

// records returns the acknowledged records.
func (f *fakeKafka) records() []*kgo.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.produced)
}

func (f *fakeKafka) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.produceCalls
}

// testServer is a NewServer handler over a fakeKafka.
type testServer struct {
	handler http.Handler
	kafka   *fakeKafka
	health  *health.Checker
	reg     *prometheus.Registry
	logs    *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testConfig() config.Config {
	return config.Config{
		Kafka: config.Kafka{
			RequestTimeout: 5 * time.Second,
			Topics: []config.TopicEvent{
				{Topic: notification.TopicSessions, Event: notification.EventSessionStartingSoon},
				{Topic: notification.TopicConcepts, Event: notification.EventConceptMastered},
			},
		},
		HTTP: config.HTTP{MaxBodyBytes: 4096, APIKeys: []string{testKey, otherKey}},
	}
}

// newServer returns a test server; change adjusts its config and deps before NewServer.
func newServer(t *testing.T, change ...func(*config.Config, *httpapi.Deps)) *testServer {
	t.Helper()
	s := &testServer{
		kafka:  &fakeKafka{},
		health: health.New(time.Second),
		reg:    prometheus.NewRegistry(),
		logs:   &syncBuffer{},
	}
	cfg := testConfig()
	deps := httpapi.Deps{Kafka: s.kafka, Health: s.health, Gatherer: s.reg, Registerer: s.reg}
	for _, c := range change {
		c(&cfg, &deps)
	}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.handler = httpapi.NewServer(log, cfg, deps)
	return s
}

// request returns a request with a JSON content type and the test API key.
func request(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+testKey)
	return r
}

func (s *testServer) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, r)
	return w
}

// post sends an authorised JSON POST.
func (s *testServer) post(path, body string) *httptest.ResponseRecorder {
	return s.serve(request(http.MethodPost, path, body))
}

// problemBody is an RFC 9457 problem as the API writes it.
type problemBody struct {
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	Status     int                       `json:"status"`
	Detail     string                    `json:"detail"`
	Instance   string                    `json:"instance"`
	Code       string                    `json:"code"`
	Errors     []notification.FieldError `json:"errors"`
	KafkaError *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"kafkaError"`
	Results []resultBody `json:"results"`
}

type resultBody struct {
	Partition *int32 `json:"partition"`
	Offset    *int64 `json:"offset"`
	Error     *struct {
		Code    string                    `json:"code"`
		Message string                    `json:"message"`
		Errors  []notification.FieldError `json:"errors"`
	} `json:"error"`
}

// problemOf checks that w is a problem with status and code, and returns it.
func problemOf(t *testing.T, w *httptest.ResponseRecorder, status int, code string) problemBody {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problemBody
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %s: %v", w.Body, err)
	}
	if p.Status != status || p.Code != code || p.Type != "/problems/"+code || p.Title == "" {
		t.Errorf("problem = status %d, code %q, type %q, title %q; want %d, %q, /problems/%s, a title",
			p.Status, p.Code, p.Type, p.Title, status, code, code)
	}
	if !bytes.Contains(w.Body.Bytes(), []byte(`"errors":[`)) {
		t.Errorf("problem has no errors list: %s", w.Body)
	}
	return p
}

// fieldCodes lists "field:code" of each field error, in order.
func fieldCodes(fields []notification.FieldError) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Field + ":" + f.Code
		if f.Message == "" {
			out[i] += " (no message)"
		}
	}
	return out
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("response %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type kgoRecord = kgo.Record

// contextDeadline is context.DeadlineExceeded, as Produce returns it when its context ends.
func contextDeadline() error { return context.DeadlineExceeded }
