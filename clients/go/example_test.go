package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"

	client "github.com/realtime-service/realtime-service/clients/go"
)

// The quick start: receive a user's notifications, each once, until ctx ends. getToken is yours
// (your backend signs client tokens: docs/client-protocol.md, "Authentication").
func Example() {
	ctx := context.Background()
	rt, err := client.New(ctx, client.Options{DialOptions: client.DialOptions{URL: "http://127.0.0.1:3000"}, Token: getToken,
		OnEvent: func(e client.Event) { fmt.Println(e.Name, e.ID, string(e.Data)) }})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
}

func getToken(ctx context.Context) (string, error) { return "a client JWT", nil }

// A service in development mode (docs/configuration.md) signs client tokens for anyone on its
// machine: GET /v1/dev/token?user=<id> answers {"token":"eyJ...","userId":...,"expiresAt":...}.
// The client calls Token again after a refused connection, so a restarted service, whose
// development secret is new, gets a fresh token.
func Example_developmentToken() {
	const base = "http://localhost:3000"
	devToken := func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/dev/token?user="+url.QueryEscape("alice"), nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /v1/dev/token: %s", resp.Status)
		}
		var t struct{ Token string }
		err = json.NewDecoder(resp.Body).Decode(&t)
		return t.Token, err
	}
	rt, err := client.New(context.Background(), client.Options{DialOptions: client.DialOptions{URL: base}, Token: devToken,
		OnEvent: func(e client.Event) { fmt.Println(e.Name, e.ID, string(e.Data)) }})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
}

// Resuming after a restart of the process: OnResumeToken gets the resume token at every cursor
// and after every handled event; the last one saved, passed as Resume, skips what OnEvent
// handled and replays the rest. It may run before New returns: it uses its argument, not rt.
func ExampleOptions_resume() {
	const file = "alice.resume"
	saved, _ := os.ReadFile(file) // none the first time: a fresh start
	rt, err := client.New(context.Background(), client.Options{
		DialOptions: client.DialOptions{URL: "http://localhost:3000"},
		Token:       getToken,
		Resume:      string(saved),
		OnEvent:     func(e client.Event) { fmt.Println(e.Name, e.ID, string(e.Data)) },
		OnResumeToken: func(tok string) {
			// Write and rename: a crash mid-write leaves the previous token.
			if os.WriteFile(file+".tmp", []byte(tok), 0o600) == nil {
				os.Rename(file+".tmp", file)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
}

// Errors of the HTTP API are *client.Problem values: branch on Code, list the failing fields,
// retry what is retryable.
func ExampleProblem() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(400)
		io.WriteString(w, `{"type":"/problems/validation-error","title":"The request has invalid fields","status":400,`+
			`"detail":"masteryLevel must be at most 1.","code":"validation-error",`+
			`"errors":[{"field":"masteryLevel","code":"lte","message":"must be at most 1"}]}`)
	}))
	defer srv.Close()

	api := &client.API{URL: srv.URL, Key: "an API key"}
	_, err := api.ConceptMastered(context.Background(), client.ConceptMastered{
		ConceptID: "js-arrays", UserIDs: []string{"alice"}, ConceptName: "JavaScript Arrays", MasteryLevel: 1.5,
	})
	var p *client.Problem
	if errors.As(err, &p) {
		fmt.Println(p.Status, p.Code, "retryable:", p.Retryable())
		for _, f := range p.Errors {
			fmt.Println(f.Field, f.Code, f.Message)
		}
	}
	// Output:
	// 400 validation-error retryable: false
	// masteryLevel lte must be at most 1
}

// Resume is the position a client sends back on reconnect: the last cursor and the IDs of the
// events since, "<cursor>~<id>,...".
func ExampleResume() {
	r := client.NewResume("", 1000)
	r.SetCursor("AgAAAAAB") // a cursor frame
	for _, id := range []string{"concept-notifications:0:42", "concept-notifications:2:17"} {
		if !r.Seen(id) {
			r.Add(id) // after the application handled the event
		}
	}
	fmt.Println(r.Token())
	fmt.Println(r.Seen("concept-notifications:0:42")) // a copy after a reconnect
	// Output:
	// AgAAAAAB~concept-notifications:0:42,concept-notifications:2:17
	// true
}
