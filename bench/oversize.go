package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	be "encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The oversize run: C concurrent unauthenticated Socket.IO clients each send one message of
// -size bytes (1 MB by default, the largest message the Engine.IO default maxPayload admits) before any CONNECT: on -transport websocket one WebSocket text
// message (the server should close with 1009, RFC 6455 §7.4.1 "message too big"), on -transport
// polling one long-polling POST body (the server should answer 413). All connect first, then all
// send at once, each holding back its last byte for -hold (as a client that wants the node to keep
// its partial message would). Measured: the node's RSS peak and after, the close codes or statuses received.

type oversizeConfig struct {
	conns      int
	size       int
	transport  string // websocket or polling
	perAddress int
	parallel   int
	settle     time.Duration
	hold       time.Duration // the last byte of each message is held back this long
	maxRSS     int64
}

func defaultOversize() oversizeConfig {
	return oversizeConfig{conns: 10_000, size: 1_000_000, transport: "websocket", perAddress: 50, parallel: 256, settle: 5 * time.Second, hold: 3 * time.Second, maxRSS: 2 << 30}
}

type oversizeResult struct {
	Transport  string           `json:"transport"`
	Conns      int              `json:"conns"`
	Size       int              `json:"size"`
	Handshakes map[string]int64 `json:"handshakes"` // the upgrade or handshake answers
	Outcomes   map[string]int64 `json:"outcomes"`   // close-<code>, status <code>, or error kind
	Sent       int64            `json:"sent"`       // messages written completely
	Seconds    float64          `json:"send_seconds"`
	RSSStart   float64          `json:"rss_start_mib"`
	RSSPeak    float64          `json:"rss_peak_mib"`
	RSSAfter   float64          `json:"rss_after_mib"`
	Aborted    string           `json:"aborted,omitempty"`
	Sessions   float64          `json:"sessions_after"`
}

func runOversize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("oversize", flag.ContinueOnError)
	var c common
	c.register(fs, "websocket") // -transport: websocket or polling, the Socket.IO transports
	cfg := defaultOversize()
	fs.IntVar(&cfg.conns, "conns", cfg.conns, "concurrent unauthenticated Socket.IO clients")
	fs.IntVar(&cfg.size, "size", cfg.size, "bytes each sends in one message (WebSocket) or one POST body (polling)")
	fs.IntVar(&cfg.perAddress, "per-address", cfg.perAddress, "clients per source address 127.1.x.y (the node's REALTIME_MAX_PENDING_PER_ADDRESS is 64 by default)")
	fs.IntVar(&cfg.parallel, "dial-parallel", cfg.parallel, "connections opened concurrently")
	fs.DurationVar(&cfg.hold, "hold", cfg.hold, "hold back the last byte of each message this long, as a client that wants the node to keep its partial message would (0: send it whole)")
	fs.DurationVar(&cfg.settle, "settle", cfg.settle, "after the last answer, wait this long before measuring the RSS after")
	mb := fs.Int64("max-rss-mb", cfg.maxRSS>>20, "stop when the node's RSS passes this (MiB); 0: never")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg.maxRSS = *mb << 20
	if c.transport != "websocket" && c.transport != "polling" {
		return fmt.Errorf("-transport %q: want websocket (one WebSocket message; want close 1009) or polling (one POST body; want 413)", c.transport)
	}
	cfg.transport, c.transport = c.transport, "ws"
	if err := c.check(); err != nil {
		return err
	}
	if cfg.conns < 1 || cfg.size < 1 || cfg.perAddress < 1 || cfg.parallel < 1 {
		return errors.New("want positive -conns, -size, -per-address, -dial-parallel")
	}
	if lim := fileLimit(); lim > 0 && cfg.conns+200 > lim {
		return fmt.Errorf("-conns %d needs as many open files; this process may open %d (ulimit -n)", cfg.conns, lim)
	}
	perRun := 3*time.Minute + cfg.settle
	return repeat(ctx, "oversize", args, &c, perRun, stdout, stderr, func(ctx context.Context, st *stack, run int) ([]figure, any, *loadReport, error) {
		return oversizeRun(ctx, st, cfg, stderr)
	})
}

func oversizeRun(ctx context.Context, st *stack, cfg oversizeConfig, stderr io.Writer) ([]figure, any, *loadReport, error) {
	res := oversizeResult{Transport: cfg.transport, Conns: cfg.conns, Size: cfg.size, RSSStart: mib(nodeRSS(st))}
	mon := monitor(st)
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := watchRSS(st.nodePID, cfg.maxRSS, func() {
		cancel(fmt.Errorf("the node's RSS passed -max-rss-mb %d", cfg.maxRSS>>20))
	})
	host := strings.TrimPrefix(st.url, "http://")
	// One payload for every client: an Engine.IO message packet ("4" then filler).
	payload := bytes.Repeat([]byte{'a'}, cfg.size)
	payload[0] = '4'
	var hs, out counts
	var sentMu sync.Mutex
	var sent int64
	ready := make(chan struct{}) // closed when every client has connected: all send at once
	var wg, dialed sync.WaitGroup
	sem := make(chan struct{}, cfg.parallel)
	dialed.Add(cfg.conns)
dial:
	for i := range cfg.conns {
		ip := attackIP(i/cfg.perAddress, 1<<30)
		select {
		case sem <- struct{}{}:
		case <-rctx.Done():
			dialed.Add(i - cfg.conns)
			break dial
		}
		wg.Go(func() {
			once := sync.OnceFunc(func() { <-sem; dialed.Done() })
			defer once()
			var outcome string
			var ok bool
			if cfg.transport == "websocket" {
				outcome, ok = oversizeWS(rctx, host, ip, payload, cfg.hold, &hs, once, ready)
			} else {
				outcome, ok = oversizePolling(rctx, host, ip, payload, cfg.hold, &hs, once, ready)
			}
			if outcome != "" {
				out.add(outcome)
			}
			if ok {
				sentMu.Lock()
				sent++
				sentMu.Unlock()
			}
		})
	}
	dialed.Wait()
	start := time.Now()
	close(ready)
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	if rctx.Err() != nil && ctx.Err() == nil {
		res.Aborted = context.Cause(rctx).Error()
		fmt.Fprintf(stderr, "oversize stopped early: %s\n", res.Aborted)
	}
	select {
	case <-time.After(cfg.settle):
	case <-ctx.Done():
	}
	res.RSSPeak = mib(watch.finish())
	load := mon.stop()
	res.RSSAfter = mib(nodeRSS(st))
	res.Sessions, _, _ = openSessions(ctx, st)
	res.Handshakes, res.Outcomes, res.Sent = hs.snapshot(), out.snapshot(), sent

	figs := []figure{
		{"clients", "", float64(cfg.conns)},
		{"message size", "bytes", float64(cfg.size)},
		{"handshakes accepted", "", float64(res.Handshakes["101"] + res.Handshakes["200"])},
		{"handshakes refused 429", "", float64(res.Handshakes["429"])},
		{"handshakes refused 503", "", float64(res.Handshakes["503"])},
		{"messages sent completely", "", float64(res.Sent)},
		{"server RSS peak", "MiB", res.RSSPeak},
		{"server RSS after", "MiB", res.RSSAfter},
		{"sessions after", "", res.Sessions},
	}
	if cfg.transport == "websocket" {
		figs = append(figs,
			figure{"close 1009 received", "", float64(res.Outcomes["close-1009"])},
			figure{"closed without a close frame (1006)", "", float64(res.Outcomes["close-1006"])},
		)
	} else {
		figs = append(figs, figure{"answered 413", "", float64(res.Outcomes["413"])})
	}
	var other int64
	for k, n := range res.Outcomes {
		if k != "close-1009" && k != "close-1006" && k != "413" {
			other += n
		}
	}
	figs = append(figs, figure{"other outcomes", "", float64(other)})
	var runErr error
	if res.Aborted != "" {
		runErr = errors.New(res.Aborted)
	}
	return figs, res, load, runErr
}

// oversizeWS opens a Socket.IO WebSocket (no CONNECT), reads the open packet, calls connected,
// waits for ready, sends payload as one text message and reads until the connection ends.
// The outcome is close-<code> (close-1006 when it ended without a close frame), or empty when
// the handshake was refused (counted in hs).
func oversizeWS(ctx context.Context, host string, ip net.IP, payload []byte, hold time.Duration, hs *counts, connected func(), ready <-chan struct{}) (string, bool) {
	w, code, err := upgradeRaw(ctx, host, ip, "/socket.io/?EIO=4&transport=websocket", "")
	hs.add(statusKey(code, err))
	if err != nil || code != http.StatusSwitchingProtocols {
		return "", false
	}
	defer w.close()
	opened := make(chan struct{})
	var once sync.Once
	readErr := make(chan error, 1)
	go func() {
		readErr <- w.read(func([]byte) { once.Do(func() { close(opened) }) })
	}()
	select {
	case <-opened:
	case err := <-readErr:
		connected()
		return wsOutcome(err), false
	case <-time.After(15 * time.Second):
		connected()
		return "no-open-packet", false
	}
	connected()
	select {
	case <-ready:
	case err := <-readErr:
		return wsOutcome(err), false
	}
	// One final text frame, masked with the key 0 (RFC 6455 §5.3 lets the client choose; a zero
	// key leaves the payload as it is, so every client sends the same buffer).
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	be.BigEndian.PutUint64(hdr[2:10], uint64(len(payload)))
	w.wmu.Lock()
	w.nc.SetWriteDeadline(time.Now().Add(60 * time.Second))
	werr := writeHolding(ctx, w.nc, hdr, payload, hold, readErr)
	w.wmu.Unlock()
	w.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	select {
	case err := <-readErr:
		return wsOutcome(err), werr == nil
	case <-ctx.Done():
		return "aborted", werr == nil
	}
}

// writeHolding writes hdr and payload but for its last byte, waits hold (or until ended
// yields, which it then puts back, or ctx ends), then writes the last byte.
func writeHolding(ctx context.Context, nc net.Conn, hdr, payload []byte, hold time.Duration, ended chan error) error {
	n := len(payload)
	if hold > 0 {
		n--
	}
	bufs := net.Buffers{hdr, payload[:n]}
	if _, err := bufs.WriteTo(nc); err != nil || n == len(payload) {
		return err
	}
	select {
	case <-time.After(hold):
	case err := <-ended:
		ended <- err
		return errors.New("closed before the last byte")
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	_, err := nc.Write(payload[n:])
	return err
}

func wsOutcome(err error) string {
	var ce *wsCloseError
	if errors.As(err, &ce) {
		return "close-" + strconv.Itoa(ce.Code)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "close-1006" // RFC 6455 §7.1.5: closed without a close frame
}

// upgradeRaw dials host from ip and asks for a WebSocket upgrade of path (with an
// Authorization header when token is set). It returns the connection when the answer is 101,
// and the status either way.
func upgradeRaw(ctx context.Context, host string, ip net.IP, path, token string) (*rawWS, int, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, 0, err
	}
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		nc.Close()
		return nil, 0, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		nc.Close()
		return nil, resp.StatusCode, nil
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, resp.StatusCode, errors.New("handshake: bad Sec-WebSocket-Accept")
	}
	nc.SetDeadline(time.Time{})
	return &rawWS{nc: nc, br: br}, resp.StatusCode, nil
}

// oversizePolling opens an Engine.IO long-polling session (the handshake GET), calls connected,
// waits for ready, POSTs payload as its body and returns the answer's status.
func oversizePolling(ctx context.Context, host string, ip net.IP, payload []byte, hold time.Duration, hs *counts, connected func(), ready <-chan struct{}) (string, bool) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		hs.add(statusKey(0, err))
		connected()
		return "", false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReaderSize(nc, 4096)
	sid, code, err := pollingHandshake(nc, br, host)
	hs.add(statusKey(code, err))
	connected()
	if err != nil || code != http.StatusOK {
		return "", false
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return "", false
	}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	hdr := "POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + host +
		"\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(payload)) + "\r\n\r\n"
	werr := make(chan error, 1)
	go func() { werr <- writeHolding(ctx, nc, []byte(hdr), payload, hold, nil) }()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		<-werr
		return "error-" + errKind(err), false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	nc.Close() // the server may still be reading the body, or not at all
	return strconv.Itoa(resp.StatusCode), <-werr == nil
}

// pollingHandshake sends the Engine.IO handshake GET on nc and returns the session ID.
func pollingHandshake(nc net.Conn, br *bufio.Reader, host string) (sid string, status int, err error) {
	req := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return "", 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, err
	}
	_, rest, ok := strings.Cut(string(body), `"sid":"`)
	sid, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		return "", resp.StatusCode, fmt.Errorf("handshake without a sid: %.100q", body)
	}
	return sid, resp.StatusCode, nil
}
