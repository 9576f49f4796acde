package service

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// BenchmarkCreate measures durable creates per second through the real gRPC
// path: client → Unix socket → Service → store (group commit, fsync).
func BenchmarkCreate(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			h := newHarness(b, Options{})
			runCallers(b, callers, func(ctx context.Context, i int64) error {
				_, err := h.client.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{
					Notification: benchNote(i),
				})
				return err
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// BenchmarkCreateBatch measures notifications per second through
// CreateNotifications in batches of 100; one op is one batch.
func BenchmarkCreateBatch(b *testing.B) {
	const size = 100
	for _, callers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("size=%d/callers=%d", size, callers), func(b *testing.B) {
			h := newHarness(b, Options{})
			runCallers(b, callers, func(ctx context.Context, i int64) error {
				batch := make([]*heraldv1.NewNotification, size)
				for j := range batch {
					batch[j] = benchNote(i*size + int64(j))
				}
				_, err := h.client.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{
					Notifications: batch,
				})
				return err
			})
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}

// BenchmarkStoreOnly is the baseline of the two benchmarks above: the same
// notifications and callers straight into the store, without gRPC and the
// service, run under the same machine load, to attribute the cost.
func BenchmarkStoreOnly(b *testing.B) {
	for _, bc := range []struct{ callers, size int }{{1, 1}, {64, 1}, {4, 100}} {
		b.Run(fmt.Sprintf("size=%d/callers=%d", bc.size, bc.callers), func(b *testing.B) {
			st, err := store.Open(store.Options{Path: filepath.Join(shortDir(b), "herald.db")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			runCallers(b, bc.callers, func(ctx context.Context, i int64) error {
				drafts := make([]notification.Draft, bc.size)
				for j := range drafts {
					drafts[j] = draftFromProto(benchNote(i*int64(bc.size) + int64(j)))
				}
				_, err := st.Create(ctx, drafts)
				return err
			})
			b.ReportMetric(float64(b.N*bc.size)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}

// benchNote is a typical notification: a short title and body, a link and a
// small data object, for one of 1000 users.
func benchNote(i int64) *heraldv1.NewNotification {
	return &heraldv1.NewNotification{
		UserId:   fmt.Sprintf("user-%d", i%1000),
		Type:     "task.assigned",
		Title:    "Task 17 assigned to you",
		Body:     "Alice assigned you the task \"Fix the login page\" in project Apollo.",
		Link:     "/tasks/17",
		DataJson: `{"task_id":17,"project":"apollo","by":"alice"}`,
	}
}

// runCallers runs b.N calls of fn spread over callers goroutines and fails
// the benchmark on the first error.
func runCallers(b *testing.B, callers int, fn func(ctx context.Context, i int64) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := fn(ctx, i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err := firstErr.Load(); err != nil {
		b.Fatal(*err)
	}
}
