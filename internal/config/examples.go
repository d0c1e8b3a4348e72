package config

import "strings"

// exampleSecrets are the secret values the repository has shipped as examples: whoever read the
// docs or the manifests knows them, so a service that accepts one is open. A test
// (examples_test.go) reads deploy/kubernetes/secret.yaml, docker-compose.yml, README.md and docs/ and
// fails when one of their values is not refused, so the list cannot drift.
var exampleSecrets = []string{
	"change-me-api-key-0123456789abcdef",              // deploy/kubernetes/secret.yaml
	"change-me-jwt-secret-0123456789abcdef0123456789", // deploy/kubernetes/secret.yaml
	"demo-api-key-change-me-0123456789",               // docker-compose.yml's former default
	"demo-jwt-secret-change-me-0123456789abcdef",      // docker-compose.yml's former default
	"local-dev-key-0123456789",                        // the former "Several nodes" example of README.md
}

// isExampleSecret reports whether s is a value shipped as an example, or a placeholder (one that
// contains "change-me").
func isExampleSecret(s string) bool {
	for _, e := range exampleSecrets {
		if s == e {
			return true
		}
	}
	return strings.Contains(s, "change-me")
}

// exampleSecretProblems names REALTIME_API_KEYS and REALTIME_JWT_SECRET when they hold an example
// value (see exampleSecrets). Values are redacted.
func (c Config) exampleSecretProblems() []Problem {
	const want = "your own secret, not an example value of the README or deploy/ (generate one: openssl rand -hex 32)"
	var problems []Problem
	for _, k := range c.HTTP.APIKeys {
		if isExampleSecret(k) {
			problems = append(problems, Problem{Var: "REALTIME_API_KEYS", Value: "<redacted>", Want: want})
			break
		}
	}
	if isExampleSecret(c.Realtime.JWTSecret) {
		problems = append(problems, Problem{Var: "REALTIME_JWT_SECRET", Value: "<redacted>", Want: want})
	}
	return problems
}
