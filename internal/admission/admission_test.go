package admission

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counter reads realtime_admission_refused_total{reason}.
func counter(t *testing.T, c *Controller, reason string) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.mRefused.WithLabelValues(reason).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.Counter.GetValue()
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestPendingCapsPerAddressAndNodeWide(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := New(Config{MaxConnections: 10, MaxPending: 4, MaxPendingPerAddress: 2, Metrics: reg})

	a1, err := c.Pending(addr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("192.0.2.1")); !errors.Is(err, ErrAddressBusy) {
		t.Fatalf("third pending session from one address: %v, want ErrAddressBusy", err)
	}
	// An authenticated session no longer counts against its address.
	a1.Authenticated()
	if _, err := c.Pending(addr("192.0.2.1")); err != nil {
		t.Fatalf("after one authenticated: %v", err)
	}
	if _, err := c.Pending(addr("192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("192.0.2.3")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("192.0.2.4")); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("fifth pending session: %v, want ErrTooManyPending", err)
	}
	if got := c.PendingSessions(); got != 4 {
		t.Errorf("pending = %d, want 4", got)
	}
	if got := c.Connections(); got != 5 {
		t.Errorf("connections = %d, want 5 (4 pending + 1 authenticated)", got)
	}
	for reason, want := range map[string]float64{"address-pending": 1, "node-pending": 1, "node-connections": 0} {
		if got := counter(t, c, reason); got != want {
			t.Errorf("refused{%s} = %v, want %v", reason, got, want)
		}
	}
}

func TestNodeWideConnectionCap(t *testing.T) {
	c := New(Config{MaxConnections: 2})
	t1, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(); !errors.Is(err, ErrNodeFull) {
		t.Fatalf("third connection: %v, want ErrNodeFull", err)
	}
	if _, err := c.Pending(addr("198.51.100.8")); !errors.Is(err, ErrNodeFull) {
		t.Fatalf("pending past the node cap: %v, want ErrNodeFull", err)
	}
	if c.PendingSessions() != 1 {
		t.Fatalf("a refused pending session must not stay counted: %d", c.PendingSessions())
	}
	t1.Release()
	t1.Release() // a second release gives nothing back twice
	if _, err := c.Connect(); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := c.Connect(); !errors.Is(err, ErrNodeFull) {
		t.Fatalf("double release freed two slots: %v", err)
	}
}

func TestReleaseReturnsEverythingUnderConcurrency(t *testing.T) {
	c := New(Config{MaxConnections: 1000, MaxPending: 1000, MaxPendingPerAddress: 1000})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 4)})
			for j := range 200 {
				tk, err := c.Pending(a)
				if err != nil {
					t.Error(err)
					return
				}
				if j%2 == 0 {
					tk.Authenticated()
				}
				tk.Release()
			}
		})
	}
	wg.Wait()
	if c.PendingSessions() != 0 || c.Connections() != 0 || len(c.perAddr) != 0 {
		t.Fatalf("after every release: pending %d, connections %d, addresses %d; want 0",
			c.PendingSessions(), c.Connections(), len(c.perAddr))
	}
}

func TestIPv6CountsPerSlash64(t *testing.T) {
	c := New(Config{MaxPendingPerAddress: 1})
	if _, err := c.Pending(addr("2001:db8:1:2::1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("2001:db8:1:2:ffff::9")); !errors.Is(err, ErrAddressBusy) {
		t.Fatalf("same /64: %v, want ErrAddressBusy", err)
	}
	if _, err := c.Pending(addr("2001:db8:1:3::1")); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	// An IPv4-mapped address counts as its IPv4 address.
	if _, err := c.Pending(addr("192.0.2.9")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pending(addr("::ffff:192.0.2.9")); !errors.Is(err, ErrAddressBusy) {
		t.Fatalf("mapped form of a busy address: %v, want ErrAddressBusy", err)
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxy configured: the peer, whatever the header", nil, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer's header is ignored", proxies, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer: right-most untrusted hop", proxies, "10.1.2.3:4000", []string{"198.51.100.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"several header lines read right to left", proxies, "10.1.2.3:4000", []string{"198.51.100.1", "10.2.2.2"}, "198.51.100.1"},
		{"a forged left-most entry cannot choose the key", proxies, "10.1.2.3:4000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"unreadable hop: the last trusted peer", proxies, "10.1.2.3:4000", []string{"garbage, 10.2.2.2"}, "10.2.2.2"},
		{"only proxies: the farthest proxy", proxies, "10.1.2.3:4000", []string{"10.3.3.3"}, "10.3.3.3"},
		{"IPv6 peer", nil, "[2001:db8::1]:4000", nil, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{TrustedProxies: tc.trusted})
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := c.ClientAddr(r); got != addr(tc.want) {
				t.Errorf("ClientAddr = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRefusalsAreLoggedAsOneSummaryNotPerAttempt(t *testing.T) {
	var buf bytes.Buffer
	c := New(Config{MaxConnections: 1, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if _, err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	for range 10_000 {
		if _, err := c.Connect(); err == nil {
			t.Fatal("admitted past the cap")
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("10,000 refusals logged %d lines, want 1:\n%s", n, buf.String())
	}
	if got := counter(t, c, "node-connections"); got != 10_000 {
		t.Errorf("refused counter = %v, want 10000", got)
	}
}

func TestWriteHeaders(t *testing.T) {
	w := httptest.NewRecorder()
	r, ok := WriteHeaders(w, ErrAddressBusy)
	if !ok || r.Status != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("ErrAddressBusy: %v %v Retry-After %q", ok, r, w.Header().Get("Retry-After"))
	}
	w = httptest.NewRecorder()
	if _, ok := WriteHeaders(w, errors.New("other")); ok || w.Header().Get("Retry-After") != "" {
		t.Fatal("a non-refusal set headers")
	}
}
