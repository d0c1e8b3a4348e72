package socketio

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
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

	"github.com/realtime-service/realtime-service/internal/admission"
	"github.com/realtime-service/realtime-service/internal/auth"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// TestIdleWebSocketMemory measures what an idle Socket.IO-over-WebSocket connection costs the
// server: SOCKETIO_MEMORY_CONNS clients (another process: this test binary running
// TestHelperIdleClients) connect to "/" and stay silent; the server's heap+stack and RSS growth is
// divided by their number. It fails above 8 KiB per connection (issue 19). Opt-in (it needs 2×N file
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
	if perRSS > 8 {
		t.Errorf("RSS %.1f KB per idle connection, over the 8 KiB target", perRSS)
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

// TestPreAuthFloodMemory measures what unauthenticated clients can make the server hold: 1,000
// WebSocket sessions that each send all but the last byte of a 1,000,000-byte message (the
// server buffers what it accepts of it; SOCKETIO_FLOOD_MESSAGE_BYTES sets another size), and 10,000 long-polling handshakes from one address,
// with admission's default caps. Opt-in, without -race:
//
//	SOCKETIO_FLOOD_MEMORY=1 go test ./internal/socketio -run TestPreAuthFloodMemory -v
func TestPreAuthFloodMemory(t *testing.T) {
	if os.Getenv("SOCKETIO_FLOOD_MEMORY") == "" {
		t.Skip("set SOCKETIO_FLOOD_MEMORY=1 to measure the memory of pre-authentication floods")
	}
	t.Run("websocket", func(t *testing.T) {
		h := NewHandler(realtime.NewHub(realtime.HubConfig{}), Config{Verifier: auth.NewVerifier(testSecret)})
		addr := serveForMeasure(t, h)
		heap0, _, rss0, _ := settle()
		const conns = 1000
		size := 1_000_000
		if n, _ := strconv.Atoi(os.Getenv("SOCKETIO_FLOOD_MESSAGE_BYTES")); n > 0 {
			size = n
		}
		payload := make([]byte, size) // zeros, masked with a zero key: the same bytes on the wire
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		held := make([]net.Conn, conns)
		for i := range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				nc, err := rawWebSocket(addr)
				if err != nil {
					t.Error(err)
					return
				}
				held[i] = nc
				hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // text, masked, 64-bit length, zero key
				binary.BigEndian.PutUint64(hdr[2:10], uint64(size))
				nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
				nc.Write(append(hdr, payload[:size-1]...)) // the last byte never comes
			}()
		}
		wg.Wait()
		defer func() {
			for _, nc := range held {
				if nc != nil {
					nc.Close()
				}
			}
		}()
		heap1, rss1 := stableHeap()
		t.Logf("%d pre-auth WebSocket sessions x %d-byte message: heap %+.1f MiB (%.1f KiB/session), RSS %+.1f MiB, %d sessions open",
			conns, size, mib(heap0, heap1), kib(heap0, heap1)/conns, mib(rss0, rss1), sessionCount(h))
	})
	t.Run("polling", func(t *testing.T) {
		admit := admission.New(admission.Config{MaxConnections: 10000, MaxPending: 2000, MaxPendingPerAddress: 64})
		h := NewHandler(realtime.NewHub(realtime.HubConfig{}), Config{Verifier: auth.NewVerifier(testSecret), Admission: admit})
		addr := serveForMeasure(t, h)
		heap0, _, rss0, _ := settle()
		const n = 10000
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		sem := make(chan struct{}, 16)
		for range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				res, err := client.Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				mu.Lock()
				statuses[res.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		client.CloseIdleConnections()
		heap1, _, rss1, _ := settle()
		t.Logf("%d polling handshakes from one address: statuses %v, heap %+.1f MiB (%.2f KiB/handshake), RSS %+.1f MiB, %d sessions open",
			n, statuses, mib(heap0, heap1), kib(heap0, heap1)/n, mib(rss0, rss1), sessionCount(h))
	})
}

func serveForMeasure(t *testing.T, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	})
	return ln.Addr().String()
}

// rawWebSocket opens a WebSocket-only Engine.IO session by hand and reads the open packet, so
// that the caller can write frames without a client library's buffers.
func rawWebSocket(addr string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(nc, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %v %v", res, err)
	}
	var hdr [2]byte // the open packet: one unmasked text frame of < 126 bytes
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, br, int64(hdr[1]&0x7f)); err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// stableHeap waits until the heap in use stops growing (the server has read what it will), at
// most 30 s, and returns it after a collection, with RSS.
func stableHeap() (heap, rss uint64) {
	var last uint64
	for range 150 {
		time.Sleep(200 * time.Millisecond)
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if last > 0 && m.HeapInuse < last+last/100 && m.HeapInuse+last/100 > last {
			break
		}
		last = m.HeapInuse
	}
	heap, _, rss, _ = settle()
	return heap, rss
}

func sessionCount(h *Handler) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

func mib(a, b uint64) float64 { return (float64(b) - float64(a)) / (1 << 20) }
func kib(a, b uint64) float64 { return (float64(b) - float64(a)) / (1 << 10) }
