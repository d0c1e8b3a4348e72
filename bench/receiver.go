package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// plan is what a delivery run sends: total records, record seq naming fanout consecutive users
// (mod users) starting at seq*fanout. Receivers derive from it, without shared state, whether a
// record was meant for them.
type plan struct {
	run    string // run ID in the records' "bench" field
	users  int
	fanout int
	total  int64
	base   time.Time // send times are nanoseconds since base (monotonic)
}

// named reports whether record seq names user u.
func (p *plan) named(seq int64, u int) bool {
	start := int((seq * int64(p.fanout)) % int64(p.users))
	d := (u - start + p.users) % p.users
	return d < p.fanout
}

// recipients returns the users record seq names.
func (p *plan) recipients(seq int64) (start, n int) {
	return int((seq * int64(p.fanout)) % int64(p.users)), p.fanout
}

func (p *plan) now() int64 { return int64(time.Since(p.base)) }

// receiver is one connection's view of a delivery run: which records arrived, once or more, for
// the right user or not, and how long after they were produced.
type receiver struct {
	user   int
	plan   *plan
	prefix []byte // `<run>.`
	seen   []uint64
	h      *hist

	uniq    atomic.Int64
	last    atomic.Int64 // send-base ns of the last unique delivery
	probe   atomic.Bool  // a probe record of this run arrived
	closing atomic.Bool  // set before this tool closes the connection

	// Written by the reading goroutine only; read after it is done.
	dup, misrouted, foreign, control int64
	done                             chan struct{}
	endErr                           error // why the connection ended before this tool closed it
}

var benchKey = []byte(`"bench":"`)

func newReceiver(p *plan, user int) *receiver {
	return &receiver{
		user:   user,
		plan:   p,
		prefix: []byte(p.run + "."),
		seen:   make([]uint64, (p.total+63)/64),
		h:      new(hist),
		done:   make(chan struct{}),
	}
}

// onFrame accounts for one frame: `..."bench":"<run>.<seq>.<sent>"...` or `"<run>.p<n>"` for
// a probe. Frames without the field are control frames (resync, disconnect).
func (r *receiver) onFrame(b []byte) {
	now := r.plan.now()
	i := bytes.Index(b, benchKey)
	if i < 0 {
		r.control++
		return
	}
	rest := b[i+len(benchKey):]
	if !bytes.HasPrefix(rest, r.prefix) {
		r.foreign++
		return
	}
	rest = rest[len(r.prefix):]
	if len(rest) > 0 && rest[0] == 'p' {
		r.probe.Store(true)
		return
	}
	seq, rest, ok1 := parseInt(rest)
	if !ok1 || len(rest) == 0 || rest[0] != '.' {
		r.foreign++
		return
	}
	sent, _, ok2 := parseInt(rest[1:])
	if !ok2 || seq < 0 || seq >= r.plan.total {
		r.foreign++
		return
	}
	if !r.plan.named(seq, r.user) {
		r.misrouted++
		return
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	if r.seen[w]&bit != 0 {
		r.dup++
		return
	}
	r.seen[w] |= bit
	r.h.record(now - sent)
	r.last.Store(now)
	r.uniq.Add(1)
}

// parseInt parses leading decimal digits.
func parseInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	return n, b[i:], i > 0
}

// serve reads fc until it ends; the reason is kept in endErr unless this tool closed it.
func (r *receiver) serve(fc frameConn) {
	defer close(r.done)
	if err := fc.read(r.onFrame); !r.closing.Load() {
		r.endErr = err
	}
}

// stop closes fc (served by r) and waits for its reader.
func (r *receiver) stop(fc frameConn) {
	r.closing.Store(true)
	fc.close()
	<-r.done
}

// connectAll opens one connection per token, parallel at a time, retrying each up to 3 times;
// start is called with each open connection. It returns the number of failed connections and
// the first error.
func connectAll(ctx context.Context, d *dialer, toks []string, parallel int, start func(i int, fc frameConn)) (int, error) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	for i, tok := range toks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return len(toks) - i + int(failed.Load()), context.Cause(ctx)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				var fc frameConn
				if fc, err = d.dial(ctx, tok, ""); err == nil {
					start(i, fc)
					return
				}
				if ctx.Err() != nil {
					break
				}
				time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
			}
			failed.Add(1)
			err = fmt.Errorf("connection %d: %w", i, err)
			firstErr.CompareAndSwap(nil, &err)
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return int(failed.Load()), *e
	}
	return 0, nil
}
