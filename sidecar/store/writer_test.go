package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/notification"
)

// TestGroupCommit queues requests behind a blocked writer and checks that
// they commit together, at most MaxBatch per transaction, with each commit's
// events handed over in one OnCommit call in queue order.
func TestGroupCommit(t *testing.T) {
	for _, tt := range []struct {
		name        string
		maxBatch    int
		queued      int
		wantCommits int
	}{
		{name: "all in one commit", maxBatch: 100, queued: 10, wantCommits: 1},
		{name: "split by MaxBatch", maxBatch: 4, queued: 10, wantCommits: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bw := newBlockWriter()
			var mu sync.Mutex
			var commits [][]notification.Event
			s, _ := openTest(t, func(o *Options) {
				o.MaxBatch = tt.maxBatch
				o.OnCommit = func(evs []notification.Event) {
					bw.onCommit(evs)
					mu.Lock()
					commits = append(commits, evs)
					mu.Unlock()
				}
			})
			bw.armed <- struct{}{}
			go func() { _, _ = s.Create(context.Background(), []notification.Draft{draft("blocker", "x")}) }()
			<-bw.entered

			var wg sync.WaitGroup
			for i := range tt.queued {
				// One at a time, so that the queue order is known.
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.Create(context.Background(), []notification.Draft{draft("u", fmt.Sprint(i))}); err != nil {
						t.Errorf("create %d: %v", i, err)
					}
				}()
				waitFor(t, "request queued", 30*time.Second, func() bool { return len(s.reqs) == i+1 })
			}
			close(bw.release)
			wg.Wait()

			mu.Lock()
			defer mu.Unlock()
			got := commits[1:] // the first is the blocker's
			if len(got) != tt.wantCommits {
				t.Fatalf("%d commits, want %d", len(got), tt.wantCommits)
			}
			var titles []string
			for _, evs := range got {
				if len(evs) > tt.maxBatch {
					t.Fatalf("a commit of %d requests, MaxBatch %d", len(evs), tt.maxBatch)
				}
				for _, ev := range evs {
					titles = append(titles, ev.Notification.Title)
				}
			}
			for i, title := range titles {
				if title != fmt.Sprint(i) {
					t.Fatalf("events in order %v, want queue order", titles)
				}
			}
		})
	}
}

func TestCreateRefusesBadKeys(t *testing.T) {
	s, rec := openTest(t, nil)
	long := keyed("u", "x", strings.Repeat("k", notification.MaxIdempotencyKeyLen+1))
	tests := []struct {
		name string
		d    notification.Draft
	}{
		{"empty user", draft("", "x")},
		{"user id too long", draft(strings.Repeat("u", notification.MaxUserIDLen+1), "x")},
		{"idempotency key too long", long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Create(ctxT(t), []notification.Draft{draft("u", "ok"), tt.d})
			if !notification.IsFieldError(err) || !strings.Contains(err.Error(), "drafts[1]") {
				t.Fatalf("err = %v, want a field error naming drafts[1]", err)
			}
		})
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("a refused call stored %d notifications", n)
	}
}
