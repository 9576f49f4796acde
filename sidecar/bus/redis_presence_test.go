package bus_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
)

func TestWatchUnwatchSubscriptions(t *testing.T) {
	srv, _, b := pair(t)
	b.open("u1")
	b.open("u1") // a second tab: no second SUBSCRIBE needed
	waitFor(t, "subscribed", func() error {
		return errIf(srv.NumSub(t, "notifications:u1") != 1, "NUMSUB %d", srv.NumSub(t, "notifications:u1"))
	})
	b.close("u1") // one tab left: stays subscribed
	watch(t, srv, b, "u2")
	if n := srv.NumSub(t, "notifications:u1"); n != 1 {
		t.Fatalf("NUMSUB u1 = %d with a tab left, want 1", n)
	}
	b.close("u1")
	waitFor(t, "unsubscribed", func() error {
		return errIf(srv.NumSub(t, "notifications:u1") != 0, "NUMSUB %d", srv.NumSub(t, "notifications:u1"))
	})
	if n := srv.NumSub(t, "notifications:u2"); n != 1 {
		t.Fatalf("NUMSUB u2 = %d, want 1", n)
	}
	// Unwatch racing a Watch of the same user coalesces to the last one.
	b.b().Unwatch("u2")
	b.b().Watch("u2")
	watch(t, srv, b, "u3")
	if n := srv.NumSub(t, "notifications:u2"); n != 1 {
		t.Fatalf("NUMSUB u2 = %d after Unwatch+Watch, want 1", n)
	}
}

func TestPresenceAcrossReplicas(t *testing.T) {
	_, a, b := pair(t)
	a.open("u1")
	a.open("u1")
	b.open("u1")
	presence := func(n *node, want map[string]int64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%s sees presence %v", n.id, want), func() error {
			got, err := n.b().Presence(context.Background(), "u1")
			if err != nil {
				return err
			}
			return errIf(!maps.Equal(got, want), "got %v", got)
		})
	}
	presence(a, map[string]int64{"A": 2, "B": 1})
	presence(b, map[string]int64{"A": 2, "B": 1})

	a.open("u1") // a third tab: no Watch, the count follows within a second
	presence(b, map[string]int64{"A": 3, "B": 1})
	a.close("u1")

	b.close("u1")
	presence(a, map[string]int64{"A": 2})
	presence(b, map[string]int64{"A": 2, "B": 0})

	a.stopBus() // a stopping replica removes its presence
	presence(b, map[string]int64{"B": 0})
}

// TestResubscribesExactlyTheWantedSet: after a Redis restart the replica
// is subscribed to the channels of the users it holds sockets of, also
// those who connected during the outage, and not to those who left.
func TestResubscribesExactlyTheWantedSet(t *testing.T) {
	srv, _, b := pair(t)
	watch(t, srv, b, "stay")
	watch(t, srv, b, "leave")
	srv.Stop()
	waitFor(t, "B not ready", func() error { return errIf(b.b().Ready() == nil, "still ready") })
	b.close("leave")
	b.open("join")
	srv.Start()
	b.waitReady()
	waitFor(t, "resubscribed", func() error {
		s, j := srv.NumSub(t, "notifications:stay"), srv.NumSub(t, "notifications:join")
		return errIf(s != 1 || j != 1, "stay %d join %d", s, j)
	})
	// The resync after the reconnect has run once the metric counts it.
	waitFor(t, "reconnect counted", func() error {
		return errIf(b.metric("herald_live_reconnects_total") < 1, "not yet")
	})
	watch(t, srv, b, "marker") // the control loop has handled everything before it
	if n := srv.NumSub(t, "notifications:leave"); n != 0 {
		t.Fatalf("NUMSUB leave = %d after it left during the outage", n)
	}
}
