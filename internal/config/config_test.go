package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-service/realtime-service/internal/notification"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"KAFKA_NODE_ID": "node-1"}))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kafka
	if !k.Embedded() || k.EmbeddedAddr != "127.0.0.1:9092" || k.EmbeddedDataDir != "" || k.EmbeddedPartitions != 3 {
		t.Errorf("embedded defaults: %+v", k)
	}
	if k.ClientID != "realtime-service" || k.ConnectionTimeout != 3*time.Second || k.RequestTimeout != 25*time.Second ||
		k.RetryBackoff != 100*time.Millisecond || k.Retries != 8 || k.GroupID != "realtime-service" {
		t.Errorf("kafka defaults: %+v", k)
	}
	if k.ConsumerGroup() != "realtime-service.node-1" {
		t.Errorf("ConsumerGroup() = %q", k.ConsumerGroup())
	}
	if !slices.Equal(k.TopicNames(), []string{"session-notifications", "concept-notifications"}) ||
		k.Topics[0].Event != "session-starting-soon" || k.Topics[1].Event != "concept-mastered" {
		t.Errorf("topics: %+v", k.Topics)
	}
	if k.DLQTopic != "realtime-service.dlq" || k.SASL != (SASL{}) || k.TLS {
		t.Errorf("dlq/sasl/tls: %+v", k)
	}
	h := c.HTTP
	if h.Addr != "127.0.0.1:3000" || h.MaxBodyBytes != 1<<20 || h.ShutdownTimeout != 10*time.Second || h.APIKeys != nil {
		t.Errorf("http defaults: %+v", h)
	}
	r := c.Realtime
	if r.JWTSecret != "" || r.AllowedOrigins != nil || r.SendQueueBytes != 1<<20 || r.MaxConnectionsPerUser != 100 || r.PingInterval != 25*time.Second ||
		r.PongTimeout != 20*time.Second || r.WriteTimeout != 10*time.Second || r.HistorySize != 100 ||
		r.HistoryTTL != 5*time.Minute || r.HistoryMaxBytes != 64<<20 || r.ReplayMaxRecords != 100000 ||
		r.ReplayConcurrency != 4 || r.ReplayPerUser != 1 || r.ReplayQueuePerUser != 8 {
		t.Errorf("realtime defaults: %+v", r)
	}
	if r.JWTPublicKeyFile != "" || r.JWTPublicKey != nil || r.JWKSURL != "" || r.JWKSRefreshInterval != 5*time.Minute ||
		r.JWKSMinRefreshInterval != 30*time.Second || r.JWKSFetchTimeout != 5*time.Second || r.JWTIssuer != "" ||
		r.JWTAudience != "" || r.JWTUserClaim != "sub" {
		t.Errorf("client-token defaults: %+v", r)
	}
	if c.Log.Level != "info" || c.Log.Format != "text" || c.DebugAddr != "" {
		t.Errorf("log/debug defaults: %+v %q", c.Log, c.DebugAddr)
	}
}

func TestNodeIDDefaultsToHostname(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.NodeID == "" {
		t.Error("no node ID")
	}
}

func TestGoodValues(t *testing.T) {
	secret := strings.Repeat("s", 32)
	c, err := Load(env(map[string]string{
		"KAFKA_BROKERS":                     "kafka-1:9092, kafka-2:9093",
		"KAFKA_EMBEDDED_ADDR":               "127.0.0.1:0",
		"KAFKA_EMBEDDED_DATA_DIR":           "/tmp/x",
		"KAFKA_EMBEDDED_PARTITIONS":         "6",
		"KAFKA_CLIENT_ID":                   "rt",
		"KAFKA_CONNECTION_TIMEOUT":          "1500",
		"KAFKA_REQUEST_TIMEOUT":             "4000",
		"KAFKA_RETRY_INITIAL_RETRY_TIME":    "250",
		"KAFKA_RETRY_RETRIES":               "0",
		"KAFKAJS_NO_PARTITIONER_WARNING":    "1",
		"KAFKA_GROUP_ID":                    "grp",
		"KAFKA_NODE_ID":                     "pod-7",
		"KAFKA_SASL_MECHANISM":              "scram-sha-512",
		"KAFKA_SASL_USERNAME":               "u",
		"KAFKA_SASL_PASSWORD":               "p",
		"KAFKA_TLS":                         "true",
		"KAFKA_TLS_CA_FILE":                 "/etc/ca.pem",
		"REALTIME_TOPICS":                   "a=ev-a,b",
		"REALTIME_DLQ_TOPIC":                "dead",
		"HTTP_ADDR":                         "127.0.0.1:8080",
		"HTTP_MAX_BODY_BYTES":               "2048",
		"HTTP_SHUTDOWN_TIMEOUT":             "500",
		"REALTIME_API_KEYS":                 "0123456789abcdef,fedcba9876543210",
		"REALTIME_JWT_SECRET":               secret,
		"REALTIME_ALLOWED_ORIGINS":          "https://app.example.com/, http://localhost:5173, null",
		"REALTIME_SEND_QUEUE_BYTES":         "65536",
		"REALTIME_MAX_CONNECTIONS_PER_USER": "7",
		"REALTIME_PING_INTERVAL":            "1000",
		"REALTIME_PONG_TIMEOUT":             "2000",
		"REALTIME_WRITE_TIMEOUT":            "3000",
		"REALTIME_HISTORY_SIZE":             "0",
		"REALTIME_HISTORY_TTL":              "60000",
		"REALTIME_HISTORY_MAX_BYTES":        "2097152",
		"REALTIME_REPLAY_MAX_RECORDS":       "10",
		"REALTIME_REPLAY_CONCURRENCY":       "2",
		"REALTIME_REPLAY_PER_USER":          "3",
		"REALTIME_REPLAY_QUEUE_PER_USER":    "5",
		"LOG_LEVEL":                         "DEBUG",
		"LOG_FORMAT":                        "json",
		"DEBUG_ADDR":                        "127.0.0.1:6060",
	}))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kafka
	if k.Embedded() || !slices.Equal(k.Brokers, []string{"kafka-1:9092", "kafka-2:9093"}) {
		t.Errorf("brokers %v", k.Brokers)
	}
	if k.EmbeddedAddr != "127.0.0.1:0" || k.EmbeddedDataDir != "/tmp/x" || k.EmbeddedPartitions != 6 || k.ClientID != "rt" ||
		k.ConnectionTimeout != 1500*time.Millisecond || k.RequestTimeout != 4*time.Second || k.RetryBackoff != 250*time.Millisecond ||
		k.Retries != 0 || k.ConsumerGroup() != "grp.pod-7" || k.DLQTopic != "dead" {
		t.Errorf("kafka %+v", k)
	}
	if k.SASL != (SASL{Mechanism: SASLScramSHA512, Username: "u", Password: "p"}) || !k.TLS || k.TLSCAFile != "/etc/ca.pem" {
		t.Errorf("sasl/tls %+v", k)
	}
	if !slices.Equal(k.Topics, []TopicEvent{{Topic: "a", Event: "ev-a"}, {Topic: "b", Event: "b"}}) {
		t.Errorf("topics %+v", k.Topics)
	}
	if c.HTTP.Addr != "127.0.0.1:8080" || c.HTTP.MaxBodyBytes != 2048 || c.HTTP.ShutdownTimeout != 500*time.Millisecond ||
		len(c.HTTP.APIKeys) != 2 {
		t.Errorf("http %+v", c.HTTP)
	}
	r := c.Realtime
	if r.JWTSecret != secret || !slices.Equal(r.AllowedOrigins, []string{"https://app.example.com", "http://localhost:5173", "null"}) ||
		r.SendQueueBytes != 65536 || r.MaxConnectionsPerUser != 7 || r.PingInterval != time.Second || r.PongTimeout != 2*time.Second || r.WriteTimeout != 3*time.Second ||
		r.HistorySize != 0 || r.HistoryTTL != time.Minute || r.HistoryMaxBytes != 2<<20 || r.ReplayMaxRecords != 10 ||
		r.ReplayConcurrency != 2 || r.ReplayPerUser != 3 || r.ReplayQueuePerUser != 5 {
		t.Errorf("realtime %+v", r)
	}
	if c.Log.Level != "debug" || c.Log.Format != "json" || c.DebugAddr != "127.0.0.1:6060" {
		t.Errorf("log %+v debug %q", c.Log, c.DebugAddr)
	}
}

func TestMalformedValuesNameVariableValueAndForm(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
	}{
		{"KAFKA_REQUEST_TIMEOUT", "abc", "whole number of milliseconds"},
		{"KAFKA_REQUEST_TIMEOUT", "0", "whole number of milliseconds"},
		{"KAFKA_REQUEST_TIMEOUT", "-5", "whole number of milliseconds"},
		{"KAFKA_CONNECTION_TIMEOUT", "3s", "whole number of milliseconds"},
		{"KAFKA_RETRY_INITIAL_RETRY_TIME", "1.5", "whole number of milliseconds"},
		{"KAFKA_RETRY_RETRIES", "many", "whole number from 0 to 1000"},
		{"KAFKA_BROKERS", "kafka-1:9092,,kafka-2:9092", "no empty entry"},
		{"KAFKA_BROKERS", "kafka-1:9092,", "no empty entry"},
		{"KAFKA_BROKERS", "kafka-1", "host:port"},
		{"KAFKA_BROKERS", "kafka-1:99999", "host:port"},
		{"KAFKA_EMBEDDED_ADDR", "localhost", "host:port"},
		{"KAFKA_EMBEDDED_PARTITIONS", "0", "whole number from 1 to 1000"},
		{"KAFKA_SASL_MECHANISM", "GSSAPI", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"KAFKA_TLS", "maybe", "true or false"},
		{"REALTIME_TOPICS", "a=,b", "topic=event-name"},
		{"REALTIME_TOPICS", "bad topic=x", "topic=event-name"},
		{"REALTIME_TOPICS", "a=x,a=y", "distinct"},
		{"REALTIME_DLQ_TOPIC", "..", "Kafka topic name"},
		{"HTTP_ADDR", "3000", "listen address"},
		{"HTTP_MAX_BODY_BYTES", "10", "whole number from 1024"},
		{"HTTP_SHUTDOWN_TIMEOUT", "soon", "milliseconds"},
		{"REALTIME_API_KEYS", "short", "at least 16 characters"},
		{"REALTIME_API_KEYS", "0123456789abcdef,", "at least 16 characters"},
		{"REALTIME_JWT_SECRET", "too-short", "at least 32 bytes"},
		{"REALTIME_JWKS_URL", "http://idp.example/certs", "http only to localhost"},
		{"REALTIME_JWKS_URL", "idp.example/certs", "https URL of a JWK Set"},
		{"REALTIME_JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem", "readable PEM file"},
		{"REALTIME_JWT_PUBLIC_KEY_FILE", "config_test.go", "no PEM block"},
		{"REALTIME_JWKS_REFRESH_INTERVAL", "5m", "milliseconds"},
		{"REALTIME_JWKS_MIN_REFRESH_INTERVAL", "0", "milliseconds"},
		{"REALTIME_JWKS_FETCH_TIMEOUT", "x", "milliseconds"},
		{"REALTIME_ALLOWED_ORIGINS", "app.example.com", "scheme://host"},
		{"REALTIME_ALLOWED_ORIGINS", "https://app.example.com/path", "scheme://host"},
		{"REALTIME_SEND_QUEUE_BYTES", "1", "whole number from 1024"},
		{"REALTIME_MAX_CONNECTIONS_PER_USER", "-1", "whole number from 0"},
		{"REALTIME_PING_INTERVAL", "x", "milliseconds"},
		{"REALTIME_PONG_TIMEOUT", "x", "milliseconds"},
		{"REALTIME_WRITE_TIMEOUT", "x", "milliseconds"},
		{"REALTIME_HISTORY_SIZE", "-1", "whole number from 0"},
		{"REALTIME_HISTORY_TTL", "forever", "milliseconds"},
		{"REALTIME_HISTORY_MAX_BYTES", "1000", "whole number from 1048576"},
		{"REALTIME_REPLAY_MAX_RECORDS", "0", "whole number from 1"},
		{"REALTIME_IDEMPOTENCY_WINDOW", "5m", "milliseconds"},
		{"REALTIME_IDEMPOTENCY_MAX_KEYS", "0", "whole number from 1"},
		{"HTTP_IDEMPOTENCY_CACHE_SIZE", "0", "whole number from 1"},
		{"KAFKA_NODE_ID", "dlq", "other than dlq"},
		{"LOG_LEVEL", "verbose", "one of debug, info, warn, error"},
		{"LOG_FORMAT", "xml", "one of text, json"},
		{"DEBUG_ADDR", "6060", "listen address"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", tc.name: tc.value}))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			if !strings.Contains(msg, tc.name+"=") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q: want the variable %s and %q", msg, tc.name, tc.want)
			}
			secret := tc.name == "REALTIME_API_KEYS" || tc.name == "REALTIME_JWT_SECRET"
			if !secret && !strings.Contains(msg, `"`+tc.value+`"`) {
				t.Errorf("message %q does not quote the value %q", msg, tc.value)
			}
			if secret && strings.Contains(msg, tc.value) {
				t.Errorf("message %q leaks the secret", msg)
			}
		})
	}
}

func TestSeveralProblemsOnOneLine(t *testing.T) {
	_, err := Load(env(map[string]string{"KAFKA_REQUEST_TIMEOUT": "abc", "HTTP_ADDR": "x", "KAFKA_NODE_ID": "n"}))
	if err == nil || strings.Count(err.Error(), "; ") != 1 || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v", err)
	}
}

func TestSASLNeedsCredentials(t *testing.T) {
	_, err := Load(env(map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_NODE_ID": "n"}))
	if err == nil || !strings.Contains(err.Error(), "KAFKA_SASL_USERNAME") || !strings.Contains(err.Error(), "KAFKA_SASL_PASSWORD") {
		t.Errorf("err = %v", err)
	}
}

func TestServingWithARealBrokerNeedsAPIKeysAndJWTSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // variables named by CheckServe; nil = fine
	}{
		{"embedded needs nothing", map[string]string{}, nil},
		{"real broker, nothing", map[string]string{"KAFKA_BROKERS": "k:9092"}, []string{"REALTIME_API_KEYS", "REALTIME_JWT_SECRET"}},
		{"real broker, keys only", map[string]string{"KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": "0123456789abcdef"}, []string{"REALTIME_JWT_SECRET"}},
		{"real broker, complete", map[string]string{"KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": "0123456789abcdef", "REALTIME_JWT_SECRET": strings.Repeat("s", 32)}, nil},
		{"real broker, a JWKS instead of a secret", map[string]string{"KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": "0123456789abcdef", "REALTIME_JWKS_URL": "https://idp.example/certs"}, nil},
		{"real broker, a public key instead of a secret", map[string]string{"KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": "0123456789abcdef", "REALTIME_JWT_PUBLIC_KEY_FILE": writePEM(t)}, nil},
		{"embedded, an issuer without a key source", map[string]string{"REALTIME_JWT_ISSUER": "https://idp.example"}, []string{"REALTIME_JWT_ISSUER"}},
		{"embedded, an audience and a user claim without a key source", map[string]string{"REALTIME_JWT_AUDIENCE": "rt", "REALTIME_JWT_USER_CLAIM": "email"}, []string{"REALTIME_JWT_AUDIENCE", "REALTIME_JWT_USER_CLAIM"}},
		{"embedded, claims with a JWKS", map[string]string{"REALTIME_JWKS_URL": "http://127.0.0.1:8080/certs", "REALTIME_JWT_ISSUER": "https://idp.example", "REALTIME_JWT_USER_CLAIM": "email"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["KAFKA_NODE_ID"] = "n"
			c, err := Load(env(tc.env))
			if err != nil {
				t.Fatalf("Load: %v", err) // Load itself never asks for them: check and token run without
			}
			err = c.CheckServe()
			if tc.want == nil {
				if err != nil {
					t.Errorf("CheckServe: %v", err)
				}
				return
			}
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("CheckServe: %v", err)
			}
			for _, v := range tc.want {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("CheckServe: %v, want it to name %s", err, v)
				}
			}
		})
	}
}

func TestValidTopic(t *testing.T) {
	for name, want := range map[string]bool{
		"concept-notifications": true, "a.b_c-D9": true, strings.Repeat("a", 249): true,
		"": false, ".": false, "..": false, "a b": false, "a/b": false, strings.Repeat("a", 250): false,
	} {
		if ValidTopic(name) != want {
			t.Errorf("ValidTopic(%q) = %v", name, !want)
		}
	}
}

// TestVariablesListsExactlyWhatLoadReads keeps Variables (and so docs/configuration.md and the manifests,
// which tests hold to it) in step with Load.
func TestVariablesListsExactlyWhatLoadReads(t *testing.T) {
	read := map[string]bool{}
	if _, err := Load(func(k string) string { read[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, v := range Variables() {
		if listed[v.Name] {
			t.Errorf("%s listed twice", v.Name)
		}
		listed[v.Name] = true
		if !read[v.Name] {
			t.Errorf("%s is listed but Load never reads it", v.Name)
		}
	}
	for k := range read {
		if !listed[k] {
			t.Errorf("Load reads %s but Variables does not list it", k)
		}
	}
}

// TestVariableDefaultsAreLoadsDefaults: a variable set to its listed default changes nothing.
func TestVariableDefaultsAreLoadsDefaults(t *testing.T) {
	keys := "0123456789abcdef"
	base, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_API_KEYS": keys}))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variables() {
		if v.Default == "" {
			continue
		}
		c, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_API_KEYS": keys, v.Name: v.Default}))
		if err != nil {
			t.Errorf("%s=%s: %v", v.Name, v.Default, err)
			continue
		}
		if !reflect.DeepEqual(c, base) {
			t.Errorf("%s=%s is not the default", v.Name, v.Default)
		}
	}
}

// TestConfigurationDocTable: the variable table of docs/configuration.md names exactly the
// variables Load reads (internal/config/gen writes it; its test holds every cell to the list).
func TestConfigurationDocTable(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Variables\n")
	if !ok {
		t.Fatal("docs/configuration.md has no Variables section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	inDoc := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(first, -1) {
			inDoc[m[1]] = true
		}
	}
	for _, v := range Variables() {
		if !inDoc[v.Name] {
			t.Errorf("docs/configuration.md's variable table lacks %s: run go generate ./internal/config", v.Name)
		}
		delete(inDoc, v.Name)
	}
	for name := range inDoc {
		t.Errorf("docs/configuration.md documents %s, which Load does not read", name)
	}
}

// TestSECURITYLimitsTable: every variable that sets a limit (its name contains MAX_, _TIMEOUT or
// _LIMIT) has a row in SECURITY.md's limits table, so that no limit ships without its documented
// behaviour and metric.
func TestSECURITYLimitsTable(t *testing.T) {
	raw, err := os.ReadFile("../../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Limits\n")
	if !ok {
		t.Fatal("SECURITY.md has no Limits section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	inTable := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(first, -1) {
			inTable[m[1]] = true
		}
	}
	limits := 0
	for _, v := range Variables() {
		if !strings.Contains(v.Name, "MAX_") && !strings.Contains(v.Name, "_TIMEOUT") && !strings.Contains(v.Name, "_LIMIT") {
			continue
		}
		limits++
		if !inTable[v.Name] {
			t.Errorf("SECURITY.md's limits table has no row for %s: add one (variable | default | what happens at it | metric)", v.Name)
		}
	}
	if limits < 10 {
		t.Errorf("only %d limit variables found: is the name filter still right?", limits)
	}
}

func TestHTTPAddrDefaultsToLoopback(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		addr string
	}{
		{map[string]string{}, "127.0.0.1:3000"},
		{map[string]string{"HTTP_ADDR": ":3000"}, ":3000"},
		{map[string]string{"REALTIME_API_KEYS": "0123456789abcdef"}, "127.0.0.1:3000"},
		{map[string]string{"KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": "0123456789abcdef"}, "127.0.0.1:3000"},
	} {
		tc.env["KAFKA_NODE_ID"] = "n"
		c, err := Load(env(tc.env))
		if err != nil || c.HTTP.Addr != tc.addr {
			t.Errorf("%v: addr %q (%v), want %q", tc.env, c.HTTP.Addr, err, tc.addr)
		}
	}
}

// TestDevTokensOnlyWithoutAKeyOnLoopback: GET /v1/dev/token exists only with no client-token key
// and a listener bound to loopback; wildcards and other addresses are not loopback.
func TestDevTokensOnlyWithoutAKeyOnLoopback(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name     string
		secret   string
		listener net.Addr
		want     bool
	}{
		{"no secret, 127.0.0.1", "", tcp("127.0.0.1:3000"), true},
		{"no secret, 127.0.0.2", "", tcp("127.0.0.2:3000"), true},
		{"no secret, ::1", "", tcp("[::1]:3000"), true},
		{"no secret, ::ffff:127.0.0.1", "", tcp("[::ffff:127.0.0.1]:3000"), true},
		{"no secret, wildcard ::", "", tcp("[::]:3000"), false},
		{"no secret, 0.0.0.0", "", tcp("0.0.0.0:3000"), false},
		{"no secret, a LAN address", "", tcp("192.168.1.10:3000"), false},
		{"no secret, a public address", "", tcp("203.0.113.7:3000"), false},
		{"secret, 127.0.0.1", secret, tcp("127.0.0.1:3000"), false},
		{"secret, 0.0.0.0", secret, tcp("0.0.0.0:3000"), false},
		{"JWKS, 127.0.0.1", "jwks", tcp("127.0.0.1:3000"), false},
		{"public key, 127.0.0.1", "pem", tcp("127.0.0.1:3000"), false},
		{"no secret, a Unix socket", "", &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Realtime: Realtime{JWTSecret: tc.secret}}
			switch tc.secret { // the other key sources (ClientTokensConfigured)
			case "jwks":
				c.Realtime = Realtime{JWKSURL: "https://idp.example/certs"}
			case "pem":
				c.Realtime = Realtime{JWTPublicKeyFile: "/etc/realtime/idp.pem"}
			}
			if got := c.DevTokens(tc.listener); got != tc.want {
				t.Errorf("DevTokens(%v) = %v, want %v", tc.listener, got, tc.want)
			}
			if mode, _ := c.Mode(tc.listener); (mode == "development") != tc.want {
				t.Errorf("Mode(%v) = %s, want development only when DevTokens", tc.listener, mode)
			}
		})
	}
}

func TestModeSaysWhy(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3000}
	all := &net.TCPAddr{IP: net.IPv6unspecified, Port: 3000}
	keys, secret := []string{"0123456789abcdef"}, strings.Repeat("s", 32)
	for _, tc := range []struct {
		name     string
		c        Config
		listener net.Addr
		mode     string
		reason   []string // each must appear in the reason
	}{
		{"zero configuration", Config{}, lo, "development", []string{"embedded broker", "no REALTIME_API_KEYS (the service API is open",
			"no REALTIME_JWT_SECRET (client tokens are signed with a random secret", "loopback listener 127.0.0.1:3000", "GET /v1/dev/token?user=<id> issues"}},
		{"embedded broker on all interfaces", Config{}, all, "production", []string{"embedded broker", "no REALTIME_API_KEYS",
			"non-loopback listener [::]:3000", "no GET /v1/dev/token", "set REALTIME_JWT_SECRET"}},
		{"secret on loopback", Config{Realtime: Realtime{JWTSecret: secret}}, lo, "production", []string{"embedded broker", "REALTIME_JWT_SECRET set", "loopback listener"}},
		{"real broker", Config{Kafka: Kafka{Brokers: []string{"k:9092"}}, HTTP: HTTP{APIKeys: keys}, Realtime: Realtime{JWTSecret: secret}}, all, "production",
			[]string{"KAFKA_BROKERS set", "REALTIME_API_KEYS set", "REALTIME_JWT_SECRET set", "non-loopback listener [::]:3000"}},
		{"JWKS on loopback", Config{Realtime: Realtime{JWKSURL: "https://idp.example/certs", JWTSecret: secret}}, lo, "production", []string{"REALTIME_JWT_SECRET and REALTIME_JWKS_URL set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, reason := tc.c.Mode(tc.listener)
			if mode != tc.mode {
				t.Errorf("mode %s, want %s (%s)", mode, tc.mode, reason)
			}
			for _, r := range tc.reason {
				if !strings.Contains(reason, r) {
					t.Errorf("reason %q lacks %q", reason, r)
				}
			}
			if tc.mode == "production" && strings.Contains(reason, "issues client tokens") {
				t.Errorf("production reason %q promises a token endpoint", reason)
			}
		})
	}
}

// TestTopicsWithRecipientSources: REALTIME_TOPICS entries with options give topics their Shape;
// entries without options keep the zero Shape, so old env files read as before.
func TestTopicsWithRecipientSources(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []TopicEvent
	}{
		{"a=ev-a,b", []TopicEvent{{Topic: "a", Event: "ev-a"}, {Topic: "b", Event: "b"}}},
		{"orders=order-shipped;recipients=/customer/id", []TopicEvent{{Topic: "orders", Event: "order-shipped",
			Shape: notification.Shape{Recipients: "/customer/id"}}}},
		{" a = x ; recipients = /audience/userIds ; strip = false , b;recipients=key;value=raw-string ",
			[]TopicEvent{{Topic: "a", Event: "x", Shape: notification.Shape{Recipients: "/audience/userIds", Keep: true}},
				{Topic: "b", Event: "b", Shape: notification.Shape{Recipients: "key", Value: "raw-string"}}}},
		{"audit=audit;recipients=header:user-id;value=raw-base64;strip=true", []TopicEvent{{Topic: "audit", Event: "audit",
			Shape: notification.Shape{Recipients: "header:user-id", Value: "raw-base64"}}}},
		{"c=ev;recipients=#/a%2Cb", []TopicEvent{{Topic: "c", Event: "ev", Shape: notification.Shape{Recipients: "#/a%2Cb"}}}},
		{"c=ev;value=json", []TopicEvent{{Topic: "c", Event: "ev", Shape: notification.Shape{Value: "json"}}}},
	} {
		c, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_TOPICS": tc.value}))
		if err != nil {
			t.Errorf("%s: %v", tc.value, err)
			continue
		}
		if !slices.Equal(c.Kafka.Topics, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.value, c.Kafka.Topics, tc.want)
		}
	}
	for _, tc := range []struct{ value, want string }{
		{"a=x;recipients=user", `the entry of a: recipients is a JSON Pointer (/path, RFC 6901), key, or header:<name>, not "user"`},
		{"a=x;recipients=/a~2", "~0"},
		{"a=x;recipients=header:", "header name"},
		{"a=x;value=raw-string", "take them from recipients=key"},
		{"a=x;recipients=key;strip=false", "strip=false applies"},
		{"a=x;strip=no", `strip is true or false, not "no"`},
		{"a=x;recipients=key;recipients=/b", "recipients appears twice"},
		{"a=x;to=key", `unknown option "to"`},
		{"a=x;recipients", `"recipients" is not option=value`},
		{"a=x;", `"" is not option=value`},
		{"a=x;value=xml;recipients=key", `not "xml"`},
	} {
		_, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_TOPICS": tc.value}))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `REALTIME_TOPICS="`+tc.value+`"`) {
			t.Errorf("%s: error %v, want one quoting the value and saying %q", tc.value, err, tc.want)
		}
	}
}

// TestREADMERecipientExamplesLoad: every example entry of docs/configuration.md's "Recipients per topic", and
// its Kubernetes example, is a valid REALTIME_TOPICS.
func TestRecipientExamplesLoad(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "## Recipients per topic")
	if !ok {
		t.Fatal("docs/configuration.md has no Recipients per topic section")
	}
	_, block, _ := strings.Cut(section, "```text\n")
	block, _, _ = strings.Cut(block, "```")
	var entries []string
	for line := range strings.Lines(block) {
		entry, _, _ := strings.Cut(line, "#")
		entries = append(entries, strings.TrimSpace(entry))
	}
	_, yaml, _ := strings.Cut(section, "value: >-\n")
	yaml, _, _ = strings.Cut(yaml, "```")
	sources := map[string]bool{}
	for _, v := range []string{strings.Join(entries, ","), strings.Join(strings.Fields(yaml), " ")} {
		c, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_TOPICS": v}))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		for _, te := range c.Kafka.Topics {
			r, _, _ := strings.Cut(te.Shape.Recipients, ":")
			sources[r+" "+te.Shape.Value] = true
		}
	}
	for _, want := range []string{"/customer/id ", "key ", "header ", "key raw-string", "header raw-base64"} {
		if !sources[want] {
			t.Errorf("no README example of recipients/value %q (have %v)", want, sources)
		}
	}
}

// writePEM writes a P-256 public key in PEM to a temporary file and returns its path.
func writePEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPublicKeyFileIsRead(t *testing.T) {
	c, err := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "REALTIME_JWT_PUBLIC_KEY_FILE": writePEM(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Realtime.JWTPublicKey.(*ecdsa.PublicKey); !ok || !c.ClientTokensConfigured() {
		t.Errorf("key %T, configured %v", c.Realtime.JWTPublicKey, c.ClientTokensConfigured())
	}
}
