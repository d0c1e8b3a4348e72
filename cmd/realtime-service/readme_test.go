package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// firstLook returns README.md's "A first look" section: its prose and the commands of its sh
// blocks (comments dropped, backslash continuations joined).
func firstLook(t *testing.T) (section string, commands []string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n## A first look")
	if !ok {
		t.Fatal(`README.md has no "A first look" section`)
	}
	section, _, _ = strings.Cut(after, "\n## ")
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		var cmd string
		for _, line := range strings.Split(block[1], "\n") {
			if i := strings.Index(line, " #"); i >= 0 && !strings.Contains(line[:i], "'") {
				line = line[:i] // a trailing comment (not inside a quoted argument)
			}
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasSuffix(line, `\`) {
				cmd += strings.TrimSuffix(line, `\`)
				continue
			}
			commands = append(commands, cmd+line)
			cmd = ""
		}
	}
	return section, commands
}

// TestREADMEFirstLookWorksRightAfterGoRun: the first look needs the service and curl, nothing
// else (no npm install, no Node WebSocket library): it names the run command, and its commands —
// get a token, follow alice's events with curl -N, send her a notification with the POST — run
// against a development service as written, the stream showing the notification.
func TestREADMEFirstLookWorksRightAfterGoRun(t *testing.T) {
	section, commands := firstLook(t)
	if !strings.Contains(section, "go run ./cmd/realtime-service") {
		t.Error(`"A first look" does not say how to start the service (go run ./cmd/realtime-service)`)
	}
	var token, stream, post string
	for _, c := range commands {
		for _, needs := range []string{"node ", "npm ", "NODE_PATH", "interop-deps"} {
			if strings.Contains(c, needs) {
				t.Errorf("a first-look command needs more than the service and curl (%s): %s", strings.TrimSpace(needs), c)
			}
		}
		switch {
		case strings.HasPrefix(c, "TOKEN="):
			token = c
		case strings.HasPrefix(c, "curl -N "):
			stream = c
		case strings.HasPrefix(c, "curl -s -X POST ") && strings.Contains(c, `"alice"`):
			post = c
		}
	}
	if token == "" || stream == "" || post == "" {
		t.Fatalf("the first look lacks a TOKEN= line (%q), a curl -N stream (%q) or a POST to alice (%q)", token, stream, post)
	}
	interopTool(t, "curl", "apt-get install curl")
	s := startService(t, map[string]string{"REALTIME_JWT_SECRET": "", "REALTIME_API_KEYS": ""})
	s.waitConsuming()
	local := func(c string) string {
		return strings.ReplaceAll(c, "localhost:3000", strings.TrimPrefix(s.URL, "http://"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follow := exec.CommandContext(ctx, "bash", "-c", local(token)+"\n"+local(stream))
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); follow.Wait() }()
	waitUntil(t, "curl -N to connect", func() bool {
		var h struct {
			Details struct{ Realtime struct{ Connections int } }
		}
		resp, err := http.Get(s.URL + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&h)
		return h.Details.Realtime.Connections == 1
	})
	sent, err := exec.CommandContext(ctx, "bash", "-c", local(post)).Output()
	if err != nil {
		t.Fatalf("%s: %v", post, err)
	}
	var id struct{ ID string }
	if err := json.Unmarshal(sent, &id); err != nil || id.ID == "" {
		t.Fatalf("the POST answered %s", sent)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if strings.Contains(lines.Text(), `"id":"`+id.ID+`"`) {
			return // alice's stream shows the notification
		}
	}
	t.Fatalf("curl -N ended without the notification %s", id.ID)
}

// TestREADMEIsAPage: README.md opens with the two commands — run, then test (the command CI's
// .ci/run calls) — and stays one page; everything else lives in docs/.
func TestREADMEIsAPage(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n > 150 {
		t.Errorf("README.md has %d lines; keep it to 150 and move the rest to docs/", n)
	}
	_, rest, ok := strings.Cut(string(readme), "\n```sh\n")
	head, _, _ := strings.Cut(rest, "```")
	lines := strings.Split(strings.TrimSpace(head), "\n")
	if !ok || len(lines) != 2 || !strings.HasPrefix(lines[0], "go run ./cmd/realtime-service ") || !strings.HasPrefix(lines[1], "make test ") {
		t.Errorf("README.md's first block is %q; want the run command (go run ./cmd/realtime-service) and the test command (make test)", head)
	}
	if before, _, _ := strings.Cut(string(readme), "```sh"); strings.Count(before, "\n") > 3 {
		t.Errorf("README.md has %d lines before the two commands; they come first", strings.Count(before, "\n"))
	}
}
