package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func testScheduler(slots, perUser, queue int) *scheduler {
	return newScheduler(slots, perUser, queue, prometheus.NewGauge(prometheus.GaugeOpts{Name: "w"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"reason"}))
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// queued returns how many replays read or wait.
func (s *scheduler) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, u := range s.users {
		n += u.reading + len(u.waiting)
	}
	return n
}

// checkIdle fails unless s is back to its start: every slot free, no user, no ring.
func checkIdle(t *testing.T, s *scheduler) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free != s.slots || len(s.users) != 0 || len(s.ring) != 0 || value(s.waitingGauge) != 0 {
		t.Errorf("left behind: %d of %d slots free, users %v, ring %v, waiting %v", s.free, s.slots, s.users, s.ring, value(s.waitingGauge))
	}
}

// TestSchedulerOrder: with one slot, replays arriving in the given order (each queued before the
// next arrives) are served in want's order when each releases its slot in turn.
func TestSchedulerOrder(t *testing.T) {
	tests := []struct {
		name     string
		perUser  int
		arrivals string // one letter per replay, its user
		want     string
	}{
		{"another user's resume comes next, not after the burst", 1, "AAAAAB", "ABAAAA"},
		{"round robin over users", 1, "AAABBC", "ABCABA"},
		{"a user under its bound keeps its turn in the ring", 2, "AAAB", "AABA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testScheduler(1, tc.perUser, 100)
			type grant struct {
				user    string
				release func()
			}
			granted := make(chan grant)
			var wg sync.WaitGroup
			for i, u := range tc.arrivals {
				wg.Go(func() {
					release, err := s.acquire(context.Background(), string(u))
					if err != nil {
						t.Error(err)
						return
					}
					granted <- grant{string(u), release}
				})
				for s.queued() != i+1 { // queued (or reading) before the next arrives
					time.Sleep(time.Millisecond)
				}
			}
			var got string
			for range tc.arrivals {
				g := <-granted
				got += g.user
				g.release()
			}
			wg.Wait()
			if got != tc.want {
				t.Errorf("served %s, want %s", got, tc.want)
			}
			checkIdle(t, s)
		})
	}
}

// TestSchedulerBounds: many replays of a few users never read more than perUser at a time per
// user nor slots at a time in all.
func TestSchedulerBounds(t *testing.T) {
	for _, tc := range []struct{ slots, perUser int }{{4, 1}, {3, 2}, {1, 1}} {
		t.Run(fmt.Sprintf("slots=%d,perUser=%d", tc.slots, tc.perUser), func(t *testing.T) {
			s := testScheduler(tc.slots, tc.perUser, 1000)
			var mu sync.Mutex
			reading, peak := map[string]int{}, map[string]int{}
			total, peakTotal := 0, 0
			var wg sync.WaitGroup
			for i := range 200 {
				user := string(rune('A' + i%5))
				wg.Go(func() {
					release, err := s.acquire(context.Background(), user)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					reading[user]++
					total++
					peak[user], peakTotal = max(peak[user], reading[user]), max(peakTotal, total)
					mu.Unlock()
					time.Sleep(100 * time.Microsecond)
					mu.Lock()
					reading[user]--
					total--
					mu.Unlock()
					release()
				})
			}
			wg.Wait()
			for u, p := range peak {
				if p > tc.perUser {
					t.Errorf("user %s read %d at a time, want at most %d", u, p, tc.perUser)
				}
			}
			if peakTotal > tc.slots {
				t.Errorf("%d reads at a time, want at most %d", peakTotal, tc.slots)
			}
			checkIdle(t, s)
		})
	}
}

// TestSchedulerPerUser: a user at its bound waits even while node-wide slots are free.
func TestSchedulerPerUser(t *testing.T) {
	s := testScheduler(2, 1, 8)
	release, err := s.acquire(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if r, err := s.acquire(done, "A"); !errors.Is(err, context.Canceled) {
		t.Errorf("second read of A with a slot free: %v, want to wait (context.Canceled)", err)
		if err == nil {
			r()
		}
	}
	rb, err := s.acquire(done, "B") // another user takes the free slot at once, even with ctx done
	if err != nil {
		t.Errorf("B with a slot free: %v", err)
	} else {
		rb()
	}
	release()
	checkIdle(t, s)
}

// TestSchedulerRefusals: past the user's queue bound a replay is refused at once (another
// user is not); a waiter whose context ends leaves nothing behind.
func TestSchedulerRefusals(t *testing.T) {
	s := testScheduler(1, 1, 2)
	release, err := s.acquire(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	for _, u := range []string{"A", "A", "B"} {
		go func() {
			r, err := s.acquire(ctx, u)
			if err == nil {
				r()
			}
			errs <- err
		}()
	}
	for s.queued() != 4 {
		time.Sleep(time.Millisecond)
	}
	bounded, stop := context.WithTimeout(context.Background(), 10*time.Second) // a mutant must not hang
	defer stop()
	if _, err := s.acquire(bounded, "A"); !errors.Is(err, errUserQueueFull) {
		t.Errorf("third waiting replay of A: %v, want errUserQueueFull", err)
	}
	if got := value(s.refused.WithLabelValues(refusedUserQueue)); got != 1 {
		t.Errorf("refused{user-queue-full}: %v, want 1", got)
	}
	if got := value(s.waitingGauge); got != 3 {
		t.Errorf("waiting: %v, want 3", got)
	}
	cancel()
	var got []error
	for range 3 {
		got = append(got, <-errs)
	}
	if slices.ContainsFunc(got, func(err error) bool { return !errors.Is(err, context.Canceled) }) {
		t.Errorf("canceled waiters returned %v", got)
	}
	if got := value(s.refused.WithLabelValues(refusedTimeout)); got != 3 {
		t.Errorf("refused{timeout}: %v, want 3", got)
	}
	release()
	checkIdle(t, s)
}
