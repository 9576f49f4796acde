package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/sidecar/notification"
)

// fakeClock is a settable Options.Now.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

func (c *fakeClock) now() time.Time  { return *c.t.Load() }
func (c *fakeClock) set(t time.Time) { c.t.Store(&t) }

func TestPruneRemovesOldReadOnly(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	s, _ := openTest(t, func(o *Options) { o.Now = clock.now })
	ctx := ctxT(t)

	// Old: 2,500 read ones over several users (more than one prune batch),
	// one unread, one with an idempotency key, one deleted (a tombstone).
	const oldRead = 2500
	users := []string{"a", "b", "c", "d", "e"}
	for _, u := range users {
		ds := make([]notification.Draft, oldRead/len(users))
		for i := range ds {
			ds[i] = draft(u, "old")
		}
		if _, err := s.Create(ctx, ds); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarkAllRead(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	oldUnread := mustCreate(t, s, "a", "old unread")[0]
	keyedOld, err := s.Create(ctx, []notification.Draft{keyed("a", "keyed", "k1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MarkRead(ctx, "a", ids(keyedOld)); err != nil {
		t.Fatal(err)
	}
	gone := mustCreate(t, s, "a", "deleted")[0]
	if _, err := s.Delete(ctx, "a", []string{gone.ID}); err != nil {
		t.Fatal(err)
	}

	// New: two days later, one read and one unread.
	clock.set(t0.Add(48 * time.Hour))
	newer := mustCreate(t, s, "a", "new read", "new unread")
	if _, _, err := s.MarkRead(ctx, "a", ids(newer[:1])); err != nil {
		t.Fatal(err)
	}

	n, err := s.Prune(ctx, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != oldRead+1 {
		t.Fatalf("pruned %d, want %d (the old read ones)", n, oldRead+1)
	}
	for _, keep := range []notification.Notification{oldUnread, newer[0], newer[1]} {
		if _, err := s.Get("a", keep.ID); err != nil {
			t.Fatalf("%s (%s) was pruned: %v", keep.ID, keep.Title, err)
		}
	}
	for _, u := range users {
		p, err := s.List(ListQuery{UserID: u, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p.Notifications {
			if n.Title == "old" {
				t.Fatalf("old read notification %s of %s survived", n.ID, u)
			}
		}
		checkConsistent(t, s, u)
	}
	// The old idempotency key is gone: the key makes a new notification.
	again, err := s.Create(ctx, []notification.Draft{keyed("a", "keyed", "k1")})
	if err != nil || again[0].ID == keyedOld[0].ID {
		t.Fatalf("create with a pruned key: %v %v", again, err)
	}
	// The old tombstone is gone too.
	if got := countKeys(t, s, bucketTombstones); got != 0 {
		t.Fatalf("%d tombstones left", got)
	}
	// A second prune finds nothing.
	if n, err := s.Prune(ctx, t0.Add(24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second prune: %d %v", n, err)
	}
}

func TestPruneDoesNotStarveWriters(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	s, _ := openTest(t, func(o *Options) { o.Now = clock.now })
	ctx := ctxT(t)
	for range 5 {
		ds := make([]notification.Draft, 1000)
		for i := range ds {
			ds[i] = draft("u", "old")
		}
		if _, err := s.Create(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.MarkAllRead(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	clock.set(t0.Add(48 * time.Hour))

	// Writers keep going while the prune runs; all of them must succeed.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	var werr atomic.Pointer[error]
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Create(ctx, []notification.Draft{draft(fmt.Sprint("w", g), "x")}); err != nil {
					werr.Store(&err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	n, err := s.Prune(ctx, t0.Add(time.Hour))
	close(stop)
	wg.Wait()
	if err != nil || n != 5000 {
		t.Fatalf("prune = %d %v, want 5000", n, err)
	}
	if p := werr.Load(); p != nil {
		t.Fatalf("writer failed during prune: %v", *p)
	}
	t.Logf("%d creates committed during the prune", writes.Load())
}

func TestPruneStopsOnCancel(t *testing.T) {
	s, _ := openTest(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Prune(ctx, time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("prune with a done ctx: %v", err)
	}
}

func TestRunRetention(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	s, _ := openTest(t, func(o *Options) { o.Now = clock.now })
	ns := mustCreate(t, s, "u", "a")
	if _, _, err := s.MarkRead(ctxT(t), "u", ids(ns)); err != nil {
		t.Fatal(err)
	}
	clock.set(t0.Add(10 * 24 * time.Hour))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunRetention(ctx, time.Hour, 7*24*time.Hour) }()
	waitFor(t, "retention to prune", 30*time.Second, func() bool {
		_, err := s.Get("u", ns[0].ID)
		return errors.Is(err, ErrNotFound)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run retention: %v", err)
	}
}

// countKeys returns the number of keys in a bucket.
func countKeys(t testing.TB, s *Store, name []byte) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
