// Package stage times a record's way through the node, stage by stage, into the histogram
// realtime_stage_seconds{stage} (docs/operations.md, "What the metrics mean"), so that a latency
// figure can be split into where the record waited: in Kafka, in decoding, before the hub, in
// the fan-out, or in a connection's queue.
//
// The stages follow one record (the end-to-end latency is their sum plus the client's read):
//
//	produce_fetch    the record's timestamp (the producer's wall clock, Kafka CreateTime) to the
//	                 poll that returned it to the consumer; includes the broker and the client's
//	                 fetch buffer
//	fetch_decode     that poll to the record decoded and validated (the records ahead of it in
//	                 the same poll included)
//	decode_publish   decoded to the hub holding its publish lock (Hub.Publish's lock wait)
//	publish_enqueue  the publish lock held to the frame queued on a connection (per delivery)
//	enqueue_write    queued to written to the connection's socket (per delivery): the wake of
//	                 the connection's writer and the frames written before it
//
// Per-delivery stages (publish_enqueue, enqueue_write) are sampled at fan-out: at most
// SamplesPerEvent deliveries of one event, spread evenly over its recipients.
package stage

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stage is one step of a record's way through the node (see the package doc).
type Stage uint8

// The stages, in the order a record goes through them.
const (
	ProduceFetch Stage = iota
	FetchDecode
	DecodePublish
	PublishEnqueue
	EnqueueWrite
	numStages
)

var names = [numStages]string{"produce_fetch", "fetch_decode", "decode_publish", "publish_enqueue", "enqueue_write"}

// String is the stage's label value in realtime_stage_seconds.
func (s Stage) String() string { return names[s] }

// Names are the label values of realtime_stage_seconds, in stage order.
func Names() []string { return names[:] }

// SamplesPerEvent is how many deliveries of one event at least get their per-delivery stages
// timed (all of them below it), at most twice as many: an event to n recipients times every
// Stride(n)-th delivery. Timing each costs two clock reads and two observations, which at
// fan-out is measurable: BenchmarkPublishTo1000UsersStages (internal/realtime) took 1.01 ms an
// event timing every delivery, 0.87 ms sampled, 0.84 ms untimed (median of 5 on the 2-core
// machine); to one user the three stages cost about 0.15 µs a record.
const SamplesPerEvent = 16

// Buckets are the histogram's upper bounds in seconds: 48 buckets from 25 µs to 5 s, each about
// 1.3 times the last, so that quantiles of sub-millisecond stages read within 30 %.
var Buckets = prometheus.ExponentialBucketsRange(25e-6, 5, 48)

// Timer observes stage durations. A nil *Timer observes nothing and costs one comparison.
type Timer struct {
	obs [numStages]prometheus.Observer
}

// New registers realtime_stage_seconds{stage} on reg (nil: kept but not exposed) and returns a
// Timer observing into it. The only error is a registration conflict.
func New(reg prometheus.Registerer) (*Timer, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "realtime_stage_seconds",
		Help:    "Time a record spends in each stage on its way to a client, in seconds: produce_fetch (record timestamp to the consumer's poll), fetch_decode, decode_publish, publish_enqueue and enqueue_write (the last two per delivery, sampled at fan-out). See docs/operations.md.",
		Buckets: Buckets,
	}, []string{"stage"})
	if reg != nil {
		if err := reg.Register(h); err != nil {
			return nil, err
		}
	}
	t := &Timer{}
	for s := range numStages {
		t.obs[s] = h.WithLabelValues(names[s])
	}
	return t, nil
}

// Observe records that a record spent d in stage s; a negative d (clocks of two processes, a
// record timestamp in the future) counts as zero.
func (t *Timer) Observe(s Stage, d time.Duration) {
	if t == nil {
		return
	}
	t.obs[s].Observe(max(d, 0).Seconds())
}

// Since records the time from from (a Now reading) to to (another) in stage s.
func (t *Timer) Since(s Stage, from, to int64) {
	if t == nil {
		return
	}
	t.obs[s].Observe(max(float64(to-from), 0) / 1e9)
}

// epoch is the reading Now counts from.
var epoch = time.Now()

// Now is a monotonic clock reading in nanoseconds (since the process started): 8 bytes to keep
// beside a queued frame, and one subtraction to time a stage. Never 0 (0 means "not timed").
func Now() int64 { return int64(time.Since(epoch)) | 1 }

// Mono is t (a time.Now reading, which carries the monotonic clock) as a Now reading.
func Mono(t time.Time) int64 { return int64(t.Sub(epoch)) | 1 }

// Stride is how many deliveries of an event to n recipients apart two timed ones are (see
// SamplesPerEvent): 1 up to 2*SamplesPerEvent recipients.
func Stride(n int) int { return max(1, n/SamplesPerEvent) }
