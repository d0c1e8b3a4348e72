package replay

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// errUserQueueFull is what acquire returns at once when the user already has as many replays
// waiting as allowed.
var errUserQueueFull = errors.New("replay: too many resumes of this user are waiting")

// The reasons of realtime_replay_refused_total.
const (
	refusedUserQueue = "user-queue-full" // the user's waiting replays were at the bound
	refusedTimeout   = "timeout"         // no slot came within the replay's timeout
)

// scheduler hands out the slots of concurrent Kafka reads: at most slots at a time node-wide,
// at most perUser at a time per user, and at most queue replays of one user waiting (more are
// refused at once: a refusal costs nothing, a queued replay holds a goroutine and a client).
// When a slot frees it goes to the next user with a waiting replay in round-robin order over
// users (each user's own replays in arrival order), so that one user's burst of resumes
// delays another user's by at most one read per user ahead of it, not by the whole burst.
// Safe for concurrent use.
type scheduler struct {
	slots, perUser, queue int
	waitingGauge          prometheus.Gauge
	refused               *prometheus.CounterVec

	mu    sync.Mutex
	free  int
	users map[string]*userSlots // users reading or waiting; no entry for the others
	ring  []string              // users that may be served now (waiting, under perUser), in turn order
}

// userSlots is one user's share.
type userSlots struct {
	reading int
	waiting []*waiter // in arrival order
	inRing  bool
}

// waiter is one replay waiting for a slot; ready is closed when the slot is its.
type waiter struct {
	ready   chan struct{}
	granted bool // set with ready closed, under the scheduler's lock
}

func newScheduler(slots, perUser, queue int, waiting prometheus.Gauge, refused *prometheus.CounterVec) *scheduler {
	return &scheduler{slots: slots, perUser: perUser, queue: queue, waitingGauge: waiting, refused: refused,
		free: slots, users: map[string]*userSlots{}}
}

// acquire returns once user holds a slot, with the function that gives it back (call it once).
// Errors: errUserQueueFull at once when queue replays of user already wait; ctx's error when
// ctx ends first.
func (s *scheduler) acquire(ctx context.Context, user string) (release func(), err error) {
	s.mu.Lock()
	u := s.users[user]
	if u == nil {
		u = &userSlots{}
		s.users[user] = u
	}
	release = func() { s.release(user) }
	if s.free > 0 && u.reading < s.perUser && len(u.waiting) == 0 {
		s.free--
		u.reading++
		s.mu.Unlock()
		return release, nil
	}
	if len(u.waiting) >= s.queue {
		s.mu.Unlock()
		s.refused.WithLabelValues(refusedUserQueue).Inc()
		return nil, errUserQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	u.waiting = append(u.waiting, w)
	s.waitingGauge.Inc()
	s.enqueue(user, u)
	s.mu.Unlock()

	select {
	case <-w.ready:
		return release, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if w.granted { // the slot came as ctx ended: give it on
		s.mu.Unlock()
		release()
	} else {
		u.waiting = slices.DeleteFunc(u.waiting, func(x *waiter) bool { return x == w })
		s.waitingGauge.Dec()
		if len(u.waiting) == 0 && u.inRing {
			s.ring = slices.DeleteFunc(s.ring, func(x string) bool { return x == user })
			u.inRing = false
		}
		s.forget(user, u)
		s.mu.Unlock()
	}
	s.refused.WithLabelValues(refusedTimeout).Inc()
	return nil, ctx.Err()
}

// release gives user's slot back and hands it on.
func (s *scheduler) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	u.reading--
	s.free++
	s.enqueue(user, u)
	for s.free > 0 && len(s.ring) > 0 {
		name := s.ring[0]
		s.ring = s.ring[1:]
		next := s.users[name]
		next.inRing = false
		w := next.waiting[0]
		next.waiting = next.waiting[1:]
		w.granted = true
		close(w.ready)
		s.waitingGauge.Dec()
		next.reading++
		s.free--
		s.enqueue(name, next) // at the back: the others' turn first
	}
	s.forget(user, u)
}

// enqueue puts user at the back of the ring if it may be served and is not in it yet.
func (s *scheduler) enqueue(user string, u *userSlots) {
	if !u.inRing && len(u.waiting) > 0 && u.reading < s.perUser {
		u.inRing = true
		s.ring = append(s.ring, user)
	}
}

// forget drops user's entry once it neither reads nor waits.
func (s *scheduler) forget(user string, u *userSlots) {
	if u.reading == 0 && len(u.waiting) == 0 && !u.inRing {
		delete(s.users, user)
	}
}
