package bus_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/testing/rediskit"
)

// BenchmarkDeliveryLatency measures the time from the start of a create on A
// (its durable commit included) to the created event on B, through Redis,
// with creates paced at a target rate over 10 users that B watches. It
// reports the p50 and p99 latencies and the rate achieved.
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, rate := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			benchLatency(b, rate)
		})
	}
}

func benchLatency(b *testing.B, rate int) {
	srv := rediskit.Start(b)
	a := newNode(b, srv, "A", nil)
	r := newNode(b, srv, "B", nil)
	a.waitReady()
	r.waitReady()
	users := make([]string, 10)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		r.open(users[i])
	}
	waitFor(b, "B subscribed", func() error {
		for _, u := range users {
			if srv.NumSub(b, "notifications:"+u) < 1 {
				return errNotYet
			}
		}
		return nil
	})

	var mu sync.Mutex
	sent := make(map[string]time.Time, b.N)
	var lat []time.Duration
	tap := func(evs []notification.Event) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			if ev.Kind == notification.KindCreated {
				if t0, ok := sent[ev.Notification.Title]; ok {
					lat = append(lat, now.Sub(t0))
				}
			}
		}
	}
	r.tap.Store(&tap)

	interval := time.Second / time.Duration(rate)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	next := start
	for i := range b.N {
		if d := time.Until(next); d > 0 {
			time.Sleep(d) // pacing the load, not synchronising
		}
		next = next.Add(interval)
		title := fmt.Sprintf("probe %d", i)
		mu.Lock()
		sent[title] = time.Now()
		mu.Unlock()
		_, err := a.store.Create(ctx, []notification.Draft{{
			UserID: users[i%len(users)], Type: "bench", Title: title,
		}})
		if err != nil {
			b.Fatalf("create: %v", err)
		}
	}
	achieved := float64(b.N) / time.Since(start).Seconds()
	waitFor(b, "B has all", func() error {
		mu.Lock()
		defer mu.Unlock()
		return errIf(len(lat) < b.N, "%d of %d", len(lat), b.N)
	})
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(achieved, "creates/s")
}

// BenchmarkCatchUp measures how fast a replica that was away applies what
// it missed from the stream: b.N notifications created on A (in commits of
// 100, spread over 1 or 50 users) while B's bus was stopped. It reports
// entries applied per second.
func BenchmarkCatchUp(b *testing.B) {
	for _, users := range []int{1, 50} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) { benchCatchUp(b, users) })
	}
}

func benchCatchUp(b *testing.B, users int) {
	srv := rediskit.Start(b)
	a := newNode(b, srv, "A", nil)
	r := newNode(b, srv, "B", nil)
	a.waitReady()
	r.waitReady()
	r.stopBus()
	for u := range users {
		a.createBatch(fmt.Sprintf("u%d", u), b.N/users+1)
	}
	waitFor(b, "A shipped", func() error { return errIf(a.outboxDepth() != 0, "%d", a.outboxDepth()) })
	total := users * (b.N/users + 1)

	b.ResetTimer()
	start := time.Now()
	r.startBus()
	waitFor(b, "B caught up", func() error {
		got := len(r.rec.all())
		return errIf(got < total, "%d of %d", got, total)
	})
	b.StopTimer()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "entries/s")
}
