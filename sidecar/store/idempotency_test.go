package store

import (
	"sync"
	"testing"

	"github.com/heraldhq/herald/sidecar/notification"
)

func keyed(user, title, key string) notification.Draft {
	d := draft(user, title)
	d.IdempotencyKey = key
	return d
}

func TestIdempotencyKey(t *testing.T) {
	tests := []struct {
		name string
		// calls are made one after another; each is one Create call.
		calls [][]notification.Draft
		// wantDistinct is the number of notifications that must exist after.
		wantDistinct int
	}{
		{
			name: "sequential retry returns the first",
			calls: [][]notification.Draft{
				{keyed("u", "first", "k1")},
				{keyed("u", "retry", "k1")},
			},
			wantDistinct: 1,
		},
		{
			name:         "same key twice in one call",
			calls:        [][]notification.Draft{{keyed("u", "a", "k1"), keyed("u", "b", "k1")}},
			wantDistinct: 1,
		},
		{
			name: "same key for two users is two notifications",
			calls: [][]notification.Draft{
				{keyed("u", "a", "k1"), keyed("v", "a", "k1")},
			},
			wantDistinct: 2,
		},
		{
			name:         "no key never deduplicates",
			calls:        [][]notification.Draft{{draft("u", "a"), draft("u", "a")}},
			wantDistinct: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := openTest(t, nil)
			seen := map[string]bool{}
			for _, call := range tt.calls {
				ns, err := s.Create(ctxT(t), call)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range ns {
					seen[n.ID] = true
				}
			}
			if len(seen) != tt.wantDistinct {
				t.Fatalf("got %d distinct notifications, want %d", len(seen), tt.wantDistinct)
			}
			if got := len(rec.all()); got != tt.wantDistinct {
				t.Fatalf("got %d created events, want %d", got, tt.wantDistinct)
			}
		})
	}
}

func TestIdempotencyRetryReturnsStoredNotification(t *testing.T) {
	s, _ := openTest(t, nil)
	first, err := s.Create(ctxT(t), []notification.Draft{keyed("u", "first", "k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MarkRead(ctxT(t), "u", ids(first)); err != nil {
		t.Fatal(err)
	}
	again, err := s.Create(ctxT(t), []notification.Draft{keyed("u", "second title", "k")})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ID != first[0].ID || again[0].Title != "first" || !again[0].IsRead {
		t.Fatalf("retry returned %+v, want the stored (read) first notification", again[0])
	}
}

func TestIdempotencyConcurrentRetries(t *testing.T) {
	s, rec := openTest(t, nil)
	const callers = 32
	got := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns, err := s.Create(ctxT(t), []notification.Draft{keyed("u", "same", "retry-key")})
			errs[i] = err
			if err == nil {
				got[i] = ns[0].ID
			}
		}()
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("caller %d got %s, caller 0 got %s: two notifications for one key", i, got[i], got[0])
		}
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d created events, want 1", n)
	}
	if n, _ := s.UnreadCount("u"); n != 1 {
		t.Fatalf("unread count %d, want 1", n)
	}
}

func TestIdempotencyKeyOfDeletedNotificationIsFree(t *testing.T) {
	s, _ := openTest(t, nil)
	first, err := s.Create(ctxT(t), []notification.Draft{keyed("u", "a", "k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctxT(t), "u", ids(first)); err != nil {
		t.Fatal(err)
	}
	again, err := s.Create(ctxT(t), []notification.Draft{keyed("u", "a", "k")})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ID == first[0].ID {
		t.Fatalf("retry after delete returned the deleted id")
	}
	if _, err := s.Get("u", again[0].ID); err != nil {
		t.Fatalf("new notification not stored: %v", err)
	}
}
