package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// MaxJWKSBytes bounds a JWKS response body; a larger one fails the fetch (counted as
// realtime_jwks_fetches_total{result="too_large"}) and the keys already cached stay in use. A
// provider's set is a few KB (a 2048-bit RSA JWK with its certificate is under 3 KB).
const MaxJWKSBytes = 1 << 20

// maxJWKSRedirects bounds the redirects one JWKS fetch follows.
const maxJWKSRedirects = 3

// JWKS defaults, used when a JWKSConfig field is zero.
const (
	DefaultJWKSRefreshInterval    = 5 * time.Minute
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	DefaultJWKSFetchTimeout       = 5 * time.Second
)

// JWKSConfig configures a JWKS. Every zero duration means its default.
type JWKSConfig struct {
	// URL serves the JWK Set (RFC 7517 §5), e.g. Keycloak's
	// https://<host>/realms/<realm>/protocol/openid-connect/certs. It must be https, or http to a
	// loopback host (CheckJWKSURL).
	URL string
	// RefreshInterval is how often the set is fetched again in the background (default 5 min),
	// so that a key the provider removed stops verifying; after a failed fetch the next one comes
	// MinRefreshInterval later.
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two fetches caused by tokens naming a kid the
	// cached set lacks (default 30 s): a rotated-in key is found at once, and a flood of made-up
	// kids costs the provider one request per interval. Tokens refused by it are counted as
	// realtime_jwks_unknown_kid_total{result="rate_limited"}.
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one fetch, connection and body included (default 5 s).
	FetchTimeout time.Duration
	// Log receives one line per failed fetch (at most one per MinRefreshInterval plus one per
	// RefreshInterval); nil means slog.Default().
	Log *slog.Logger
	// Metrics registers realtime_jwks_fetches_total{result}, realtime_jwks_unknown_kid_total{result},
	// realtime_jwks_keys and realtime_jwks_last_success_timestamp_seconds; nil registers nothing.
	Metrics prometheus.Registerer
}

// JWKS holds the signing keys of an identity provider's JWK Set, fetched from its URL at start,
// refreshed every RefreshInterval and on a token naming an unknown kid (rate limited). A failed
// fetch keeps the keys of the last good one, so tokens keep verifying while the provider is down;
// Status reports it. Keys are parsed by github.com/MicahParks/jwkset. Safe for concurrent use.
type JWKS struct {
	cfg     JWKSConfig
	client  *http.Client
	limiter *rate.Limiter // unknown-kid fetches
	keys    atomic.Pointer[map[string]jwksKey]

	mu       sync.Mutex
	inflight *jwksFetch
	status   JWKSStatus

	mFetches    *prometheus.CounterVec
	mUnknownKID *prometheus.CounterVec
	mKeys       prometheus.Gauge
	mLastOK     prometheus.Gauge
}

// JWKSStatus is the outcome of a JWKS's fetches, for health reports.
type JWKSStatus struct {
	URL         string
	Keys        int       // signing keys in use (of the last good fetch)
	LastSuccess time.Time // zero until a fetch succeeds
	LastAttempt time.Time // zero until a fetch ends
	LastError   error     // of the last fetch; nil when it succeeded or none ended yet
	Skipped     []string  // keys of the last good fetch left out, and why
}

// jwksKey is one signing key of the set: its public key and the alg its JWK names ("" = any alg
// its type allows, see pinAlg).
type jwksKey struct {
	key crypto.PublicKey
	alg string
}

// jwksFetch is one fetch in flight; concurrent callers wait for it rather than start another.
type jwksFetch struct {
	done chan struct{}
	err  error
}

var (
	errJWKSTooLarge    = fmt.Errorf("JWKS response larger than %d bytes", MaxJWKSBytes)
	errJWKSRateLimited = errors.New("unknown kid: the key set was fetched less than the minimum refresh interval ago")
)

// NewJWKS returns a JWKS for cfg; it fetches nothing until Run or a Verify needs a key. The
// error names a URL CheckJWKSURL refuses.
func NewJWKS(cfg JWKSConfig) (*JWKS, error) {
	if err := CheckJWKSURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultJWKSRefreshInterval
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = DefaultJWKSMinRefreshInterval
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultJWKSFetchTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &JWKS{
		cfg: cfg,
		client: &http.Client{
			Transport: limitedBody{http.DefaultTransport.(*http.Transport).Clone()},
			Timeout:   cfg.FetchTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= maxJWKSRedirects {
					return fmt.Errorf("more than %d redirects", maxJWKSRedirects)
				}
				return CheckJWKSURL(req.URL.String())
			},
		},
		limiter: rate.NewLimiter(rate.Every(cfg.MinRefreshInterval), 1),
		status:  JWKSStatus{URL: cfg.URL},
		mFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_jwks_fetches_total",
			Help: "JWKS fetches by result: ok, too_large (over MaxJWKSBytes), timeout (REALTIME_JWKS_FETCH_TIMEOUT), error.",
		}, []string{"result"}),
		mUnknownKID: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_jwks_unknown_kid_total",
			Help: "Tokens naming a kid the cached JWKS lacks, by result: fetched (the set was fetched again), rate_limited (REALTIME_JWKS_MIN_REFRESH_INTERVAL had not passed).",
		}, []string{"result"}),
		mKeys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_jwks_keys",
			Help: "Signing keys of the JWKS in use.",
		}),
		mLastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful JWKS fetch; 0 before the first.",
		}),
	}
	for _, r := range []string{"ok", "too_large", "timeout", "error"} {
		s.mFetches.WithLabelValues(r)
	}
	s.mUnknownKID.WithLabelValues("fetched")
	s.mUnknownKID.WithLabelValues("rate_limited")
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s.mFetches, s.mUnknownKID, s.mKeys, s.mLastOK)
	}
	return s, nil
}

// CheckJWKSURL reports whether u may serve a JWK Set: an absolute https URL, or an http URL whose
// host is loopback (localhost, 127.0.0.0/8, ::1: tests and sidecars). Keys fetched in clear over
// a network could be replaced by anyone on the path.
func CheckJWKSURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil {
		return fmt.Errorf("%q is not an absolute URL such as https://idp.example.com/.well-known/jwks.json", u)
	}
	switch strings.ToLower(p.Scheme) {
	case "https":
		return nil
	case "http":
		host := p.Hostname()
		if ip := net.ParseIP(host); strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q is http to a host that is not loopback: use https (http is accepted only to localhost, 127.0.0.0/8 or ::1)", u)
	}
	return fmt.Errorf("%q: the scheme must be https", u)
}

// Run fetches the set now, then every RefreshInterval (MinRefreshInterval after a failure), until
// ctx is done. It returns when ctx is done, after any fetch it started has ended.
func (s *JWKS) Run(ctx context.Context) {
	for {
		next := s.cfg.RefreshInterval
		if err := s.refresh(ctx, false); err != nil && ctx.Err() == nil {
			next = min(next, s.cfg.MinRefreshInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// Status reports the keys in use and the outcome of the last fetch.
func (s *JWKS) Status() JWKSStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Skipped = append([]string(nil), st.Skipped...)
	return st
}

// key returns the key whose kid is kid. When the cached set lacks it, the set is fetched again
// first, unless another fetch is in flight (then its result is awaited) or the last such fetch
// was less than MinRefreshInterval ago.
func (s *JWKS) key(kid string) (jwksKey, error) {
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FetchTimeout)
	defer cancel()
	if err := s.refresh(ctx, true); errors.Is(err, errJWKSRateLimited) {
		s.mUnknownKID.WithLabelValues("rate_limited").Inc()
		return jwksKey{}, &keyError{"unknown kid: no key of REALTIME_JWKS_URL has it (the set was fetched again recently; retry later)"}
	}
	s.mUnknownKID.WithLabelValues("fetched").Inc()
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	return jwksKey{}, &keyError{"unknown kid: no key of REALTIME_JWKS_URL has it"}
}

func (s *JWKS) lookup(kid string) (jwksKey, bool) {
	keys := s.keys.Load()
	if keys == nil {
		return jwksKey{}, false
	}
	k, ok := (*keys)[kid]
	return k, ok
}

// refresh fetches the set, or waits for the fetch in flight. With limited (an unknown kid), it
// starts a fetch only if the unknown-kid limiter allows one, and returns errJWKSRateLimited if not.
func (s *JWKS) refresh(ctx context.Context, limited bool) error {
	s.mu.Lock()
	if f := s.inflight; f != nil {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if limited && !s.limiter.Allow() {
		s.mu.Unlock()
		return errJWKSRateLimited
	}
	f := &jwksFetch{done: make(chan struct{})}
	s.inflight = f
	s.mu.Unlock()

	keys, skipped, err := s.fetch(ctx)

	s.mu.Lock()
	now := time.Now()
	s.status.LastAttempt, s.status.LastError = now, err
	if err == nil {
		s.keys.Store(&keys)
		s.status.Keys, s.status.LastSuccess, s.status.Skipped = len(keys), now, skipped
	}
	s.inflight = nil
	s.mu.Unlock()
	f.err = err
	close(f.done)

	switch {
	case err == nil:
		s.mFetches.WithLabelValues("ok").Inc()
		s.mKeys.Set(float64(len(keys)))
		s.mLastOK.Set(float64(now.UnixMilli()) / 1000)
		return nil
	case errors.Is(err, errJWKSTooLarge):
		s.mFetches.WithLabelValues("too_large").Inc()
	case timeout(err):
		s.mFetches.WithLabelValues("timeout").Inc()
	default:
		s.mFetches.WithLabelValues("error").Inc()
	}
	if !errors.Is(ctx.Err(), context.Canceled) { // not shutting down
		s.cfg.Log.Warn("JWKS fetch failed; the keys of the last good fetch stay in use",
			"url", s.cfg.URL, "err", err, "keys", s.Status().Keys)
	}
	return err
}

// timeout reports whether err is a fetch that ran out of time (the context's deadline or the
// client's timeout).
func timeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// fetch gets the set once (jwkset.NewStorageFromHTTP without a refresh interval fetches once and
// starts nothing) and keeps its signing keys: those with a kid, a "use" of "sig" or none, and a
// public key usableKey accepts. A set with none of them is an error, so that the keys in use stay.
func (s *JWKS) fetch(ctx context.Context) (map[string]jwksKey, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	mem := jwkset.NewMemoryStorage()
	if _, err := jwkset.NewStorageFromHTTP(s.cfg.URL, jwkset.HTTPClientStorageOptions{
		Client:      s.client,
		Ctx:         ctx,
		HTTPTimeout: s.cfg.FetchTimeout,
		Storage:     mem,
	}); err != nil {
		return nil, nil, err
	}
	all, err := mem.KeyReadAll(ctx)
	if err != nil {
		return nil, nil, err
	}
	keys := make(map[string]jwksKey, len(all))
	var skipped []string
	for _, jwk := range all {
		m := jwk.Marshal()
		key := jwk.Key()
		if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = pk.Public() // a private JWK in a public set: use only its public half
		}
		var why error
		switch {
		case m.KID == "":
			why = errors.New("no kid (keys are chosen by the token's kid)")
		case m.USE != "" && m.USE != jwkset.UseSig:
			why = fmt.Errorf("use %q (only sig keys verify tokens)", m.USE)
		default:
			why = usableKey(key)
		}
		if why != nil {
			skipped = append(skipped, fmt.Sprintf("kid %q: %v", m.KID, why))
			continue
		}
		keys[m.KID] = jwksKey{key: key, alg: m.ALG.String()}
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("the JWKS holds no usable signing key (%d keys, %s)", len(all), strings.Join(skipped, "; "))
	}
	return keys, skipped, nil
}

// limitedBody makes a response body fail with errJWKSTooLarge past MaxJWKSBytes.
type limitedBody struct{ base http.RoundTripper }

func (t limitedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > MaxJWKSBytes {
		resp.Body.Close()
		return nil, errJWKSTooLarge
	}
	resp.Body = &maxBytesBody{ReadCloser: resp.Body, left: MaxJWKSBytes}
	return resp, nil
}

type maxBytesBody struct {
	io.ReadCloser
	left int64
}

func (b *maxBytesBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more than allowed tells a body of exactly MaxJWKSBytes from a larger one.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, errJWKSTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
