package bus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/testing/rediskit"
)

// pair starts a Redis and two ready replicas.
func pair(t *testing.T) (*rediskit.Server, *node, *node) {
	t.Helper()
	srv := rediskit.Start(t)
	a := newNode(t, srv, "A", nil)
	b := newNode(t, srv, "B", nil)
	a.waitReady()
	b.waitReady()
	return srv, a, b
}

// watch opens a "socket" of user on n and waits until Redis shows the
// subscription.
func watch(t *testing.T, srv *rediskit.Server, n *node, user string) {
	t.Helper()
	before := srv.NumSub(t, "notifications:"+user)
	n.open(user)
	waitFor(t, n.id+" subscribed to "+user, func() error {
		got := srv.NumSub(t, "notifications:"+user)
		return errIf(got <= before, "NUMSUB %d", got)
	})
}

func TestReadReadAllDeleteReplicate(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	ids := a.create("u1", 4)
	waitFor(t, "B has 4 unread", func() error { return errIf(b.unread("u1") != 4, "%d", b.unread("u1")) })

	ctx := context.Background()
	if _, _, err := a.store.MarkRead(ctx, "u1", ids[:1]); err != nil {
		t.Fatalf("mark read: %v", err)
	}
	waitFor(t, "read on B", func() error {
		evs := b.rec.ofKind("u1", notification.KindRead)
		return errIf(len(evs) != 1 || evs[0].UnreadCount != 3 || evs[0].IDs[0] != ids[0], "%+v", evs)
	})

	if _, err := a.store.Delete(ctx, "u1", ids[1:2]); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitFor(t, "deleted on B", func() error {
		evs := b.rec.ofKind("u1", notification.KindDeleted)
		return errIf(len(evs) != 1 || evs[0].UnreadCount != 2, "%+v", evs)
	})
	if _, err := b.store.Get("u1", ids[1]); err == nil {
		t.Fatal("deleted notification still on B")
	}

	// The other way round: B marks all read, A follows.
	if _, err := b.store.MarkAllRead(ctx, "u1"); err != nil {
		t.Fatalf("mark all read: %v", err)
	}
	waitFor(t, "read_all on A", func() error {
		evs := a.rec.ofKind("u1", notification.KindReadAll)
		return errIf(len(evs) != 1 || a.unread("u1") != 0, "events %+v unread %d", evs, a.unread("u1"))
	})
	if got := len(b.rec.ofKind("u1", notification.KindReadAll)); got != 1 {
		t.Fatalf("B has %d read_all events, want 1 (its own)", got)
	}
}

// TestNoDuplicatesThroughBothPaths: every change reaches a watching replica
// through Pub/Sub and through the stream; it is delivered once.
func TestNoDuplicatesThroughBothPaths(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	ids := a.createBatch("u1", 300)
	waitFor(t, "both paths saw all", func() error {
		live := b.metric("herald_remote_changes_total", "path", "live")
		stream := b.metric("herald_remote_changes_total", "path", "stream")
		return errIf(live < 300 || stream < 300, "live %v stream %v", live, stream)
	})
	if err := exactlyOnce(b.rec.created("u1"), ids); err != nil {
		t.Fatal(err)
	}
}

// TestOwnOriginIgnored is BH-04: the replica that made a change gets its own
// envelope back from Redis, and must not deliver it again.
func TestOwnOriginIgnored(t *testing.T) {
	srv, a, _ := pair(t)
	watch(t, srv, a, "u1")
	ids := a.create("u1", 100)
	waitFor(t, "A saw its own changes on both paths", func() error {
		live := a.metric("herald_remote_changes_total", "path", "live", "result", "own")
		stream := a.metric("herald_remote_changes_total", "path", "stream", "result", "own")
		return errIf(live < 100 || stream < 100, "live %v stream %v", live, stream)
	})
	if err := exactlyOnce(a.rec.created("u1"), ids); err != nil {
		t.Fatal(err)
	}
}

// TestOrderPerUser is BH-09: sequential creates, and a read right after
// each create, arrive on the other replica in order.
func TestOrderPerUser(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	ids := a.create("u1", 1000)
	waitFor(t, "B has 1000", func() error { return exactlyOnce(b.rec.created("u1"), ids) })
	if got := b.rec.created("u1"); !slices.Equal(got, ids) {
		t.Fatalf("B's order differs from creation order")
	}

	// Interleave create(x) and mark_read(x).
	ctx := context.Background()
	var pairs []string
	for range 100 {
		id := a.create("u2", 1)[0]
		if _, _, err := a.store.MarkRead(ctx, "u2", []string{id}); err != nil {
			t.Fatalf("mark read: %v", err)
		}
		pairs = append(pairs, id)
	}
	watch(t, srv, b, "u2")
	waitFor(t, "B has the reads", func() error {
		return errIf(len(b.rec.ofKind("u2", notification.KindRead)) < 100, "not yet")
	})
	pos := map[string]int{}
	for i, ev := range b.rec.all() {
		if ev.UserID != "u2" {
			continue
		}
		switch ev.Kind {
		case notification.KindCreated:
			pos["c"+ev.Notification.ID] = i + 1
		case notification.KindRead:
			for _, id := range ev.IDs {
				pos["r"+id] = i + 1
			}
		}
	}
	for _, id := range pairs {
		if c := pos["c"+id]; c != 0 && pos["r"+id] < c {
			t.Fatalf("read of %s before its create", id)
		}
	}
}

// TestRestartedReplicaCatchesUp: B's bus is stopped while A creates 1,000;
// B's new bus brings all 1,000 exactly once.
func TestRestartedReplicaCatchesUp(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	b.stopBus()
	ids := a.createBatch("u1", 1000)
	waitFor(t, "A shipped", func() error { return errIf(a.outboxDepth() != 0, "depth %d", a.outboxDepth()) })
	b.startBus()
	b.waitReady()
	waitFor(t, "B has 1000", func() error { return exactlyOnce(b.rec.created("u1"), ids) })
	if got := b.unread("u1"); got != 1000 {
		t.Fatalf("B unread %d, want 1000", got)
	}
	if !slices.Equal(b.rec.created("u1"), ids) {
		t.Fatal("catch-up out of order")
	}
}

// TestRedisOutageShipsLater: Redis is down while A creates 500; when it is
// back, B gets all 500 once and A's outbox is empty.
func TestRedisOutageShipsLater(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	srv.Stop()
	waitFor(t, "A not ready", func() error { return errIf(a.b().Ready() == nil, "still ready") })
	ids := a.createBatch("u1", 500)
	if d := a.outboxDepth(); d != 500 {
		t.Fatalf("outbox depth %d during the outage, want 500", d)
	}
	srv.Start()
	waitFor(t, "B has 500", func() error { return exactlyOnce(b.rec.created("u1"), ids) })
	waitFor(t, "A's outbox empty", func() error { return errIf(a.outboxDepth() != 0, "%d", a.outboxDepth()) })
	a.waitReady()
	b.waitReady()
}

// TestNewReplicaCatchesUp: a replica that joins later reaches the same
// unread counts from the stream.
func TestNewReplicaCatchesUp(t *testing.T) {
	srv, a, b := pair(t)
	ctx := context.Background()
	users := []string{"u1", "u2", "u3"}
	for i, u := range users {
		ids := a.create(u, 5+i)
		ids = append(ids, b.create(u, 3)...)
		waitFor(t, "A and B have "+u, func() error {
			return errIf(a.unread(u) != len(ids) || b.unread(u) != len(ids), "not yet")
		})
		if _, _, err := b.store.MarkRead(ctx, u, ids[:2]); err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Delete(ctx, u, ids[len(ids)-1:]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "B has the deletes", func() error {
		return errIf(b.unread("u3") != a.unread("u3"), "not yet")
	})
	if _, err := a.store.MarkAllRead(ctx, "u3"); err != nil {
		t.Fatal(err)
	}
	c := newNode(t, srv, "C", nil)
	c.waitReady()
	for _, n := range []*node{a, b, c} {
		waitFor(t, n.id+" converged", func() error {
			for _, u := range users {
				if got, want := n.unread(u), a.unread(u); got != want {
					return fmt.Errorf("%s: %s unread %d, A has %d", n.id, u, got, want)
				}
			}
			return nil
		})
	}
	want := map[string]int{"u1": 5 + 3 - 2 - 1, "u2": 6 + 3 - 2 - 1, "u3": 0}
	for u, w := range want {
		if got := c.unread(u); got != w {
			t.Errorf("C: %s unread %d, want %d", u, got, w)
		}
	}
}
