package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/notification"
)

// recorder keeps every event the store hands to OnCommit, in order.
type recorder struct {
	mu     sync.Mutex
	events []notification.Event
}

func (r *recorder) onCommit(evs []notification.Event) {
	r.mu.Lock()
	r.events = append(r.events, evs...)
	r.mu.Unlock()
}

// all returns a copy of the events so far.
func (r *recorder) all() []notification.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification.Event(nil), r.events...)
}

// ofUser returns the events of one user so far.
func (r *recorder) ofUser(userID string) []notification.Event {
	var out []notification.Event
	for _, ev := range r.all() {
		if ev.UserID == userID {
			out = append(out, ev)
		}
	}
	return out
}

// openTest opens a store on a new file in t.TempDir with a recorder, and
// closes it at the end of the test. mod may change the options.
func openTest(t testing.TB, mod func(*Options)) (*Store, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts := Options{
		Path:     filepath.Join(t.TempDir(), "herald.db"),
		OnCommit: rec.onCommit,
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, rec
}

// ctxT returns a context that ends with the test, with a generous deadline.
func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// draft returns a valid draft for user.
func draft(user, title string) notification.Draft {
	return notification.Draft{UserID: user, Type: "task.assigned", Title: title}
}

// mustCreate creates one notification per title for user and returns them.
func mustCreate(t testing.TB, s *Store, user string, titles ...string) []notification.Notification {
	t.Helper()
	ds := make([]notification.Draft, len(titles))
	for i, title := range titles {
		ds[i] = draft(user, title)
	}
	ns, err := s.Create(ctxT(t), ds)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return ns
}

// ids returns the IDs of ns.
func ids(ns []notification.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

// checkConsistent asserts that the user's unread count equals the number of
// entries in the unread index, and that every entry has a notification.
func checkConsistent(t testing.TB, s *Store, user string) {
	t.Helper()
	snap, err := s.Unread(user, 1<<30)
	if err != nil {
		t.Fatalf("unread %s: %v", user, err)
	}
	if snap.UnreadCount != len(snap.Notifications) {
		t.Fatalf("user %s: unread count %d, index holds %d", user, snap.UnreadCount, len(snap.Notifications))
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
