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

// TestOwnEchoDeliveredOnce is BH-04: the replica that made a change gets
// its own envelope back from Redis on both paths and applies it like any
// other; its store already has the change, so its tab gets each change
// exactly once (from the commit hook) and the echo is counted as "own".
func TestOwnEchoDeliveredOnce(t *testing.T) {
	srv, a, _ := pair(t)
	watch(t, srv, a, "u1")
	ids := a.create("u1", 100)
	ctx := context.Background()
	if _, _, err := a.store.MarkRead(ctx, "u1", ids[:1]); err != nil {
		t.Fatalf("mark read: %v", err)
	}
	if _, err := a.store.Delete(ctx, "u1", ids[1:2]); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := a.store.MarkAllRead(ctx, "u1"); err != nil {
		t.Fatalf("mark all read: %v", err)
	}
	const changes = 100 + 3
	waitFor(t, "A saw its own changes on both paths", func() error {
		live := a.metric("herald_remote_changes_total", "path", "live", "result", "own")
		stream := a.metric("herald_remote_changes_total", "path", "stream", "result", "own")
		return errIf(live < changes || stream < changes, "live %v stream %v", live, stream)
	})
	if err := exactlyOnce(a.rec.created("u1"), ids); err != nil {
		t.Fatal(err)
	}
	for _, k := range []notification.Kind{notification.KindRead, notification.KindDeleted, notification.KindReadAll} {
		if got := len(a.rec.ofKind("u1", k)); got != 1 {
			t.Errorf("A has %d %s events, want 1", got, k)
		}
	}
	if got := a.metric("herald_remote_changes_total", "result", "own_applied"); got != 0 {
		t.Errorf("own_applied %v on the replica that made the changes, want 0", got)
	}
	if a.logged("appears on changes it did not make") {
		t.Error("A warned about its own echo")
	}
}

// TestSharedNodeIDReplicates: two replicas started by mistake with the same
// node ID still get each other's changes, once each, and warn about it.
func TestSharedNodeIDReplicates(t *testing.T) {
	srv := rediskit.Start(t)
	a := newNode(t, srv, "A", nil)
	b := newNode(t, srv, "A", nil) // same --node-id, its own store
	a.waitReady()
	b.waitReady()
	watch(t, srv, a, "u1")
	watch(t, srv, b, "u1")

	ids := a.create("u1", 5)
	waitFor(t, "B has A's 5", func() error { return exactlyOnce(b.rec.created("u1"), ids) })
	// Each change is applied once on B, by whichever path comes first.
	waitFor(t, "B counted them", func() error {
		got := b.metric("herald_remote_changes_total", "result", "own_applied")
		return errIf(got != 5, "own_applied %v, want 5", got)
	})
	if !b.logged("appears on changes it did not make or lost") {
		t.Error("B did not warn about the shared node id")
	}

	// And the other way round; nobody's tab gets anything twice.
	more := b.create("u1", 3)
	all := append(append([]string(nil), ids...), more...)
	waitFor(t, "A has B's 3", func() error { return exactlyOnce(a.rec.created("u1"), all) })
	waitFor(t, "B's tab unchanged", func() error { return exactlyOnce(b.rec.created("u1"), all) })
	waitFor(t, "A counted them", func() error {
		got := a.metric("herald_remote_changes_total", "result", "own_applied")
		return errIf(got != 3, "own_applied %v, want 3", got)
	})
}

// TestWipedReplicaRecoversOwnChanges: a replica with a fixed node ID whose
// data directory was wiped (a new, empty store with the same ID) catches up
// its own earlier changes from the stream.
func TestWipedReplicaRecoversOwnChanges(t *testing.T) {
	srv := rediskit.Start(t)
	a := newNode(t, srv, "A", nil)
	a.waitReady()
	ids := a.create("u1", 5)
	ctx := context.Background()
	if _, _, err := a.store.MarkRead(ctx, "u1", ids[:1]); err != nil {
		t.Fatalf("mark read: %v", err)
	}
	if _, err := a.store.Delete(ctx, "u1", ids[1:2]); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitFor(t, "A shipped", func() error { return errIf(a.outboxDepth() != 0, "depth %d", a.outboxDepth()) })
	a.stopBus()

	wiped := newNode(t, srv, "A", nil) // a new empty bbolt file, same node ID
	wiped.waitReady()
	waitFor(t, "the wiped replica caught up", func() error {
		return errIf(wiped.unread("u1") != 3, "unread %d, want 3", wiped.unread("u1"))
	})
	if err := exactlyOnce(wiped.rec.created("u1"), ids); err != nil {
		t.Fatal(err)
	}
	if _, err := wiped.store.Get("u1", ids[1]); err == nil {
		t.Error("the deleted notification came back")
	}
	if n, err := wiped.store.Get("u1", ids[0]); err != nil || !n.IsRead {
		t.Errorf("the read notification: %+v, %v", n, err)
	}
	waitFor(t, "own_applied counts 5 created, 1 read, 1 deleted", func() error {
		got := wiped.metric("herald_remote_changes_total", "path", "stream", "result", "own_applied")
		return errIf(got != 7, "own_applied %v, want 7", got)
	})
	if !wiped.logged("appears on changes it did not make or lost") {
		t.Error("the wiped replica did not warn")
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

	// Interleave create(x) and mark_read(x) while B holds a tab of u2, so
	// that both the live path and the stream carry them.
	watch(t, srv, b, "u2")
	ctx := context.Background()
	var pairs []string
	for range 100 {
		id := a.create("u2", 1)[0]
		if _, _, err := a.store.MarkRead(ctx, "u2", []string{id}); err != nil {
			t.Fatalf("mark read: %v", err)
		}
		pairs = append(pairs, id)
	}
	waitFor(t, "B has the creates and the reads", func() error {
		if err := exactlyOnce(b.rec.created("u2"), pairs); err != nil {
			return err
		}
		return errIf(len(b.rec.ofKind("u2", notification.KindRead)) < 100, "not yet")
	})
	// A read applied before its create would leave the notification unread.
	if n := b.unread("u2"); n != 0 {
		t.Fatalf("B has %d of u2 unread after every create was read", n)
	}
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
		if c, r := pos["c"+id], pos["r"+id]; c == 0 || r < c {
			t.Fatalf("B's events for %s: created at %d, read at %d; want both, the read after", id, c, r)
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
