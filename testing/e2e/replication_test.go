package e2e

import (
	"fmt"
	"slices"
	"testing"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/testing/heraldtest"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestReplicationTabOnOtherReplica: a tab on B gets what A creates, and the
// badge follows a mark-read made on A.
func TestReplicationTabOnOtherReplica(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	tabB, sync := c.tab(b, "u1")
	if sync.UnreadCount != 0 {
		t.Fatalf("unread_sync count %d, want 0", sync.UnreadCount)
	}
	tabA, _ := c.tab(a, "u1")
	tabA2, _ := c.tab(a, "u1")
	defer tabA2.Close()

	// Presence over the replicas: two tabs on A, one on B.
	eventually(t, "presence on both replicas", func() error {
		for _, n := range []*heraldtest.Node{a, b} {
			p, err := n.RPC.Presence(rpcCtx(t), &heraldv1.PresenceRequest{UserId: "u1"})
			if err != nil {
				return err
			}
			if p.Connections != 3 || p.Replicas["A"] != 2 || p.Replicas["B"] != 1 {
				return fmt.Errorf("%s answers %d connections, %v", n.Daemon.NodeID(), p.Connections, p.Replicas)
			}
		}
		return nil
	})

	ids := create(t, a, "u1", 2)
	eventually(t, "both notifications on B's tab", func() error { return onceEach(notified(t, tabB), ids) })
	eventuallyOnce(t, "both notifications on A's tab", func() error { return onceEach(notified(t, tabA), ids) })
	if err := onceEach(notified(t, tabB), ids); err != nil {
		t.Fatalf("B's tab, %v later: %v", quietPeriod, err)
	}

	if _, err := a.RPC.MarkRead(rpcCtx(t), &heraldv1.MarkReadRequest{UserId: "u1", Ids: ids[:1]}); err != nil {
		t.Fatalf("mark read on A: %v", err)
	}
	eventually(t, "read on B's tab", func() error {
		evs := events(t, tabB, "read")
		if len(evs) != 1 {
			return fmt.Errorf("%d read frames", len(evs))
		}
		if evs[0].UnreadCount != 1 || len(evs[0].IDs) != 1 || evs[0].IDs[0] != ids[0] {
			return fmt.Errorf("read frame %+v", evs[0])
		}
		return nil
	})

	// A tab marks everything read on B: A's tab follows.
	if err := tabB.Send(map[string]any{"type": "mark_all_read"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "read_all on A's tab", func() error {
		evs := events(t, tabA, "read_all")
		if len(evs) != 1 || evs[0].UnreadCount != 0 {
			return fmt.Errorf("read_all frames %+v", evs)
		}
		return nil
	})
	noErrorLogs(t, a, b)
}

// TestReplicationStoppedReplicaCatchesUp: B is stopped while A creates
// 1,000; a tab connecting to the restarted B gets all of them in its
// unread_sync, and none a second time.
func TestReplicationStoppedReplicaCatchesUp(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	if err := b.Stop(); err != nil {
		t.Fatalf("stop B: %v", err)
	}
	ids := create(t, a, "u1", 1000)
	eventually(t, "A's outbox shipped", func() error {
		d, err := a.Daemon.Store().OutboxDepth()
		if err != nil || d != 0 {
			return fmt.Errorf("depth %d, %v", d, err)
		}
		return nil
	})

	b = c.start("B") // ready: its catch-up reached the stream's end
	tab, sync := c.tab(b, "u1")
	if sync.UnreadCount != 1000 || sync.Truncated {
		t.Fatalf("unread_sync: count %d truncated %v, want 1000 and false", sync.UnreadCount, sync.Truncated)
	}
	if err := onceEach(sync.ids(), ids); err != nil {
		t.Fatalf("unread_sync: %v", err)
	}
	// A marker created after the sync: nothing of the 1,000 comes again
	// before it.
	marker := create(t, a, "u1", 1)
	eventually(t, "marker", func() error { return onceEach(notified(t, tab), marker) })
	noErrorLogs(t, a, b)
}

// TestReplicationRedisOutage: Redis is down while A creates 500; the open
// tab on B gets all 500 once Redis is back, exactly once, and A's outbox
// empties.
func TestReplicationRedisOutage(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	tab, _ := c.tab(b, "u1")
	tab2, _ := c.tab(b, "u1")
	tabA, _ := c.tab(a, "u1")

	c.redis.Stop()
	ids := create(t, a, "u1", 500)
	if d, _ := a.Daemon.Store().OutboxDepth(); d != 500 {
		t.Fatalf("A's outbox holds %d during the outage, want 500", d)
	}
	c.redis.Start()
	eventuallyOnce(t, "500 on B's tabs", func() error {
		if err := onceEach(notified(t, tab), ids); err != nil {
			return err
		}
		return onceEach(notified(t, tab2), ids)
	})
	if err := onceEach(notified(t, tabA), ids); err != nil {
		t.Fatalf("A's tab: %v", err) // pushed by A's commit, never again from Redis
	}
	eventually(t, "A's outbox empty", func() error {
		d, err := a.Daemon.Store().OutboxDepth()
		if err != nil || d != 0 {
			return fmt.Errorf("depth %d, %v", d, err)
		}
		return nil
	})
	// Shipped in order per user: the tabs see them in creation order.
	for i, got := range [][]string{notified(t, tab), notified(t, tab2)} {
		if !slices.Equal(got, ids) {
			pos := map[string]int{}
			for j, id := range ids {
				pos[id] = j
			}
			var seq []int
			for _, id := range got {
				seq = append(seq, pos[id])
			}
			t.Fatalf("B's tab %d got the 500 out of creation order: %v", i+1, seq)
		}
	}
	if _, _, ended := tab.CloseStatus(); ended {
		t.Fatal("B's tab was closed by the outage")
	}
	a.WaitReady(replWait)
	b.WaitReady(replWait)
	noErrorLogs(t, a, b)
}

// TestReplicationNewReplicaConverges: a replica that joins later has the
// same unread counts as the others.
func TestReplicationNewReplicaConverges(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	users := []string{"u1", "u2", "u3"}
	for i, u := range users {
		ids := create(t, a, u, 10+i)
		ids = append(ids, create(t, b, u, 5)...)
		eventually(t, "A and B have "+u, func() error {
			if ua, ub := unreadCount(t, a, u), unreadCount(t, b, u); ua != int64(len(ids)) || ub != ua {
				return fmt.Errorf("A %d B %d", ua, ub)
			}
			return nil
		})
		if _, err := b.RPC.MarkRead(rpcCtx(t), &heraldv1.MarkReadRequest{UserId: u, Ids: ids[:3]}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.RPC.DeleteNotifications(rpcCtx(t),
			&heraldv1.DeleteNotificationsRequest{UserId: u, Ids: ids[len(ids)-2:]}); err != nil {
			t.Fatal(err)
		}
	}
	cn := c.start("C")
	for _, u := range users {
		eventually(t, "C converged on "+u, func() error {
			want := unreadCount(t, a, u)
			if got := unreadCount(t, cn, u); got != want || unreadCount(t, b, u) != want {
				return fmt.Errorf("A %d B %d C %d", want, unreadCount(t, b, u), got)
			}
			return nil
		})
		_, sync := c.tab(cn, u)
		if want := unreadCount(t, a, u); int64(sync.UnreadCount) != want || len(sync.Notifications) != int(want) {
			t.Fatalf("C's unread_sync of %s: count %d with %d notifications, want %d",
				u, sync.UnreadCount, len(sync.Notifications), want)
		}
	}
	noErrorLogs(t, a, b, cn)
}

// TestReplicationRedisRestartKeepsTabs is BH-01 end to end: Redis restarts
// empty while tabs stay connected; live delivery resumes without the tabs
// reconnecting, and what was created during the outage arrives too.
func TestReplicationRedisRestartKeepsTabs(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	tab, _ := c.tab(b, "u1")
	var want []string
	for cycle := range 3 {
		c.redis.Stop()
		want = append(want, create(t, a, "u1", 1)...) // during the outage
		c.redis.Start()
		eventually(t, "B subscribed again", func() error {
			if n := c.redis.NumSub(t, "notifications:u1"); n < 1 {
				return fmt.Errorf("NUMSUB %d", n)
			}
			return nil
		})
		want = append(want, create(t, a, "u1", 1)...) // after it
		eventually(t, fmt.Sprintf("cycle %d delivered", cycle), func() error {
			return onceEach(notified(t, tab), want)
		})
	}
	if _, _, ended := tab.CloseStatus(); ended {
		t.Fatal("the tab was closed")
	}
	noErrorLogs(t, a, b)
}

// TestReplicationBareMessage: a notification another program publishes
// straight onto notifications:{user} reaches the user's tab and is stored on
// every replica under the same ID.
func TestReplicationBareMessage(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	tab, _ := c.tab(a, "u5")
	c.redis.Do(t, "PUBLISH", "notifications:u5", `{"title":"Deploy finished","body":"v2 is live"}`)
	eventually(t, "the tab on A", func() error {
		if n := len(notified(t, tab)); n != 1 {
			return fmt.Errorf("%d notifications", n)
		}
		return nil
	})
	id := notified(t, tab)[0]
	eventually(t, "stored on B", func() error {
		if n := unreadCount(t, b, "u5"); n != 1 {
			return fmt.Errorf("B unread %d", n)
		}
		return nil
	})
	_, sync := c.tab(b, "u5")
	if got := sync.ids(); len(got) != 1 || got[0] != id {
		t.Fatalf("B's unread_sync holds %v, A delivered %s", got, id)
	}
	c.redis.Do(t, "PUBLISH", "notifications:u5", `not json`)
	c.redis.Do(t, "PUBLISH", "notifications:u5", `{"title":"second"}`)
	eventually(t, "the second on A's tab", func() error {
		if n := len(notified(t, tab)); n != 2 {
			return fmt.Errorf("%d notifications", n)
		}
		return nil
	})
	noErrorLogs(t, a, b)
}

// TestReplicationAlternatingCreatesOnce is BH-04 across real replicas: u1
// has a tab on A and one on B, the host creates 1,000 notifications
// alternating between A's and B's RPC, and each tab gets every one exactly
// once, in the order each replica created them. A retry with the same
// idempotency key returns the first notification and pushes nothing.
func TestReplicationAlternatingCreatesOnce(t *testing.T) {
	c := newCluster(t)
	a, b := c.start("A"), c.start("B")
	tabA, _ := c.tab(a, "u1")
	tabB, _ := c.tab(b, "u1")

	var ids, fromA, fromB []string
	for i := range 1000 {
		n, from := a, &fromA
		if i%2 == 1 {
			n, from = b, &fromB
		}
		resp, err := n.RPC.CreateNotification(rpcCtx(t), &heraldv1.CreateNotificationRequest{
			Notification: &heraldv1.NewNotification{UserId: "u1", Type: "task.assigned",
				Title: fmt.Sprintf("#%d", i), IdempotencyKey: fmt.Sprintf("k%d", i)},
		})
		if err != nil {
			t.Fatalf("create %d on %s: %v", i, n.Daemon.NodeID(), err)
		}
		ids = append(ids, resp.Notification.Id)
		*from = append(*from, resp.Notification.Id)
	}
	retry, err := a.RPC.CreateNotification(rpcCtx(t), &heraldv1.CreateNotificationRequest{
		Notification: &heraldv1.NewNotification{UserId: "u1", Type: "task.assigned",
			Title: "#0", IdempotencyKey: "k0"},
	})
	if err != nil || retry.Notification.Id != ids[0] {
		t.Fatalf("retry with key k0: %v %v, want the first notification %s", retry, err, ids[0])
	}

	for name, tab := range map[string]*wsclient.Client{"A": tabA, "B": tabB} {
		eventuallyOnce(t, "1,000 once on "+name+"'s tab", func() error { return onceEach(notified(t, tab), ids) })
		got := notified(t, tab)
		for _, own := range [][]string{fromA, fromB} {
			if !slices.Equal(inOrderOf(got, own), own) {
				t.Fatalf("%s's tab got one replica's notifications out of their order", name)
			}
		}
	}
	if n := unreadCount(t, b, "u1"); n != 1000 {
		t.Fatalf("B counts %d unread, want 1000", n)
	}
	noErrorLogs(t, a, b)
}

// inOrderOf returns the elements of got that are in want, in got's order.
func inOrderOf(got, want []string) []string {
	in := make(map[string]bool, len(want))
	for _, id := range want {
		in[id] = true
	}
	var out []string
	for _, id := range got {
		if in[id] {
			out = append(out, id)
		}
	}
	return out
}
