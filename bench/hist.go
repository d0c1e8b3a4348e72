package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram of nanosecond values: exact below 64 ns, then 64
// buckets per power of two (relative error under 1.6 %), up to about 18 minutes. It is not safe
// for concurrent use: each connection or worker keeps its own and they are merged at the end.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	sum    float64
	max    int64
}

const (
	histSub     = 64                         // buckets per power of two
	histMaxExp  = 34                         // 64<<34 ns ≈ 18 min
	histBuckets = (histMaxExp + 2) * histSub // exact 0..63, then (exp+1)*64 + mantissa
)

func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 7 // v>>e is in [64, 128)
	if e > histMaxExp {
		return histBuckets - 1
	}
	return (e+1)*histSub + int(v>>e) - histSub
}

// histValue is the middle of bucket i.
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := i/histSub - 1
	lo := int64(histSub+i%histSub) << e
	return lo + (int64(1)<<e)/2
}

func (h *hist) record(v int64) {
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	if o == nil {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q (0..1); the maximum is exact.
func (h *hist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}

// latencySummary is a histogram's percentiles in milliseconds.
type latencySummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *hist) summary() latencySummary {
	ms := func(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }
	s := latencySummary{
		Count: h.n,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(h.max),
	}
	if h.n > 0 {
		s.Mean = h.sum / float64(h.n) / float64(time.Millisecond)
	}
	return s
}
