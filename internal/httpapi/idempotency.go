package httpapi

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/realtime-service/realtime-service/internal/dedup"
)

// headerIdempotencyKey is the request header of the IETF draft "The Idempotency-Key HTTP
// Header Field" (draft-ietf-httpapi-idempotency-key-header).
const headerIdempotencyKey = "Idempotency-Key"

// maxReplayBytes bounds one first answer kept for a retry: larger ones (big batches) are not
// kept, and their retry is produced again (every hub then drops its records).
const maxReplayBytes = 4 << 10

// Values of the result label of http_idempotent_requests_total.
const (
	idemFirst      = "first"       // no earlier request with the key: handled
	idemReplayed   = "replayed"    // answered with the first request's answer
	idemMismatch   = "mismatch"    // the key was used for another request: 422
	idemInProgress = "in-progress" // the first request with the key is still being handled: 409
)

// idempotencyKey returns r's idempotency key (its Idempotency-Key header, see dedup.ParseKey),
// "" when it has none. The idempotent middleware has checked it.
func idempotencyKey(r *http.Request) string {
	k, _ := dedup.ParseKey(r.Header.Get(headerIdempotencyKey))
	return k
}

// answers keeps, for window, the first 201 answer to each produce request with an
// Idempotency-Key header, by key and route, with a hash of the request: at most size answers,
// the oldest forgotten first. Safe for concurrent use.
type answers struct {
	size   int
	window time.Duration
	m      *metrics

	mu    sync.Mutex
	byKey map[string]*answer
	order []*answer // oldest first; forgotten entries stay until they reach the front
}

// answer is one request's answer, or a request still in progress (done false).
type answer struct {
	key     string
	hash    [sha256.Size]byte
	expires time.Time
	done    bool
	status  int
	ctype   string
	body    []byte
}

func newAnswers(size int, window time.Duration, m *metrics) *answers {
	return &answers{size: size, window: window, m: m, byKey: map[string]*answer{}}
}

// idempotent wraps a produce handler: a request with an Idempotency-Key header is handled once.
// A retry (same key and route) with the same body gets the first answer again, with the header
// Idempotent-Replayed: true, while the first is kept (a 201 only, within the window, see
// answers); with another body 422 idempotency-key-mismatch; while the first is in progress 409
// idempotency-key-in-use (the draft's answers). An invalid key (dedup.ParseKey) gets 400
// invalid-idempotency-key. What is not kept is handled again: its records then carry the same
// idempotency-key header, and every hub drops the second record (package dedup).
func (a *answers) idempotent(log *slog.Logger, s settings, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := r.Header[headerIdempotencyKey]
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		key, err := dedup.ParseKey(raw[0])
		if err == nil && len(raw) > 1 {
			err = errors.New("the header is repeated")
		}
		if err != nil {
			writeProblem(w, r, newProblem(codeInvalidIdemKey, "The Idempotency-Key header must be one value of 1 to 255 printable ASCII characters, "+
				"optionally in double quotes: "+err.Error()))
			return
		}
		data, err := readBody(w, r, s.maxBodyBytes, s.requestTimeout)
		if err != nil {
			writeError(w, r, log, err, "")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		sum := sha256.New()
		sum.Write([]byte(r.Pattern + "\x00" + r.URL.Path + "\x00"))
		sum.Write(data)
		var hash [sha256.Size]byte
		sum.Sum(hash[:0])

		id := r.Pattern + "\x00" + r.URL.Path + "\x00" + key
		first, prior := a.begin(id, hash)
		switch {
		case prior == nil:
		case prior.hash != hash:
			a.m.idempotent.WithLabelValues(idemMismatch).Inc()
			writeProblem(w, r, newProblem(codeIdemKeyMismatch, "This Idempotency-Key was used for another request body within REALTIME_IDEMPOTENCY_WINDOW: use a new key for a new request."))
			return
		case !prior.done:
			a.m.idempotent.WithLabelValues(idemInProgress).Inc()
			writeProblem(w, r, newProblem(codeIdemKeyInUse, "A request with this Idempotency-Key is still being handled: retry once it was answered."))
			return
		default:
			a.m.idempotent.WithLabelValues(idemReplayed).Inc()
			w.Header().Set("Content-Type", prior.ctype)
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(prior.status)
			_, _ = w.Write(prior.body)
			return
		}
		a.m.idempotent.WithLabelValues(idemFirst).Inc()
		rec := &recorder{ResponseWriter: w}
		defer a.finish(first, rec) // also when h panics: a retry is then handled again
		h.ServeHTTP(rec, r)
	})
}

// begin returns the answer in progress made for id, or the one kept for it (prior), still
// within its window.
func (a *answers) begin(id string, hash [sha256.Size]byte) (first, prior *answer) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.order) > 0 && (now.After(a.order[0].expires) || a.byKey[a.order[0].key] != a.order[0]) {
		a.drop(a.order[0])
	}
	if p := a.byKey[id]; p != nil {
		return nil, p
	}
	for len(a.order) >= a.size { // forgotten entries count until they leave, so order stays bounded
		if a.byKey[a.order[0].key] == a.order[0] {
			a.m.idempotencyEvictions.Inc()
		}
		a.drop(a.order[0])
	}
	first = &answer{key: id, hash: hash, expires: now.Add(a.window)}
	a.byKey[id] = first
	a.order = append(a.order, first)
	return first, nil
}

// drop removes the oldest entry of a.order. The caller holds a.mu.
func (a *answers) drop(e *answer) {
	if a.byKey[e.key] == e {
		delete(a.byKey, e.key)
	}
	a.order[0] = nil
	a.order = a.order[1:]
}

// finish keeps the answer rec recorded for first when it is a 201 of at most maxReplayBytes,
// and forgets first otherwise (a retry is handled again).
func (a *answers) finish(first *answer, rec *recorder) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byKey[first.key] != first {
		return // evicted meanwhile
	}
	if rec.status != http.StatusCreated || rec.overflow {
		delete(a.byKey, first.key) // its order entry goes when it reaches the front
		return
	}
	first.done, first.status, first.ctype, first.body = true, rec.status, rec.Header().Get("Content-Type"), rec.body.Bytes()
}

// recorder passes an answer through and keeps its status and its first maxReplayBytes bytes.
type recorder struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection (readBody sets a read deadline).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > maxReplayBytes {
		r.overflow = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// batchKey is the idempotency key of record i of a batch sent with key: each record needs its
// own, or every hub would drop all but the first.
func batchKey(key string, i int) string { return key + "#" + strconv.Itoa(i) }
