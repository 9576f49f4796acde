package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/sidecar/notification"
)

// benchDraft is a notification of a typical size.
func benchDraft(user string) notification.Draft {
	return notification.Draft{
		UserID: user,
		Type:   "task.assigned",
		Title:  "Task 17 assigned to you",
		Body:   "Alice assigned you the task \"Write the quarterly report\" in project Atlas.",
		Link:   "/projects/atlas/tasks/17",
		Data:   []byte(`{"task_id":17,"project":"atlas","by":"alice"}`),
	}
}

// benchCreate runs b.N creates of batch notifications each from callers
// goroutines, every one fsynced, and reports notifications per second. The
// notifications go to users users in turn, so a batch of 100 to 500 users
// touches 100 users' index pages: every one is a page the commit writes.
func benchCreate(b *testing.B, callers, batch, users int, replicated bool) {
	s, _ := openTest(b, func(o *Options) {
		o.Replicated = replicated
		o.OnCommit = func([]notification.Event) {}
	})
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds := make([]notification.Draft, batch)
			for i := range ds {
				ds[i] = benchDraft(fmt.Sprint("user-", (c*batch+i)%users))
			}
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Create(ctx, ds); err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "notifications/s")
	b.ReportMetric(float64(s.committed.Load())/float64(max(s.commits.Load(), 1)), "calls/commit")
}

func BenchmarkCreate(b *testing.B) {
	for _, bc := range []struct {
		callers, batch, users int
		replicated            bool
	}{
		{1, 1, 500, false},
		{64, 1, 500, false},
		{64, 1, 500, true},
		{1, 100, 500, false},
		{8, 100, 500, false},
		{8, 100, 500, true},
		{8, 100, 8, false},
	} {
		name := fmt.Sprintf("callers=%d/batch=%d/users=%d/replicated=%v",
			bc.callers, bc.batch, bc.users, bc.replicated)
		b.Run(name, func(b *testing.B) { benchCreate(b, bc.callers, bc.batch, bc.users, bc.replicated) })
	}
}

func BenchmarkUnread(b *testing.B) {
	s, _ := openTest(b, nil)
	ds := make([]notification.Draft, 500)
	for i := range ds {
		ds[i] = benchDraft("u")
	}
	if _, err := s.Create(context.Background(), ds); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		snap, err := s.Unread("u", 500)
		if err != nil || len(snap.Notifications) != 500 {
			b.Fatal(err)
		}
	}
}
