package config

import (
	"crypto"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/notification"
)

// reader parses variables and collects a Problem for each malformed one, so that Load can report
// them all at once. Each method returns the default when the variable is unset or empty.
type reader struct {
	getenv   func(string) string
	problems []Problem
}

func (r *reader) fail(name, value, want string) {
	r.problems = append(r.problems, Problem{Var: name, Value: value, Want: want})
}

func (r *reader) get(name string) string { return strings.TrimSpace(r.getenv(name)) }

func (r *reader) str(name, def string) string {
	if v := r.get(name); v != "" {
		return v
	}
	return def
}

func (r *reader) intRange(name string, def, min, max int) int {
	v := r.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, v, "a whole number from "+strconv.Itoa(min)+" to "+strconv.Itoa(max))
		return def
	}
	return n
}

// millis reads a duration in whole milliseconds, 1 ms to 24 h.
func (r *reader) millis(name string, def int) time.Duration {
	v := r.get(name)
	if v == "" {
		return time.Duration(def) * time.Millisecond
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 86_400_000 {
		r.fail(name, v, "a whole number of milliseconds from 1 to 86400000, e.g. "+strconv.Itoa(def))
		return time.Duration(def) * time.Millisecond
	}
	return time.Duration(n) * time.Millisecond
}

func (r *reader) boolean(name string, def bool) bool {
	switch v := strings.ToLower(r.get(name)); v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	default:
		r.fail(name, r.get(name), "true or false")
		return def
	}
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(r.get(name))
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, r.get(name), "one of "+strings.Join(allowed, ", "))
	return def
}

// validHostPort reports whether s is host:port with a non-empty host and a port 1-65535.
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// hostPort reads a host:port to listen on; port 0 picks a free port.
func (r *reader) hostPort(name, def string) string {
	v := r.get(name)
	if v == "" {
		return def
	}
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || host == "" || n < 0 || n > 65535 {
		r.fail(name, v, "host:port (port 0 picks a free one), e.g. "+def)
		return def
	}
	return v
}

// hostPorts reads a comma-separated host:port list; an empty entry is malformed.
func (r *reader) hostPorts(name string) []string {
	v := r.get(name)
	if v == "" {
		return nil
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if !validHostPort(e) {
			r.fail(name, v, "a comma-separated list of host:port with no empty entry, e.g. kafka-1:9092,kafka-2:9092")
			return nil
		}
		out = append(out, e)
	}
	return out
}

// listenAddr reads a listen address: host:port or :port, port 0-65535.
func (r *reader) listenAddr(name, def string) string {
	v := r.get(name)
	if v == "" {
		return def
	}
	_, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 {
		r.fail(name, v, "a listen address [host]:port, e.g. :3000 or 127.0.0.1:3000")
		return def
	}
	return v
}

// list reads a comma-separated list whose entries are at least minLen characters.
func (r *reader) list(name string, minLen int, want string) []string {
	v := r.get(name)
	if v == "" {
		return nil
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if len(e) < minLen {
			r.fail(name, "<redacted>", want)
			return nil
		}
		out = append(out, e)
	}
	return out
}

func (r *reader) sasl() SASL {
	s := SASL{
		Mechanism: strings.ToUpper(r.get("KAFKA_SASL_MECHANISM")),
		Username:  r.getenv("KAFKA_SASL_USERNAME"),
		Password:  r.getenv("KAFKA_SASL_PASSWORD"),
	}
	switch s.Mechanism {
	case "":
		return SASL{}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		r.fail("KAFKA_SASL_MECHANISM", r.get("KAFKA_SASL_MECHANISM"), "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		return SASL{}
	}
	if s.Username == "" {
		r.fail("KAFKA_SASL_USERNAME", "", "the SASL user name (KAFKA_SASL_MECHANISM is set)")
	}
	if s.Password == "" {
		r.fail("KAFKA_SASL_PASSWORD", "", "the SASL password (KAFKA_SASL_MECHANISM is set)")
	}
	return s
}

// legalTopic is Kafka's rule for topic names: 1-249 of [a-zA-Z0-9._-], not "." or "..".
var legalTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidTopic reports whether name is a legal Kafka topic name (Kafka's Topic.validate).
func ValidTopic(name string) bool {
	return legalTopic.MatchString(name) && name != "." && name != ".."
}

func (r *reader) topicName(name, def string) string {
	v := r.get(name)
	if v == "" {
		return def
	}
	if !ValidTopic(v) {
		r.fail(name, v, "a Kafka topic name: 1-249 of a-z A-Z 0-9 . _ -")
		return def
	}
	return v
}

// The expected forms of REALTIME_TOPICS, for error messages: of the list, and of an entry's options.
const (
	topicsForm        = "a comma-separated list of topic=event-name[;option=value...] with distinct, legal topic names and event names of [a-zA-Z0-9._:-] that are not reserved (connect, disconnect, cursor, resync, ...)"
	topicsOptionsForm = "entries topic=event-name[;recipients=/pointer|key|header:<name>][;strip=false][;value=json|raw-string|raw-base64]"
)

// topics reads REALTIME_TOPICS: comma-separated entries "topic=event", each optionally followed
// by ";option=value" pairs that give the topic a notification.Shape:
//
//	recipients=/audience/userIds   a JSON Pointer into the value (RFC 6901; the URI fragment form
//	                               "#/a%2Cb" for names with "," or ";"); default /userIds
//	recipients=key                 the record key is the one user ID
//	recipients=header:user-id      each "user-id" header is one user ID
//	strip=false                    keep the pointer's member in the delivered data (default true)
//	value=raw-string|raw-base64    a non-JSON value, delivered as a JSON string (default json)
//
// A bare "topic" uses the topic name as its event name; spaces around entries and options are
// ignored, so that a YAML folded scalar can hold one entry per line.
func (r *reader) topics(name, def string) []TopicEvent {
	v := r.get(name)
	if v == "" {
		v = def
	}
	var out []TopicEvent
	seen := map[string]bool{}
	for _, e := range strings.Split(v, ",") {
		head, opts, hasOpts := strings.Cut(strings.TrimSpace(e), ";")
		topic, event, found := strings.Cut(head, "=")
		topic, event = strings.TrimSpace(topic), strings.TrimSpace(event)
		if !found {
			event = topic
		}
		if !ValidTopic(topic) || notification.CheckEventName(event) != nil || seen[topic] {
			r.fail(name, v, topicsForm)
			return nil
		}
		seen[topic] = true
		var shape notification.Shape
		var err error
		if hasOpts {
			shape, err = topicShape(opts)
		}
		if err != nil {
			r.fail(name, v, topicsOptionsForm+"; the entry of "+topic+": "+err.Error())
			return nil
		}
		out = append(out, TopicEvent{Topic: topic, Event: event, Shape: shape})
	}
	return out
}

// topicShape reads the options of one REALTIME_TOPICS entry: ";"-separated option=value pairs,
// each option at most once.
func topicShape(opts string) (notification.Shape, error) {
	var s notification.Shape
	seen := map[string]bool{}
	for _, o := range strings.Split(opts, ";") {
		k, v, ok := strings.Cut(o, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return s, fmt.Errorf("%q is not option=value", strings.TrimSpace(o))
		}
		if seen[k] {
			return s, fmt.Errorf("%s appears twice", k)
		}
		seen[k] = true
		switch k {
		case "recipients":
			s.Recipients = v
		case "strip":
			switch v {
			case "true":
			case "false":
				s.Keep = true
			default:
				return s, fmt.Errorf("strip is true or false, not %q", v)
			}
		case "value":
			s.Value = v
		default:
			return s, fmt.Errorf("unknown option %q (recipients, strip, value)", k)
		}
	}
	return s, s.Check()
}

// origins reads REALTIME_ALLOWED_ORIGINS: "*", or scheme://host[:port] and "null" entries.
func (r *reader) origins(name string) []string {
	v := r.get(name)
	if v == "" {
		return nil
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "*" || e == "null" {
			out = append(out, e)
			continue
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			r.fail(name, v, `"*" or a comma-separated list of origins scheme://host[:port] (or null), e.g. https://app.example.com`)
			return nil
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out
}

// prefixes reads a comma-separated list of CIDRs or single addresses (a /32 or /128).
func (r *reader) prefixes(name string) []netip.Prefix {
	v := r.get(name)
	if v == "" {
		return nil
	}
	var out []netip.Prefix
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil {
				r.fail(name, v, "a comma-separated list of CIDRs or addresses, e.g. 10.0.0.0/8,fd00::/8")
				return nil
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// publicKeyFile reads the PEM file named by the variable and returns its path and public key
// (auth.ParsePublicKeyPEM); unset returns "", nil.
func (r *reader) publicKeyFile(name string) (string, crypto.PublicKey) {
	path := r.get(name)
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		r.fail(name, path, "a readable PEM file with the public key that verifies client tokens: "+err.Error())
		return path, nil
	}
	key, err := auth.ParsePublicKeyPEM(data)
	if err != nil {
		r.fail(name, path, "a PEM public key (RSA of 2048 bits or more, EC P-256/P-384/P-521 or Ed25519): "+err.Error())
		return path, nil
	}
	return path, key
}
