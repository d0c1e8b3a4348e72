package replay

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/kafka"
	"github.com/realtime-service/realtime-service/internal/notification"
	"github.com/realtime-service/realtime-service/internal/realtime"
)

// slowSource serves any range, each read taking 30 ms (a Kafka read of a resume).
type slowSource struct{}

func (slowSource) Offsets(context.Context, []string) (map[string]map[int32]kafka.PartitionOffsets, error) {
	return map[string]map[int32]kafka.PartitionOffsets{topic: {0: {Start: 0, End: 10}}}, nil
}

func (slowSource) Read(context.Context, map[string]map[int32]int64, map[string]map[int32]int64, func(*kgo.Record) bool) error {
	time.Sleep(30 * time.Millisecond)
	return nil
}

// BenchmarkReplayFairness measures one user's resume while another user resumes `burst` times
// at once (each read 30 ms, default bounds): it reports the victim's resume time in ms. Run with
// -benchtime=1x; compare burst=0 (unloaded) and burst=100.
func BenchmarkReplayFairness(b *testing.B) {
	for _, burst := range []int{0, 100} {
		b.Run(map[int]string{0: "burst=0", 100: "burst=100"}[burst], func(b *testing.B) {
			k, err := New(slowSource{}, notification.NewDecoder(notification.NewValidator(), map[string]string{topic: "concept-mastered"}), Config{})
			if err != nil {
				b.Fatal(err)
			}
			from := []realtime.Position{{Topic: topic, Partition: 0, Offset: 2}}
			to := []realtime.Position{{Topic: topic, Partition: 0, Offset: 10}}
			var lat []time.Duration
			for range b.N {
				var wg sync.WaitGroup
				for range burst {
					wg.Go(func() { _, _ = k.Replay(context.Background(), "noisy", from, to) })
				}
				time.Sleep(5 * time.Millisecond) // the burst is queued
				start := time.Now()
				if _, err := k.Replay(context.Background(), "victim", from, to); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				wg.Wait()
			}
			b.ReportMetric(float64(slices.Max(lat))/1e6, "victim-ms")
		})
	}
}
