package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

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
