package stage

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// histograms gathers realtime_stage_seconds from reg by stage.
func histograms(t *testing.T, reg *prometheus.Registry) map[string]*dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Histogram{}
	for _, mf := range mfs {
		if mf.GetName() != "realtime_stage_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetHistogram()
		}
	}
	return out
}

func TestTimerObservesEachStageUnderItsLabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	tm.Observe(ProduceFetch, 3*time.Millisecond)
	tm.Observe(FetchDecode, -time.Second) // clocks of two processes: counted as zero
	tm.Since(DecodePublish, 1_000, 41_000)
	tm.Since(EnqueueWrite, 5_000, 1_000) // negative: zero
	h := histograms(t, reg)
	if len(h) != int(numStages) {
		t.Fatalf("stages exposed: %d, want %d (%v)", len(h), numStages, h)
	}
	cases := []struct {
		stage Stage
		count uint64
		sum   float64
	}{
		{ProduceFetch, 1, 0.003},
		{FetchDecode, 1, 0},
		{DecodePublish, 1, 40e-6},
		{PublishEnqueue, 0, 0},
		{EnqueueWrite, 1, 0},
	}
	for _, c := range cases {
		got := h[c.stage.String()]
		if got.GetSampleCount() != c.count || got.GetSampleSum() < c.sum*0.999 || got.GetSampleSum() > c.sum*1.001 {
			t.Errorf("%s: count %d sum %g, want %d and %g", c.stage, got.GetSampleCount(), got.GetSampleSum(), c.count, c.sum)
		}
	}
	// 40 µs lands in a bucket under 50 µs: the buckets resolve sub-millisecond stages.
	for _, b := range h["decode_publish"].GetBucket() {
		if b.GetUpperBound() < 40e-6 && b.GetCumulativeCount() != 0 {
			t.Errorf("bucket le=%g counts %d, want 0", b.GetUpperBound(), b.GetCumulativeCount())
		}
		if b.GetUpperBound() >= 40e-6 && b.GetUpperBound() < 55e-6 && b.GetCumulativeCount() != 1 {
			t.Errorf("bucket le=%g counts %d, want 1", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

func TestBucketsSpan25MicrosecondsTo5SecondsFinely(t *testing.T) {
	if Buckets[0] != 25e-6 || Buckets[len(Buckets)-1] < 4.999 || Buckets[len(Buckets)-1] > 5.001 {
		t.Fatalf("buckets from %g to %g, want 25e-6 to 5", Buckets[0], Buckets[len(Buckets)-1])
	}
	for i := 1; i < len(Buckets); i++ {
		if r := Buckets[i] / Buckets[i-1]; r > 1.31 {
			t.Fatalf("bucket %d is %.2f times the last, want at most 1.31", i, r)
		}
	}
}

func TestNilTimerObservesNothing(t *testing.T) {
	var tm *Timer
	tm.Observe(ProduceFetch, time.Second)
	tm.Since(EnqueueWrite, 1, 2)
}

func TestNowIsMonotonicAndNeverZero(t *testing.T) {
	a := Now()
	time.Sleep(time.Millisecond)
	b := Now()
	if a == 0 || b-a < int64(time.Millisecond)/2 {
		t.Fatalf("Now: %d then %d after 1 ms", a, b)
	}
	if m := Mono(time.Now()); m < b {
		t.Fatalf("Mono(time.Now()) %d is before Now() %d", m, b)
	}
}

func TestStrideTimesAtMostTwiceSamplesPerEvent(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 31, 32, 100, 1000, 10000} {
		s := Stride(n)
		timed := (n + s - 1) / s
		if s < 1 || timed > 2*SamplesPerEvent || n >= SamplesPerEvent && timed < SamplesPerEvent {
			t.Errorf("Stride(%d) = %d: %d timed, want %d to %d", n, s, timed, SamplesPerEvent, 2*SamplesPerEvent)
		}
	}
}
