// Package health runs named health checks and reports them in the shape of NestJS Terminus, which
// the original service used (docs/http-api.md, "Health and metrics"):
//
//	{"status":"ok|error",
//	 "info":   {<name>: {"status":"up", ...details}},            the checks that are up (or degraded)
//	 "error":  {<name>: {"status":"down", ...details, "message"}}, the checks that are down
//	 "details":{<name>: {...}}}                                    every check
//
// A check may also be degraded: it works, less well than it should (an identity provider is
// unreachable but its cached keys still verify tokens). It is listed under "info" with
// "status":"degraded" and a "message", and leaves the overall status "ok" and readiness alone, so
// that clients of the Terminus shape, which look at the top-level "status", are not misled.
//
// A Checker answers three questions: is everything healthy (Check, for GET /health), may this
// node take traffic (Ready, for GET /health/ready: the required checks pass and shutdown has not
// begun, so load balancers drain a stopping node), and is the process alive (Live, for
// GET /health/live: always yes while it can answer).
package health

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Overall and per-check status values, as Terminus spells them.
const (
	StatusOK    = "ok"    // Result.Status: every check reported is up
	StatusError = "error" // Result.Status: at least one check reported is down
	StatusUp    = "up"    // a check's "status": it passed
	StatusDown  = "down"  // a check's "status": it failed, timed out or panicked
	// StatusDegraded is a check's "status" when it returned an error made by Degraded: it works
	// in a reduced way. It counts as up for Result.Status and for readiness.
	StatusDegraded = "degraded"
)

// Degraded wraps err so that a Check returning it is reported "degraded" rather than "down",
// with err's text as its "message". Degraded(nil) is nil.
func Degraded(err error) error {
	if err == nil {
		return nil
	}
	return &degradedError{err}
}

type degradedError struct{ err error }

func (e *degradedError) Error() string { return e.err.Error() }
func (e *degradedError) Unwrap() error { return e.err }

// ShutdownCheck is the name under which Ready reports a node that is shutting down:
// "shutdown": {"status":"down","message":"shutting down"}.
const ShutdownCheck = "shutdown"

// DefaultTimeout bounds each check when New is given zero.
const DefaultTimeout = 5 * time.Second

// Check probes one dependency. It returns details to report with the check's status (nil is
// fine; the keys "status" and "message" are reserved and overwritten) and a non-nil error when the
// dependency is unhealthy, whose text becomes the check's "message" (an error made by Degraded
// reports the check "degraded" instead of "down"). A Check should return soon
// after ctx is done; one that does not is still reported down when its time is up.
type Check func(ctx context.Context) (map[string]any, error)

// Result is one health report in the Terminus shape. Info, Error and Details are never nil, so
// they encode as {} when empty. Each per-check map holds "status" ("up", "degraded" or "down"),
// the check's details and, when degraded or down, "message".
type Result struct {
	Status  string                    `json:"status"`
	Info    map[string]map[string]any `json:"info"`
	Error   map[string]map[string]any `json:"error"`
	Details map[string]map[string]any `json:"details"`
}

// OK reports whether Status is "ok": HTTP 200 rather than 503.
func (r Result) OK() bool { return r.Status == StatusOK }

// Checker holds named checks and runs them concurrently, each bounded by a timeout. Checks may be
// added at any time; all methods are safe for concurrent use. The zero value is not usable: use New.
type Checker struct {
	timeout      time.Duration
	shuttingDown atomic.Bool

	mu     sync.RWMutex
	checks []*entry // in the order added
}

// entry is one named check. Concurrent callers share one run of it (see run), so that a check
// that hangs despite its context costs one goroutine, not one per probe.
type entry struct {
	name     string
	required bool
	check    Check

	mu       sync.Mutex
	inflight *call
}

// call is one run of a check; done is closed once details and err are set.
type call struct {
	done    chan struct{}
	details map[string]any
	err     error
}

// New returns a Checker with no checks whose checks are each bounded by timeout (zero means
// DefaultTimeout, 5s).
func New(timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Checker{timeout: timeout}
}

// Add adds an informational check: it is reported by Check (GET /health) but does not gate
// readiness. It panics if name is empty, is "shutdown" or is already taken, or if check is nil:
// those are wiring mistakes, found at start-up.
func (c *Checker) Add(name string, check Check) { c.add(name, check, false) }

// Require adds a required check: reported by Check and by Ready, and while it fails the node is
// not ready. It panics like Add.
func (c *Checker) Require(name string, check Check) { c.add(name, check, true) }

func (c *Checker) add(name string, check Check, required bool) {
	if name == "" || name == ShutdownCheck || check == nil {
		panic(fmt.Sprintf("health: invalid check %q (empty or reserved name, or nil check)", name))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.checks {
		if e.name == name {
			panic(fmt.Sprintf("health: check %q added twice", name))
		}
	}
	c.checks = append(c.checks, &entry{name: name, required: required, check: check})
}

// SetShuttingDown marks the start of shutdown: from now on Ready reports "error" (HTTP 503) so
// that load balancers stop sending new traffic while connections drain. It cannot be undone.
func (c *Checker) SetShuttingDown() { c.shuttingDown.Store(true) }

// ShuttingDown reports whether SetShuttingDown was called.
func (c *Checker) ShuttingDown() bool { return c.shuttingDown.Load() }

// Check runs every check concurrently and reports them all. It returns within the Checker's
// timeout (plus scheduling) whatever the checks do; a check still running then is down with
// "timed out after <timeout>". Status is "ok" when every check is up (or there are none).
func (c *Checker) Check(ctx context.Context) Result {
	return c.run(ctx, c.snapshot(false))
}

// Ready reports whether this node may take traffic: "ok" when every required check is up and
// shutdown has not begun. Only the required checks are run and reported. Once SetShuttingDown was
// called it runs no check and reports the single down entry "shutdown".
func (c *Checker) Ready(ctx context.Context) Result {
	if c.ShuttingDown() {
		r := newResult()
		r.add(ShutdownCheck, map[string]any{"status": StatusDown, "message": "shutting down"})
		return r
	}
	return c.run(ctx, c.snapshot(true))
}

// Live reports that the process is alive and serving: always "ok" with no checks, also while
// shutting down (a draining node must not be restarted).
func (c *Checker) Live() Result { return newResult() }

func (c *Checker) snapshot(requiredOnly bool) []*entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*entry, 0, len(c.checks))
	for _, e := range c.checks {
		if e.required || !requiredOnly {
			out = append(out, e)
		}
	}
	return out
}

func (c *Checker) run(ctx context.Context, entries []*entry) Result {
	type outcome struct {
		name   string
		report map[string]any
	}
	results := make(chan outcome, len(entries))
	for _, e := range entries {
		go func() {
			results <- outcome{e.name, e.probe(ctx, c.timeout)}
		}()
	}
	r := newResult()
	for range entries {
		o := <-results
		r.add(o.name, o.report)
	}
	return r
}

// errTimedOut is the cause of a probe's context when the Checker's timeout ran out.
var errTimedOut = errors.New("health check timed out")

// probe runs the check, or joins the run already in flight, and waits for it at most timeout. It
// returns the check's report: its details plus "status" and, when down, "message".
func (e *entry) probe(ctx context.Context, timeout time.Duration) map[string]any {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()

	cl := e.start(ctx, timeout)
	select {
	case <-cl.done:
		return report(cl.details, cl.err)
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), errTimedOut) {
			return report(nil, fmt.Errorf("timed out after %s", timeout))
		}
		return report(nil, fmt.Errorf("not completed: %w", context.Cause(ctx)))
	}
}

// start returns the run of the check in flight, starting one if there is none. A run belongs to
// no single caller, so it is not cancelled when the caller that started it gives up; it has its
// own deadline of timeout and keeps ctx's values.
func (e *entry) start(ctx context.Context, timeout time.Duration) *call {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inflight != nil {
		return e.inflight
	}
	cl := &call{done: make(chan struct{})}
	e.inflight = cl
	runCtx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), timeout, errTimedOut)
	go func() {
		defer cancel()
		defer func() {
			if p := recover(); p != nil {
				cl.details, cl.err = nil, fmt.Errorf("check panicked: %v", p)
			}
			e.mu.Lock()
			e.inflight = nil
			e.mu.Unlock()
			close(cl.done)
		}()
		cl.details, cl.err = e.check(runCtx)
	}()
	return cl
}

// report builds a check's entry from its details and error, without changing details.
func report(details map[string]any, err error) map[string]any {
	out := make(map[string]any, len(details)+2)
	maps.Copy(out, details)
	delete(out, "message")
	var degraded *degradedError
	switch {
	case errors.As(err, &degraded):
		out["status"] = StatusDegraded
		out["message"] = err.Error()
	case err != nil:
		out["status"] = StatusDown
		out["message"] = err.Error()
	default:
		out["status"] = StatusUp
	}
	return out
}

func newResult() Result {
	return Result{
		Status:  StatusOK,
		Info:    map[string]map[string]any{},
		Error:   map[string]map[string]any{},
		Details: map[string]map[string]any{},
	}
}

// add files one check's report under info or error, and under details.
func (r *Result) add(name string, rep map[string]any) {
	r.Details[name] = rep
	if rep["status"] == StatusUp || rep["status"] == StatusDegraded {
		r.Info[name] = rep
		return
	}
	r.Error[name] = rep
	r.Status = StatusError
}
