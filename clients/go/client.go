package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// State is where a [Client] is.
type State string

const (
	// Connecting: an attempt runs (the token is fetched, then the connection dialed).
	Connecting State = "connecting"
	// Connected: the connection is open and frames flow.
	Connected State = "connected"
	// Disconnected: the connection ended or was refused; the client waits to reconnect.
	Disconnected State = "disconnected"
	// Closed: for good: Close, the context's end, or a close code after which reconnecting
	// cannot help (1002, 1009, 4003, or an SSE disconnect frame with reconnect false).
	Closed State = "closed"
)

// StateChange is what OnState gets at every change of state.
type StateChange struct {
	State     State
	Transport Transport
	// Attempt is, for Connecting, how many retries in a row came before (the backoff exponent;
	// it goes back to 0 once the server sends a cursor).
	Attempt int
	// Code is, for Disconnected and Closed, why the connection ended: the WebSocket close code
	// (docs/client-protocol.md, "Close codes"), the code of SSE's disconnect frame, the HTTP
	// status of a refused connection, 1006 for a dropped one or a failed dial, 1013 for a
	// resync "unavailable" the client retries, 1000 after Close or for an SSE token refresh.
	Code   int
	Reason string
	// Reconnect is, for Disconnected and Closed, whether the client reconnects by itself.
	Reconnect bool
	// Err is the error behind a dropped or refused connection (a *HandshakeError when refused),
	// nil otherwise.
	Err error
}

// Options configure a [Client]. URL (in the embedded DialOptions) and Token are required; every
// other field has a default.
type Options struct {
	// DialOptions hold URL and the connection options: DialContext, HTTPClient (SSE),
	// ReadBufferSize, HandshakeTimeout, RawWebSocket.
	DialOptions

	// Token returns a client token (a JWT: docs/client-protocol.md, "Authentication"); the
	// client reads its exp to refresh it RefreshLead before. Called before the first connection,
	// before exp, and before reconnecting after a refused connection or a 4001 close; the ctx is
	// the client's. Required.
	Token func(ctx context.Context) (string, error)

	// OnEvent gets each notification once, in offset order per Kafka partition. The resume
	// position includes an event only once OnEvent returned, so a process that dies during the
	// call and resumes from a token saved before gets it again rather than losing it.
	OnEvent func(Event)
	// OnResync gets a resume the server could not honour (docs/client-protocol.md, "Resync"):
	// reload what the application shows from past events. Reason "unavailable" (a node
	// starting, Kafka out of reach) is first retried three times from the same position.
	OnResync func(Resync)
	// OnState gets every change of state.
	OnState func(StateChange)
	// OnResumeToken gets the resume token ("<cursor>~<id>,...", as ResumeToken returns it) each
	// time it changes: at every cursor the server sends (the token is then the cursor alone) and
	// after every OnEvent returned, once a first cursor came. Save the last one it got and pass
	// it as Resume to resume exactly after a restart or crash of the process: what OnEvent
	// handled is skipped, the rest replayed (an event whose token was not saved yet comes again).
	// A token saved only at cursors replays the events handled since (up to
	// REALTIME_CURSOR_EVERY - 1, 31 by default; fewer after a tick's cursor, more in the rare
	// cases docs/design.md, "Cursor" lists): OnEvent sees them again. Building the token
	// costs about 0.8 µs and one allocation of about 1 KB per event (BenchmarkResumeToken), paid
	// only while OnResumeToken is set. It may run before New returns: use its argument, not the
	// *Client.
	OnResumeToken func(token string)
	// OnError gets errors that do not end the client: a failing Token, a refused refresh
	// (refresh-error), a frame that is not JSON.
	OnError func(error)

	// Transports are tried in this order (default WebSocket, then SSE). One that never opened is
	// left after one failed attempt (WebSocket refused on the way: SSE next); one that worked
	// after eight in a row (an outage fails every transport alike).
	Transports []Transport
	// Resume is the resume token to start from ("" for a fresh start), as ResumeToken returned
	// it before (docs/client-protocol.md, "Cursor").
	Resume string
	// MinDelay and MaxDelay bound the backoff: the n-th retry in a row waits a random time in
	// [0, min(MaxDelay, MinDelay × 2ⁿ)) (full jitter), or the refusal's Retry-After when that is
	// longer. Defaults 500 ms and 30 s.
	MinDelay, MaxDelay time.Duration
	// RefreshLead is how long before the token's exp the client fetches a new one, at most half
	// its lifetime (default 30 s). WebSocket refreshes in place ({"type":"refresh"}); SSE
	// reconnects with the new token and the cursor (docs/client-protocol.md, "Refresh in place").
	RefreshLead time.Duration
	// Dedup is how many event IDs the client remembers to drop a second copy (default 1000).
	Dedup int
	// Heartbeat: after this much silence the client asks the server for a cursor (WebSocket),
	// after twice this it drops the connection and reconnects (default 30 s). Keep it above the
	// server's REALTIME_PING_INTERVAL (25 s): pings and SSE heartbeats count as frames.
	Heartbeat time.Duration
}

// finalCodes are close codes after which reconnecting cannot help: protocol error, message too
// big, token for another user (docs/client-protocol.md, "Close codes").
var finalCodes = map[int]bool{1002: true, 1009: true, 4003: true}

// ErrClosed is what Err returns after Close.
var ErrClosed = errors.New("realtime client: closed")

// Client receives a user's notifications and keeps connected until Close, the end of its
// context, or a final close code. All callbacks run one at a time, never concurrently, from a
// goroutine New starts, so they may run before New returns: they must not read the variable
// New's result goes to (OnResumeToken gets the resume token for that reason), nor call Close
// (cancel the context instead).
type Client struct {
	o      Options
	d      *Dialer
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	cbMu sync.Mutex // one callback at a time

	mu        sync.Mutex // guards the fields below
	resume    *Resume
	state     State
	transport Transport
	err       error

	tokMu  sync.Mutex
	tok    string
	tokDue time.Time // when to refresh tok; zero: never (no exp)

	// Owned by the run goroutine.
	attempt     int // backoff exponent
	unavailable int // resumes answered resync "unavailable" in a row
}

// New checks o and starts a client that connects in the background until Close or the end of
// ctx. It returns an error only for invalid options.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.Token == nil {
		return nil, errors.New("realtime client: Options.Token is required")
	}
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return nil, fmt.Errorf("realtime client: Options.URL %q: want http(s)://host[:port]", o.URL)
	}
	if len(o.Transports) == 0 {
		o.Transports = []Transport{WebSocket, SSE}
	}
	for _, t := range o.Transports {
		if t != WebSocket && t != SSE {
			return nil, fmt.Errorf("realtime client: unknown transport %q", t)
		}
	}
	if o.MinDelay <= 0 {
		o.MinDelay = 500 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 30 * time.Second
	}
	if o.RefreshLead <= 0 {
		o.RefreshLead = 30 * time.Second
	}
	if o.Dedup <= 0 {
		o.Dedup = 1000
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 30 * time.Second
	}
	c := &Client{o: o, done: make(chan struct{}), state: Disconnected}
	c.d = NewDialer(o.DialOptions)
	c.resume = NewResume(o.Resume, o.Dedup)
	c.ctx, c.cancel = context.WithCancel(ctx)
	go c.run()
	return c, nil
}

// Close ends the client: the open connection is closed with 1000, OnState gets Closed, and
// Close returns once the client's goroutines are done. The resume position stays readable.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	c.mu.Unlock()
	c.cancel()
	<-c.done
	return nil
}

// Done is closed when the client has stopped for good.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped: ErrClosed after Close, the context's error, or a
// *CloseError for a close code after which it does not reconnect; nil while it runs.
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// State returns the current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Transport returns the transport of the current or last connection ("" before the first).
func (c *Client) Transport() Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// Cursor returns the last cursor the server sent ("" before the first).
func (c *Client) Cursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resume.Cursor()
}

// ResumeToken returns the resume token the next connection sends: the last cursor and the IDs
// of the events handled since ("<cursor>~<id>,..."). Read after Close returned, it covers every
// event OnEvent handled: pass it as Options.Resume to resume exactly after a restart of the
// process. To survive a crash, save what OnResumeToken gets instead.
func (c *Client) ResumeToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resume.Token()
}

// emit runs a callback, one at a time.
func (c *Client) emit(f func()) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	f()
}

func (c *Client) onError(err error) {
	if c.o.OnError != nil {
		c.emit(func() { c.o.OnError(err) })
	}
}

func (c *Client) setState(s StateChange) {
	c.mu.Lock()
	c.state = s.State
	if s.Transport != "" {
		c.transport = s.Transport
	}
	c.mu.Unlock()
	if c.o.OnState != nil {
		c.emit(func() { c.o.OnState(s) })
	}
}

func (c *Client) setCursor(cursor string) {
	if cursor == "" {
		return
	}
	c.mu.Lock()
	c.resume.SetCursor(cursor)
	tok := c.resume.Token() // the cursor alone
	c.mu.Unlock()
	if c.o.OnResumeToken != nil {
		c.emit(func() { c.o.OnResumeToken(tok) })
	}
}

// handled adds the ID of an event OnEvent handled to the resume position and gives
// OnResumeToken the new token (none before the first cursor: the token is "" then).
func (c *Client) handled(id string) {
	c.mu.Lock()
	c.resume.Add(id)
	tok := ""
	if c.o.OnResumeToken != nil {
		tok = c.resume.Token()
	}
	c.mu.Unlock()
	if tok != "" {
		c.emit(func() { c.o.OnResumeToken(tok) })
	}
}

// backoff returns the full-jitter delay of the n-th retry in a row: rnd() × min(max, min × 2ⁿ),
// rnd in [0, 1).
func backoff(n int, minD, maxD time.Duration, rnd func() float64) time.Duration {
	d := maxD
	if n < 40 {
		if e := minD << n; e > 0 && e < maxD {
			d = e
		}
	}
	return time.Duration(rnd() * float64(d))
}

// sleep waits d or until the client ends; false when it ended.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// token returns the client token, fetching a new one when fresh, when none is held or when the
// held one is due for refresh.
func (c *Client) token(fresh bool) (string, error) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if fresh || c.tok == "" || !c.tokDue.IsZero() && !time.Now().Before(c.tokDue) {
		t, err := c.o.Token(c.ctx)
		if err != nil {
			return "", fmt.Errorf("realtime client: token: %w", err)
		}
		now := time.Now()
		c.tok, c.tokDue = t, time.Time{}
		if exp := jwtExp(t); !exp.IsZero() {
			c.tokDue = exp.Add(-min(c.o.RefreshLead, exp.Sub(now)/2))
		}
	}
	return c.tok, nil
}

// refreshDue returns when the held token is due for refresh; zero when never.
func (c *Client) refreshDue() time.Time {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	return c.tokDue
}

// jwtExp returns the exp claim of a JWT (RFC 7519 §4.1.4); zero when it has none or is no JWT.
func jwtExp(t string) time.Time {
	parts := strings.Split(t, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(claims.Exp * 1000))
}

// ending is why a connection ended.
type ending struct {
	code      int
	reason    string
	reconnect bool
	now       bool // reconnect without waiting (SSE token refresh)
	err       error
}

func (c *Client) run() {
	defer close(c.done)
	ti, fails, stale := 0, 0, false
	worked := map[Transport]bool{}
	finish := func(e ending) {
		c.mu.Lock()
		if c.err == nil {
			if err := c.ctx.Err(); err != nil {
				c.err = err
			} else {
				c.err = &CloseError{Code: e.code, Reason: e.reason}
			}
		}
		c.mu.Unlock()
		c.setState(StateChange{State: Closed, Transport: c.Transport(), Code: e.code, Reason: e.reason, Err: e.err})
	}
	closedByClient := ending{code: 1000, reason: "closed by the client"}
	for {
		if c.ctx.Err() != nil {
			finish(closedByClient)
			return
		}
		t := c.o.Transports[ti%len(c.o.Transports)]
		c.setState(StateChange{State: Connecting, Transport: t, Attempt: c.attempt})
		wait := func(at time.Duration) bool {
			d := max(backoff(c.attempt, c.o.MinDelay, c.o.MaxDelay, rand.Float64), at)
			c.attempt++
			return c.sleep(d)
		}
		tok, err := c.token(stale)
		if err != nil {
			if c.ctx.Err() != nil {
				continue
			}
			c.onError(err)
			c.setState(StateChange{State: Disconnected, Transport: t, Code: 1006, Reason: err.Error(), Reconnect: true, Err: err})
			wait(0)
			continue
		}
		dctx, cancel := context.WithTimeout(c.ctx, c.d.HandshakeTimeout+time.Second)
		conn, err := c.d.Dial(dctx, t, tok, c.ResumeToken())
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				continue
			}
			// A transport that never opened is left after one failed attempt, one that worked
			// after eight in a row.
			stale = true
			fails++
			if worked[t] && fails >= 8 || !worked[t] {
				ti, fails = ti+1, 0
			}
			code, at := 1006, time.Duration(0)
			var he *HandshakeError
			if errors.As(err, &he) {
				code, at = he.Status, he.RetryAfter
			}
			c.setState(StateChange{State: Disconnected, Transport: t, Code: code, Reason: err.Error(), Reconnect: true, Err: err})
			wait(at)
			continue
		}
		worked[t], fails, stale = true, 0, false
		c.setState(StateChange{State: Connected, Transport: t})
		e := c.serve(conn)
		if e.code == 4001 {
			stale = true // expired: a new token first
		}
		if !e.reconnect || finalCodes[e.code] || c.ctx.Err() != nil {
			finish(e)
			return
		}
		c.setState(StateChange{State: Disconnected, Transport: t, Code: e.code, Reason: e.reason, Reconnect: true, Err: e.err})
		if !e.now {
			wait(0)
		}
	}
}

// serve reads conn until it ends and returns why.
func (c *Client) serve(conn *Conn) ending {
	var (
		mu       sync.Mutex
		ended    *ending
		refreshT *time.Timer
		beatT    *time.Timer
		info     struct {
			Code      int    `json:"code"`
			Reason    string `json:"reason"`
			Reconnect *bool  `json:"reconnect"`
		}
	)
	endWith := func(e ending) {
		mu.Lock()
		if ended == nil {
			ended = &e
		}
		mu.Unlock()
		conn.Close()
	}
	isEnded := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ended != nil
	}
	stopCtx := context.AfterFunc(c.ctx, func() {
		mu.Lock()
		if ended == nil {
			ended = &ending{code: 1000, reason: "closed by the client"}
		}
		mu.Unlock()
		conn.CloseWith(1000, "closed by the client")
	})
	defer stopCtx()

	var refresh func()
	schedule := func(d time.Duration) { // d 0: at the token's refresh time
		due := c.refreshDue()
		if due.IsZero() {
			return
		}
		if d == 0 {
			d = time.Until(due)
		}
		// At least 1 s apart: a Token that keeps returning the same token must not make a
		// refresh loop (the server closes with 4001 at its exp).
		d = max(d, time.Second)
		mu.Lock()
		defer mu.Unlock()
		if ended != nil {
			return
		}
		if refreshT != nil {
			refreshT.Stop()
		}
		refreshT = time.AfterFunc(d, refresh)
	}
	refresh = func() {
		if isEnded() {
			return
		}
		tok, err := c.token(true)
		if err != nil {
			c.onError(err)
			schedule(5 * time.Second)
			return
		}
		if conn.Transport() == SSE {
			endWith(ending{code: 1000, reason: "token refresh", reconnect: true, now: true})
			return
		}
		msg, _ := json.Marshal(map[string]string{"type": "refresh", "token": tok})
		conn.Send(msg) // a failed write ends the read too
	}
	schedule(0)

	beat := c.o.Heartbeat
	var heartbeat func()
	heartbeat = func() {
		idle := time.Since(conn.LastRead())
		if idle > 2*beat {
			endWith(ending{code: 1006, reason: fmt.Sprintf("no frame for %v", idle.Round(time.Millisecond)), reconnect: true})
			return
		}
		if idle > beat {
			conn.Send([]byte(`{"type":"cursor"}`)) // SSE: ErrNoSend; its heartbeats keep it busy
		}
		mu.Lock()
		if ended == nil {
			beatT = time.AfterFunc(beat/2, heartbeat)
		}
		mu.Unlock()
	}
	mu.Lock()
	beatT = time.AfterFunc(beat/2, heartbeat)
	mu.Unlock()

	err := conn.Read(func(data []byte, sseID string) {
		if isEnded() {
			return // frames read ahead after the client decided to end
		}
		f, err := ParseFrame(data, sseID)
		if err != nil {
			c.onError(fmt.Errorf("realtime client: frame %.80q: %w", data, err))
			return
		}
		if f.ID != "" {
			c.mu.Lock()
			dup := c.resume.Seen(f.ID)
			c.mu.Unlock()
			if dup {
				return
			}
			if c.o.OnEvent != nil {
				ev := f.event()
				c.emit(func() { c.o.OnEvent(ev) })
			}
			c.handled(f.ID)
			return
		}
		switch f.Event {
		case "cursor":
			c.attempt, c.unavailable = 0, 0
			c.setCursor(f.Cursor)
		case "resync":
			var r Resync
			json.Unmarshal(f.Data, &r)
			// "unavailable" is passing (a node starting, Kafka out of reach): keep the
			// position and try again, three times, before accepting the gap.
			if r.Reason == "unavailable" && c.unavailable < 3 {
				c.unavailable++
				endWith(ending{code: 1013, reason: "resume unavailable: " + r.Message, reconnect: true})
				return
			}
			c.unavailable = 0
			if f.Cursor != "" {
				c.mu.Lock()
				c.resume.Forget() // a new position: IDs may start over (a topic created again)
				c.mu.Unlock()
			}
			c.setCursor(f.Cursor)
			if c.o.OnResync != nil {
				c.emit(func() { c.o.OnResync(r) })
			}
		case "refreshed":
			schedule(0)
		case "refresh-error":
			var r struct{ Message string }
			json.Unmarshal(f.Data, &r)
			c.onError(fmt.Errorf("realtime client: token refresh refused: %s", r.Message))
			schedule(5 * time.Second)
		case "disconnect":
			json.Unmarshal(f.Data, &info)
		}
	})
	conn.Close()
	mu.Lock()
	defer mu.Unlock()
	if refreshT != nil {
		refreshT.Stop()
	}
	if beatT != nil {
		beatT.Stop()
	}
	if ended == nil {
		ended = &ending{code: 1006, reason: "connection lost", reconnect: true, err: err}
		var ce *CloseError
		switch {
		case info.Code != 0:
			ended.code, ended.reason, ended.err = info.Code, info.Reason, nil
			ended.reconnect = info.Reconnect == nil || *info.Reconnect
		case errors.As(err, &ce):
			ended.code, ended.reason, ended.err = ce.Code, ce.Reason, nil
		case err != nil:
			ended.reason = err.Error()
		}
	}
	return *ended
}
