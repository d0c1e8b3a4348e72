package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/realtime-service/realtime-service/internal/config"
)

func TestClientOpts(t *testing.T) {
	ca, _ := testCA(t)
	caFile := writeFile(t, "ca.pem", ca)
	notPEM := writeFile(t, "not.pem", []byte("hello"))

	tests := []struct {
		name     string
		edit     func(*config.Kafka)
		brokers  []string
		wantSASL string // mechanism name, "" for none
		wantTLS  bool
		wantCA   bool
		wantErr  bool
	}{
		{name: "plaintext", edit: func(*config.Kafka) {}},
		{name: "PLAIN", edit: func(k *config.Kafka) { k.SASL = config.SASL{Mechanism: config.SASLPlain, Username: "u", Password: "p"} }, wantSASL: "PLAIN"},
		{name: "SCRAM-SHA-256", edit: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: config.SASLScramSHA256, Username: "u", Password: "p"}
		}, wantSASL: "SCRAM-SHA-256"},
		{name: "SCRAM-SHA-512 over TLS", edit: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "u", Password: "p"}
			k.TLS = true
		}, wantSASL: "SCRAM-SHA-512", wantTLS: true},
		{name: "TLS with system roots", edit: func(k *config.Kafka) { k.TLS = true }, wantTLS: true},
		{name: "TLS with a CA file", edit: func(k *config.Kafka) { k.TLS, k.TLSCAFile = true, caFile }, wantTLS: true, wantCA: true},
		{name: "a CA file implies TLS", edit: func(k *config.Kafka) { k.TLSCAFile = caFile }, wantTLS: true, wantCA: true},
		{name: "missing CA file", edit: func(k *config.Kafka) { k.TLS, k.TLSCAFile = true, filepath.Join(t.TempDir(), "nope.pem") }, wantErr: true},
		{name: "CA file without PEM", edit: func(k *config.Kafka) { k.TLS, k.TLSCAFile = true, notPEM }, wantErr: true},
		{name: "unknown SASL mechanism", edit: func(k *config.Kafka) { k.SASL.Mechanism = "GSSAPI" }, wantErr: true},
		{name: "no brokers", edit: func(*config.Kafka) {}, brokers: []string{}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Kafka{
				ClientID:          "my-client",
				ConnectionTimeout: 1234 * time.Millisecond,
				RequestTimeout:    5678 * time.Millisecond,
				RetryBackoff:      150 * time.Millisecond,
				Retries:           7,
			}
			tc.edit(&cfg)
			brokers := []string{"k1:9092", "k2:9093"}
			if tc.brokers != nil {
				brokers = tc.brokers
			}
			opts, err := ClientOpts(cfg, brokers)
			if tc.wantErr {
				if err == nil {
					t.Fatal("got nil, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(opts...) // does not connect
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			checks := []struct {
				opt  any
				want any
			}{
				{kgo.SeedBrokers, []string{"k1:9092", "k2:9093"}},
				{kgo.ClientID, "my-client"},
				{kgo.DialTimeout, 1234 * time.Millisecond},
				{kgo.RequestTimeoutOverhead, 5678 * time.Millisecond},
				{kgo.ProduceRequestTimeout, 5678 * time.Millisecond},
				{kgo.RecordDeliveryTimeout, 5678 * time.Millisecond},
				{kgo.RequestRetries, int64(7)},
				{kgo.MetadataMinAge, 150 * time.Millisecond},
			}
			for _, c := range checks {
				got := cl.OptValue(c.opt)
				if gs, ok := got.([]string); ok {
					if !slices.Equal(gs, c.want.([]string)) {
						t.Errorf("%T: got %v, want %v", c.opt, got, c.want)
					}
					continue
				}
				if got != c.want {
					t.Errorf("option %v: got %v (%T), want %v", c.want, got, got, c.want)
				}
			}
			mechs, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism)
			switch {
			case tc.wantSASL == "" && len(mechs) != 0:
				t.Errorf("SASL: got %v, want none", mechs)
			case tc.wantSASL != "" && (len(mechs) != 1 || mechs[0].Name() != tc.wantSASL):
				t.Errorf("SASL: got %v, want %s", mechs, tc.wantSASL)
			}
			tc2, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config)
			if (tc2 != nil) != tc.wantTLS {
				t.Fatalf("TLS: got %v, want %v", tc2 != nil, tc.wantTLS)
			}
			if tc2 != nil {
				if tc2.MinVersion != tls.VersionTLS12 || (tc2.RootCAs != nil) != tc.wantCA {
					t.Errorf("TLS config: min version %x, custom roots %v; want TLS 1.2 and %v", tc2.MinVersion, tc2.RootCAs != nil, tc.wantCA)
				}
			}
		})
	}
}

func TestClientOptsDefaults(t *testing.T) {
	opts, err := ClientOpts(config.Kafka{}, []string{"k:9092"})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ClientID); got != "realtime-service" {
		t.Errorf("client id: got %v", got)
	}
	if got := cl.OptValue(kgo.DialTimeout); got != 3*time.Second {
		t.Errorf("dial timeout: got %v", got)
	}
	if got := cl.OptValue(kgo.RequestTimeoutOverhead); got != 25*time.Second {
		t.Errorf("request timeout: got %v", got)
	}
}

func TestRetryBackoff(t *testing.T) {
	tests := []struct {
		base time.Duration
		cap  time.Duration
	}{
		{100 * time.Millisecond, 5 * time.Second},
		{2 * time.Second, 5 * time.Second},
		{10 * time.Second, 10 * time.Second}, // a base above the cap is the cap
	}
	for _, tc := range tests {
		fn := retryBackoff(tc.base)
		for tries := 1; tries <= 40; tries++ {
			want := tc.base
			for i := 1; i < tries && want < tc.cap; i++ {
				want *= 2
			}
			lo, hi := time.Duration(float64(want)*0.8), min(time.Duration(float64(want)*1.2), tc.cap)
			lo = min(lo, tc.cap)
			for range 20 {
				if got := fn(tries); got < lo || got > hi {
					t.Fatalf("base %v try %d: got %v, want %v..%v", tc.base, tries, got, lo, hi)
				}
			}
		}
	}
	// Jitter: not every value is the same.
	fn := retryBackoff(time.Second)
	first := fn(1)
	varied := false
	for range 50 {
		if fn(1) != first {
			varied = true
		}
	}
	if !varied {
		t.Error("no jitter")
	}
}

// TestSASLAgainstKfake authenticates with every mechanism against a SASL-enabled kfake.
func TestSASLAgainstKfake(t *testing.T) {
	for _, mech := range []string{config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "svc", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, tc := range []struct {
				pass string
				ok   bool
			}{{"s3cret", true}, {"wrong", false}} {
				cfg := testConfig(t)
				cfg.RequestTimeout = 2 * time.Second
				cfg.SASL = config.SASL{Mechanism: mech, Username: "svc", Password: tc.pass}
				cl := newTestClient(t, cfg, c.ListenAddrs()[0], nil)
				_, err := cl.Ping(context.Background())
				if (err == nil) != tc.ok {
					t.Errorf("password %q: got %v, want ok=%v", tc.pass, err, tc.ok)
				}
				if err != nil && !errors.Is(err, ErrUnavailable) {
					t.Errorf("password %q: got %v, want ErrUnavailable", tc.pass, err)
				}
			}
		})
	}
}

// TestTLSAgainstKfake connects over TLS, trusting only the CA file.
func TestTLSAgainstKfake(t *testing.T) {
	caPEM, serverCert := testCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]

	cfg := testConfig(t)
	cfg.RequestTimeout = 2 * time.Second
	cfg.TLS, cfg.TLSCAFile = true, writeFile(t, "ca.pem", caPEM)
	if _, err := newTestClient(t, cfg, addr, nil).Ping(context.Background()); err != nil {
		t.Errorf("with the CA file: %v", err)
	}
	cfg.TLSCAFile = "" // system roots do not know the test CA
	if _, err := newTestClient(t, cfg, addr, nil).Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("with system roots: got %v, want ErrUnavailable", err)
	}
}

// testCA returns a CA certificate (PEM) and a server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
