package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/heraldhq/herald/sidecar/notification"
)

// TestConcurrentWritersKeepIndexesConsistent runs many goroutines that
// create, mark read, mark all read, delete and list at once, then checks
// that for every user: the events carry Seq 1, 2, 3... in commit order; the
// events, replayed, give exactly the stored state; and the unread count
// equals the unread index.
func TestConcurrentWritersKeepIndexesConsistent(t *testing.T) {
	s, rec := openTest(t, nil)
	const (
		workers = 24
		users   = 6
		rounds  = 40
	)
	ctx := ctxT(t)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- worker(ctx, s, fmt.Sprint("user-", w%users), rand.New(rand.NewPCG(uint64(w), 1)), rounds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	for u := range users {
		user := fmt.Sprint("user-", u)
		evs := rec.ofUser(user)
		if len(evs) == 0 {
			t.Fatalf("%s: no events", user)
		}
		state := replay(t, user, evs)
		checkConsistent(t, s, user)

		all := walk(t, s, ListQuery{UserID: user, Limit: 100})
		if len(all) != len(state) {
			t.Fatalf("%s: store holds %d notifications, events say %d", user, len(all), len(state))
		}
		var unread []string
		for _, id := range all {
			isUnread, ok := state[id]
			if !ok {
				t.Fatalf("%s: stored %s that events never created or deleted", user, id)
			}
			if isUnread {
				unread = append(unread, id)
			}
		}
		gotUnread := walk(t, s, ListQuery{UserID: user, Limit: 100, UnreadOnly: true})
		if !slices.Equal(gotUnread, unread) {
			t.Fatalf("%s: unread index %d ids, events say %d", user, len(gotUnread), len(unread))
		}
		if last := evs[len(evs)-1]; last.UnreadCount != len(unread) {
			t.Fatalf("%s: last event unread count %d, store has %d", user, last.UnreadCount, len(unread))
		}
	}
}

// worker does rounds of random operations on one user's notifications.
func worker(ctx context.Context, s *Store, user string, rng *rand.Rand, rounds int) error {
	for range rounds {
		switch op := rng.IntN(10); {
		case op < 5:
			n := 1 + rng.IntN(4)
			ds := make([]notification.Draft, n)
			for i := range ds {
				ds[i] = draft(user, "t")
			}
			if _, err := s.Create(ctx, ds); err != nil {
				return fmt.Errorf("create: %w", err)
			}
		case op < 7:
			p, err := s.List(ListQuery{UserID: user, Limit: 10, UnreadOnly: rng.IntN(2) == 0})
			if err != nil {
				return fmt.Errorf("list: %w", err)
			}
			if len(p.Notifications) == 0 {
				continue
			}
			// Another worker of the same user may delete them first.
			_, _, err = s.MarkRead(ctx, user, ids(p.Notifications[:1+rng.IntN(len(p.Notifications))]))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("mark read: %w", err)
			}
		case op < 9:
			p, err := s.List(ListQuery{UserID: user, Limit: 3})
			if err != nil {
				return fmt.Errorf("list: %w", err)
			}
			if len(p.Notifications) == 0 {
				continue
			}
			if _, err := s.Delete(ctx, user, ids(p.Notifications[:1])); err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("delete: %w", err)
			}
		default:
			if _, err := s.MarkAllRead(ctx, user); err != nil {
				return fmt.Errorf("mark all read: %w", err)
			}
		}
	}
	return nil
}

// replay applies a user's events in order and returns id → unread. It fails
// on a Seq gap and on an event that contradicts the state so far.
func replay(t testing.TB, user string, evs []notification.Event) map[string]bool {
	t.Helper()
	state := map[string]bool{}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("%s: event %d has seq %d, want %d", user, i, ev.Seq, i+1)
		}
		switch ev.Kind {
		case notification.KindCreated:
			if _, dup := state[ev.Notification.ID]; dup {
				t.Fatalf("%s: created %s twice", user, ev.Notification.ID)
			}
			state[ev.Notification.ID] = true
		case notification.KindRead:
			for _, id := range ev.IDs {
				if !state[id] {
					t.Fatalf("%s: read event for %s which was not unread", user, id)
				}
				state[id] = false
			}
		case notification.KindReadAll:
			for id := range state {
				state[id] = false
			}
		case notification.KindDeleted:
			for _, id := range ev.IDs {
				if _, ok := state[id]; !ok {
					t.Fatalf("%s: deleted event for unknown %s", user, id)
				}
				delete(state, id)
			}
		}
		unread := 0
		for _, u := range state {
			if u {
				unread++
			}
		}
		if unread != ev.UnreadCount {
			t.Fatalf("%s: event %d (%s) says %d unread, replay gives %d", user, i, ev.Kind, ev.UnreadCount, unread)
		}
	}
	return state
}
