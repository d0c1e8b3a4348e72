package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/realtime-service/realtime-service/internal/notification"
)

// BenchmarkPoisonBurst measures what a burst of poison records costs the valid records around
// it, on the embedded broker: a producer writes a valid record to one partition every 2 ms for
// 3 s, and 0.5 s in, `poison` poison records at once to the same partition. It reports the
// latency of the valid records (from their produce timestamp to their hand-off, ms) at p50,
// p99 and max. Run it with -benchtime=1x; compare poison=0 and poison=20000.
func BenchmarkPoisonBurst(b *testing.B) {
	for _, poison := range []int{0, 20000} {
		b.Run(fmt.Sprintf("poison=%d", poison), func(b *testing.B) {
			for range b.N {
				lat := poisonBurst(b, poison)
				slices.Sort(lat)
				q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))]) / 1e6 }
				b.ReportMetric(q(0.5), "p50-ms")
				b.ReportMetric(q(0.99), "p99-ms")
				b.ReportMetric(q(1), "max-ms")
			}
		})
	}
}

func poisonBurst(b *testing.B, poison int) []time.Duration {
	cfg := testConfig(b)
	cfg.RequestTimeout = 20 * time.Second
	br := startBroker(b, cfg)
	prod := rawClient(b, br.Addr(), kgo.ProducerLinger(0))
	var (
		mu      sync.Mutex
		lat     []time.Duration
		ready   = make(chan struct{})
		readyMu sync.Once
	)
	const valid = 1500
	cc := ConsumerConfig{
		Handler: func(_ context.Context, rec *kgo.Record) error {
			if strings.HasPrefix(string(rec.Value), "x") {
				return &notification.DecodeError{Code: "invalid-json", Detail: "bench"}
			}
			mu.Lock()
			lat = append(lat, time.Since(rec.Timestamp))
			mu.Unlock()
			return nil
		},
		Assigned: func(map[string]map[int32]int64) { readyMu.Do(func() { close(ready) }) },
	}
	_, stop := runConsumer(b, cfg, br.Addr(), cc, nil)
	defer stop()
	<-ready
	b.ResetTimer()
	bad := []byte("x" + strings.Repeat(`{"sessionId":"s","userIds":["u1"],"message":`, 3))
	var wg sync.WaitGroup
	for i := range valid {
		if i == 250 && poison > 0 {
			for range poison {
				wg.Add(1)
				prod.Produce(context.Background(), &kgo.Record{Topic: notification.TopicSessions, Partition: 0, Value: bad},
					func(_ *kgo.Record, err error) {
						if err != nil {
							b.Error(err)
						}
						wg.Done()
					})
			}
		}
		wg.Add(1)
		prod.Produce(context.Background(), &kgo.Record{Topic: notification.TopicSessions, Partition: 0, Value: []byte("ok")},
			func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	eventually(b, "every valid record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lat) == valid
	})
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(lat)
}
