package main

import (
	"math"
	"testing"
)

func TestStageQuantilesInterpolateWithinTheBucket(t *testing.T) {
	before := map[string]*stageHist{"fetch_decode": {
		le: []float64{0.001, 0.002, 0.004, math.Inf(1)}, cum: []float64{10, 10, 10, 10}, count: 10, sum: 0.005}}
	after := map[string]*stageHist{"fetch_decode": {
		le: []float64{0.001, 0.002, 0.004, math.Inf(1)}, cum: []float64{60, 110, 110, 110}, count: 110, sum: 0.155}}
	got := stagesBetween(before, after)["fetch_decode"]
	// 100 observations in the run: 50 under 1 ms, 50 in (1, 2] ms.
	if got.Count != 100 {
		t.Fatalf("count %v, want 100", got.Count)
	}
	if math.Abs(got.P50-1.0) > 1e-9 {
		t.Errorf("p50 %v ms, want 1 (the top of the first bucket)", got.P50)
	}
	if math.Abs(got.P99-1.98) > 1e-9 {
		t.Errorf("p99 %v ms, want 1.98 (interpolated in (1, 2])", got.P99)
	}
	if math.Abs(got.Mean-1.5) > 1e-9 {
		t.Errorf("mean %v ms, want 1.5", got.Mean)
	}
	if _, ok := stagesBetween(after, after)["fetch_decode"]; ok {
		t.Error("a stage with nothing between the scrapes is summarized")
	}
}
