package bus_test

import (
	"testing"

	"github.com/heraldhq/herald/testing/rediskit"
)

func TestLiveAndCatchUpDelivery(t *testing.T) {
	srv := rediskit.Start(t)
	a := newNode(t, srv, "A", nil)
	b := newNode(t, srv, "B", nil)
	a.waitReady()
	b.waitReady()

	b.open("u1")
	waitFor(t, "B subscribed", func() error {
		return errIf(srv.NumSub(t, "notifications:u1") < 1, "NUMSUB 0")
	})
	ids := a.create("u1", 1)
	ids = append(ids, a.create("u2", 1)...) // nobody watches u2: catch-up only
	waitFor(t, "B has both", func() error {
		return exactlyOnce(append(b.rec.created("u1"), b.rec.created("u2")...), ids)
	})
	waitFor(t, "live path saw u1", func() error {
		n := b.metric("herald_remote_changes_total", "path", "live")
		return errIf(n < 1, "live path count %v", n)
	})
}
