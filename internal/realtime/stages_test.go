package realtime

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/realtime-service/realtime-service/internal/stage"
)

// gated is a transport whose writes wait for open.
type gated struct {
	discard
	open chan struct{}
}

func (g *gated) WriteFrames(f [][]byte) error {
	<-g.open
	return g.discard.WriteFrames(f)
}

// stagesHub is a hub timing its stages into a registry of its own.
func stagesHub(t *testing.T) (*Hub, func(stage.Stage) *dto.Histogram) {
	t.Helper()
	reg := prometheus.NewRegistry()
	st, err := stage.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(HubConfig{Stages: st, Batched: true})
	return h, func(s stage.Stage) *dto.Histogram {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "realtime_stage_seconds" && m.GetLabel()[0].GetValue() == s.String() {
					return m.GetHistogram()
				}
			}
		}
		t.Fatalf("no realtime_stage_seconds{stage=%q}", s)
		return nil
	}
}

func TestStagesTimeADeliveryFromDecodeToTheSocket(t *testing.T) {
	h, stageOf := stagesHub(t)
	tr := &gated{open: make(chan struct{})}
	register(t, h, "u1", tr)

	const decodeWait, writeWait = 5 * time.Millisecond, 20 * time.Millisecond
	h.PublishDecoded(event("t", 0, 0, "u1"), time.Now().Add(-decodeWait))
	h.Flush() // the writer starts, and waits at the gate
	if got := stageOf(stage.DecodePublish); got.GetSampleCount() != 1 || got.GetSampleSum() < decodeWait.Seconds() {
		t.Errorf("decode_publish: count %d sum %gs, want 1 and >= %v", got.GetSampleCount(), got.GetSampleSum(), decodeWait)
	}
	if got := stageOf(stage.PublishEnqueue); got.GetSampleCount() != 1 {
		t.Errorf("publish_enqueue: count %d, want 1", got.GetSampleCount())
	}
	time.Sleep(writeWait)
	if got := stageOf(stage.EnqueueWrite); got.GetSampleCount() != 0 {
		t.Fatalf("enqueue_write counted %d before the frame was written", got.GetSampleCount())
	}
	close(tr.open)
	waitFor(t, "the frame written and timed", func() bool { return stageOf(stage.EnqueueWrite).GetSampleCount() == 1 })
	if got := stageOf(stage.EnqueueWrite); got.GetSampleSum() < writeWait.Seconds() {
		t.Errorf("enqueue_write: %gs, want >= %v (the writer waited that long)", got.GetSampleSum(), writeWait)
	}

	// Publish without a decode time: the hub's own stages only.
	h.Publish(event("t", 0, 1, "u1"))
	h.Flush()
	waitFor(t, "the second frame timed", func() bool { return stageOf(stage.EnqueueWrite).GetSampleCount() == 2 })
	if got := stageOf(stage.DecodePublish).GetSampleCount(); got != 1 {
		t.Errorf("decode_publish counted %d, want still 1 (no decode time given)", got)
	}
}

func TestStagesSampleTheDeliveriesOfAFanOut(t *testing.T) {
	h, stageOf := stagesHub(t)
	const users = 500
	ids := make([]string, users)
	tr := &discard{}
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%d", i)
		register(t, h, ids[i], tr)
	}
	h.PublishDecoded(event("t", 0, 0, ids...), time.Now())
	h.Flush()
	waitFor(t, "every frame written", func() bool { return tr.frames.Load() == users })
	timed := stageOf(stage.PublishEnqueue).GetSampleCount()
	if timed < stage.SamplesPerEvent || timed > 2*stage.SamplesPerEvent {
		t.Fatalf("publish_enqueue timed %d of %d deliveries, want %d to %d", timed, users, stage.SamplesPerEvent, 2*stage.SamplesPerEvent)
	}
	waitFor(t, "every timed frame's write timed", func() bool { return stageOf(stage.EnqueueWrite).GetSampleCount() == timed })
}
