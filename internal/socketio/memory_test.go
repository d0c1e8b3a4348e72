package socketio

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// TestIdleWebSocketMemory measures what an idle Socket.IO-over-WebSocket connection costs the
// server: SOCKETIO_MEMORY_CONNS clients (another process: this test binary running
// TestHelperIdleClients) connect to "/" and stay silent; the server's heap+stack and RSS growth is
// divided by their number. It fails above 10 KB per connection. Opt-in (it needs 2×N file
// descriptors across the two processes) and without -race, which inflates memory:
//
//	SOCKETIO_MEMORY_CONNS=10000 go test ./internal/socketio -run TestIdleWebSocketMemory -v
func TestIdleWebSocketMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SOCKETIO_MEMORY_CONNS"))
	if n <= 0 {
		t.Skip("set SOCKETIO_MEMORY_CONNS=10000 to measure the memory of idle WebSocket sessions")
	}
	hub := realtime.NewHub(realtime.HubConfig{})
	h := NewHandler(hub, Config{Verifier: auth.NewVerifier(testSecret)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	heap0, stack0, rss0, g0 := settle()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleClients$", "-test.v")
	cmd.Env = append(os.Environ(), "SOCKETIO_HELPER_URL=ws://"+ln.Addr().String()+"/socket.io/?EIO=4&transport=websocket", "SOCKETIO_HELPER_CONNS="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "ready") {
		t.Log("client: ", lines.Text())
	}
	waitFor(t, "every client connected", func() bool { return hub.Connections() == n })
	heap1, stack1, rss1, g1 := settle()
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	perRSS := per(rss0, rss1)
	t.Logf("%d idle Socket.IO WebSocket connections: RSS %.1f KB/conn (heap %.1f KB, goroutine stacks %.1f KB), %.2f goroutines/conn",
		n, perRSS, per(heap0, heap1), per(stack0, stack1), float64(g1-g0)/float64(n))
	if perRSS > 10 {
		t.Errorf("RSS %.1f KB per idle connection, over the 10 KB goal", perRSS)
	}
}

// settle collects garbage, returns memory to the OS, and reads the heap and stacks in use, RSS and
// the goroutine count.
func settle() (heap, stack, rss uint64, goroutines int) {
	for range 3 {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb * 1024
		}
	}
	return m.HeapInuse, m.StackInuse, rss, runtime.NumGoroutine()
}

// TestHelperIdleClients is the client process of TestIdleWebSocketMemory: it connects
// SOCKETIO_HELPER_CONNS users, prints "ready", and holds the connections until stdin closes.
func TestHelperIdleClients(t *testing.T) {
	url := os.Getenv("SOCKETIO_HELPER_URL")
	if url == "" {
		t.Skip("helper process of TestIdleWebSocketMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("SOCKETIO_HELPER_CONNS"))
	dialer := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: time.Minute}
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, _, err := dialer.Dial(url, nil)
			if err != nil {
				errs <- err
				return
			}
			tok, _ := auth.Issue(testSecret, fmt.Sprintf("user-%d", i), time.Hour, time.Now())
			ws.ReadMessage() // the open packet
			ws.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+tok+`"}`))
			if _, reply, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(reply), "40{") {
				errs <- fmt.Errorf("CONNECT: %q %v", reply, err)
				return
			}
			conns[i] = ws
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fmt.Println("ready")
	buf := make([]byte, 1)
	os.Stdin.Read(buf) // until the parent closes stdin
	for _, c := range conns {
		c.Close()
	}
}
