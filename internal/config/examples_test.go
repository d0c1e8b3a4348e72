package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// shippedSecrets returns the REALTIME_API_KEYS and REALTIME_JWT_SECRET values the repository
// ships: in deploy/kubernetes/secret.yaml, as docker-compose.yml's defaults (${VAR:-value}) and
// in the examples of README.md and docs/ (VAR=value, X-API-Key: value), shell expansions and
// <placeholders> aside.
func shippedSecrets(t *testing.T) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	add := func(name, value string) {
		value = strings.Trim(value, `"'`)
		if value == "" || strings.HasPrefix(value, "$") || strings.HasPrefix(value, "<") {
			return
		}
		for _, v := range strings.Split(value, ",") {
			found[name] = append(found[name], v)
		}
	}
	yamlLine := regexp.MustCompile(`(?m)^\s*(REALTIME_API_KEYS|REALTIME_JWT_SECRET):\s*(\S+)\s*$`)
	composeDefault := regexp.MustCompile(`^\$\{\w+:-([^}]*)\}$`)
	for _, file := range []string{"../../deploy/kubernetes/secret.yaml", "../../docker-compose.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlLine.FindAllStringSubmatch(string(data), -1) {
			value := m[2]
			if d := composeDefault.FindStringSubmatch(value); d != nil {
				value = d[1]
			}
			add(m[1], value)
		}
	}
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) < 5 {
		t.Fatalf("docs/*.md: %v %v", pages, err)
	}
	for _, page := range append([]string{"../../README.md"}, pages...) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(REALTIME_API_KEYS|REALTIME_JWT_SECRET)=(\S+)`).FindAllStringSubmatch(string(text), -1) {
			add(m[1], m[2])
		}
		for _, m := range regexp.MustCompile(`(?:X-API-Key:|Bearer) ([^\s'"`+"`"+`]+)`).FindAllStringSubmatch(string(text), -1) {
			add("REALTIME_API_KEYS", m[1])
		}
	}
	return found
}

// TestExampleSecretsAreRefused: the service refuses to start with a secret the repository ships
// as an example (the Kubernetes Secret's change-me values, the Compose file's defaults, the
// docs'), with a real broker and in development alike, naming the variable and not the value.
func TestExampleSecretsAreRefused(t *testing.T) {
	shipped := shippedSecrets(t)
	if len(shipped["REALTIME_API_KEYS"]) == 0 || len(shipped["REALTIME_JWT_SECRET"]) == 0 {
		t.Fatalf("found %v in deploy/kubernetes/secret.yaml, docker-compose.yml, README.md and docs/: the test no longer reads them", shipped)
	}
	good := map[string]string{"REALTIME_API_KEYS": "0123456789abcdef-own-key", "REALTIME_JWT_SECRET": strings.Repeat("s", 32)}
	for name, values := range shipped {
		for _, value := range values {
			for _, broker := range []string{"k:9092", ""} {
				e := map[string]string{"KAFKA_NODE_ID": "n", "KAFKA_BROKERS": broker}
				for k, v := range good {
					e[k] = v
				}
				e[name] = value
				if name == "REALTIME_API_KEYS" {
					e[name] = good[name] + "," + value // one example among real keys is enough
				}
				c, err := Load(env(e))
				if err != nil {
					t.Errorf("%s=%s: Load: %v", name, value, err)
					continue
				}
				err = c.CheckServe()
				if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), value) {
					t.Errorf("%s=%s (KAFKA_BROKERS=%q): CheckServe = %v, want an error naming %s without the value", name, value, broker, err, name)
				}
			}
		}
	}
	// A placeholder in the manifests' style is refused too, an own secret is not.
	c, _ := Load(env(map[string]string{"KAFKA_NODE_ID": "n", "KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": "change-me-0000000000000000", "REALTIME_JWT_SECRET": good["REALTIME_JWT_SECRET"]}))
	if err := c.CheckServe(); err == nil {
		t.Error("REALTIME_API_KEYS=change-me-0000000000000000 is accepted")
	}
	c, _ = Load(env(map[string]string{"KAFKA_NODE_ID": "n", "KAFKA_BROKERS": "k:9092", "REALTIME_API_KEYS": good["REALTIME_API_KEYS"], "REALTIME_JWT_SECRET": good["REALTIME_JWT_SECRET"]}))
	if err := c.CheckServe(); err != nil {
		t.Errorf("own secrets: %v", err)
	}
}
