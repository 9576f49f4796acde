package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// BenchmarkCreate measures durable creates per second through the real gRPC
// path: client → Unix socket → Service → store (group commit, fsync).
//
// The users=N dimension shows what bounds the store: a commit dirties about
// one random page per distinct user in it (the user's unread index and
// count), so many users each receiving one notification cost more than few
// users receiving many.
func BenchmarkCreate(b *testing.B) {
	for _, bc := range []struct{ callers, users int }{{1, 1000}, {64, 1000}, {64, 64}} {
		b.Run(fmt.Sprintf("callers=%d/users=%d", bc.callers, bc.users), func(b *testing.B) {
			h := newHarness(b, Options{})
			disk := diskWrites()
			runCallers(b, bc.callers, func(ctx context.Context, i int64) error {
				note := benchNote(i)
				note.UserId = fmt.Sprintf("user-%d", i%int64(bc.users))
				_, err := h.client.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{
					Notification: note,
				})
				return err
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
			reportDisk(b, disk, b.N)
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
			disk := diskWrites()
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
			reportDisk(b, disk, b.N*size)
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
			disk := diskWrites()
			runCallers(b, bc.callers, func(ctx context.Context, i int64) error {
				drafts := make([]notification.Draft, bc.size)
				for j := range drafts {
					drafts[j] = draftFromProto(benchNote(i*int64(bc.size) + int64(j)))
				}
				_, err := st.Create(ctx, drafts)
				return err
			})
			b.ReportMetric(float64(b.N*bc.size)/b.Elapsed().Seconds(), "notifications/s")
			reportDisk(b, disk, b.N*bc.size)
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

// diskWrites returns the bytes this process has caused to be written to
// storage so far (Linux /proc/self/io), or -1 where that is not known.
func diskWrites() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// reportDisk reports the storage bytes written per notification since
// before, which shows the store's write amplification.
func reportDisk(b *testing.B, before int64, notifications int) {
	b.Helper()
	if after := diskWrites(); before >= 0 && after >= 0 && notifications > 0 {
		b.ReportMetric(float64(after-before)/float64(notifications), "disk-B/notification")
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
