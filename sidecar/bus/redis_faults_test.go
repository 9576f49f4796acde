package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/bus"
	"github.com/heraldhq/herald/testing/rediskit"
)

// TestRedisRestartResumesLiveDelivery is BH-01: Redis restarts empty while
// B watches u1. Each cycle, what A created during the outage (n2) and after
// it (n3) reaches B exactly once, and B is subscribed again.
func TestRedisRestartResumesLiveDelivery(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	var want []string
	want = append(want, a.create("u1", 1)...)
	waitFor(t, "n1 on B", func() error { return exactlyOnce(b.rec.created("u1"), want) })

	for cycle := range 5 { // BH-01 repeats the restart five times
		srv.Stop()
		waitFor(t, "B not ready", func() error { return errIf(b.b().Ready() == nil, "still ready") })
		want = append(want, a.create("u1", 1)...) // n2, acknowledged while Redis is down
		if cycle == 0 {
			// A long outage: many failed attempts, far past any fixed
			// retry budget, before Redis comes back.
			waitFor(t, "A retried many times", func() error {
				n := a.metric("herald_outbox_ship_errors_total")
				return errIf(n < 20, "%v failed attempts", n)
			})
		}
		srv.Start()
		started := time.Now()
		waitFor(t, "B subscribed again", func() error {
			return errIf(srv.NumSub(t, "notifications:u1") < 1, "NUMSUB 0")
		})
		a.waitReady()
		b.waitReady()
		want = append(want, a.create("u1", 1)...) // n3
		waitFor(t, "n2 and n3 on B", func() error { return exactlyOnce(b.rec.created("u1"), want) })
		t.Logf("cycle %d: Redis start to n2+n3 delivered on B: %v", cycle, time.Since(started))
	}
	if got := b.metric("herald_live_reconnects_total"); got < 5 {
		t.Errorf("herald_live_reconnects_total = %v, want >= 5", got)
	}
}

// TestReadyFollowsRedis: Ready fails while Redis is down or hung, and
// recovers when it is back.
func TestReadyFollowsRedis(t *testing.T) {
	srv, a, _ := pair(t)
	if err := a.b().Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if got := a.metric("herald_redis_up"); got != 1 {
		t.Fatalf("herald_redis_up = %v", got)
	}

	srv.Stop()
	waitFor(t, "not ready while stopped", func() error {
		if err := a.b().Ready(); !errors.Is(err, bus.ErrRedisDown) && !errors.Is(err, bus.ErrLiveDown) {
			return errIf(true, "Ready() = %v", err)
		}
		return errIf(a.metric("herald_redis_up") != 0, "herald_redis_up still 1")
	})
	srv.Start()
	a.waitReady()

	// A hung Redis (SIGSTOP): connections stay open, nothing answers.
	srv.Pause()
	paused := time.Now()
	waitFor(t, "not ready while hung", func() error {
		return errIf(a.b().Ready() == nil, "still ready")
	})
	t.Logf("hung Redis to not-ready: %v (health interval 300ms)", time.Since(paused))
	// The live connection is half-open now: only the health check can tell.
	waitFor(t, "silent live connection detected", func() error {
		return errIf(!a.logged("no answer from the live connection"), "not logged")
	})
	srv.Resume()
	a.waitReady()
}

// TestLiveConnectionKilled: Redis drops the Pub/Sub connection (CLIENT
// KILL); the replica reconnects, resubscribes and catches up what it missed.
func TestLiveConnectionKilled(t *testing.T) {
	srv, a, b := pair(t)
	watch(t, srv, b, "u1")
	var want []string
	for range 3 {
		srv.Do(t, "CLIENT", "KILL", "TYPE", "pubsub")
		want = append(want, a.create("u1", 5)...)
		waitFor(t, "delivered", func() error { return exactlyOnce(b.rec.created("u1"), want) })
		waitFor(t, "B subscribed", func() error {
			return errIf(srv.NumSub(t, "notifications:u1") != 1, "NUMSUB %d", srv.NumSub(t, "notifications:u1"))
		})
	}
	if n := b.metric("herald_live_reconnects_total"); n < 1 {
		t.Fatalf("herald_live_reconnects_total = %v", n)
	}
}

// TestReadyWithinTenSeconds measures, with the default health interval,
// how long a hung Redis takes to turn Ready into an error. PROTOCOL.md
// promises 10 s; the figure is logged, and only a gross overrun fails.
func TestReadyWithinTenSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("uses the default health interval")
	}
	srv := rediskit.Start(t)
	a := newNode(t, srv, "A", func(o *bus.RedisOptions) { o.HealthInterval = 0 })
	a.waitReady()
	srv.Pause()
	paused := time.Now()
	waitFor(t, "not ready while hung", func() error { return errIf(a.b().Ready() == nil, "still ready") })
	took := time.Since(paused)
	t.Logf("hung Redis to not-ready with default intervals: %v", took)
	if took > 30*time.Second {
		t.Errorf("took %v, PROTOCOL.md promises 10s", took)
	}
	srv.Resume()
	a.waitReady()
}

// TestStreamGapIsReported: entries trimmed before a replica read them are
// reported at error level and counted.
func TestStreamGapIsReported(t *testing.T) {
	srv, a, b := pair(t)
	first := a.create("u1", 3)
	waitFor(t, "B has the first", func() error { return exactlyOnce(b.rec.created("u1"), first) })
	b.stopBus()
	a.create("u1", 5)
	waitFor(t, "A shipped", func() error { return errIf(a.outboxDepth() != 0, "%d", a.outboxDepth()) })
	// Trim everything, as the retention would after a long absence.
	srv.Do(t, "XTRIM", "{herald}:changes", "MAXLEN", "0")

	b.logs.allow("stream cursor fell out of the retention window")
	b.startBus()
	b.waitReady()
	if got := b.metric("herald_stream_gaps_total"); got != 1 {
		t.Fatalf("herald_stream_gaps_total = %v, want 1", got)
	}
	if !b.logged("stream cursor fell out of the retention window") {
		t.Fatal("the gap was not logged")
	}
	later := a.create("u1", 2)
	waitFor(t, "B gets later changes", func() error {
		got := b.rec.created("u1")
		return exactlyOnce(got[len(got)-min(len(got), 2):], later)
	})
}

// TestStreamKeepsTheRetentionWindow: shipping trims the catch-up stream to
// --stream-retention (whole stream nodes, as Redis trims approximately),
// and keeps what is younger.
func TestStreamKeepsTheRetentionWindow(t *testing.T) {
	srv := rediskit.Start(t)
	const retention = 2 * time.Second
	a := newNode(t, srv, "A", func(o *bus.RedisOptions) { o.StreamRetention = retention })
	a.waitReady()
	xlen := func() int64 { return srv.Do(t, "XLEN", "{herald}:changes").(int64) }

	a.createBatch("u1", 250)
	waitFor(t, "A shipped", func() error { return errIf(a.outboxDepth() != 0, "depth %d", a.outboxDepth()) })
	if n := xlen(); n != 250 {
		t.Fatalf("stream holds %d entries within the window, want 250", n)
	}
	time.Sleep(retention + 500*time.Millisecond) // let the 250 age out of the window
	newest := a.create("u1", 1)
	waitFor(t, "the stream trimmed", func() error {
		return errIf(xlen() > 151, "stream holds %d entries", xlen())
	})
	last := srv.Do(t, "XREVRANGE", "{herald}:changes", "+", "-", "COUNT", "1").([]any)
	if len(last) != 1 || !strings.Contains(fmt.Sprint(last[0]), newest[0]) {
		t.Fatalf("the newest change is not the stream's last entry: %v", last)
	}
}

// TestStopFlushesAndReturns: cancelling Run ships what the outbox holds
// and returns promptly.
func TestStopFlushesAndReturns(t *testing.T) {
	_, a, b := pair(t)
	a.stopBus()
	ids := a.createBatch("u1", 50)
	// A's bus starts and is stopped at once: the shipper gets at least its
	// last flush.
	a.startBus()
	start := time.Now()
	a.stopBus()
	t.Logf("Run returned %v after cancel", time.Since(start))
	if d := a.outboxDepth(); d != 0 {
		t.Fatalf("outbox depth %d after stop, want 0", d)
	}
	waitFor(t, "B has them", func() error { return exactlyOnce(b.rec.created("u1"), ids) })
	if err := a.store.SetCursor(context.Background(), "probe", "x"); err != nil {
		t.Fatalf("store unusable after bus stop: %v", err)
	}
}

// TestStopWithHungRedis: a Redis that hangs does not hold Run past the
// flush timeout by much (go-plugin kills a plugin 2s after asking it to
// stop). The time is logged; only a gross overrun fails.
func TestStopWithHungRedis(t *testing.T) {
	srv, a, _ := pair(t)
	a.open("u1")
	a.create("u1", 10)
	srv.Pause()
	t.Cleanup(srv.Resume)
	a.create("u1", 10) // left in the outbox
	start := time.Now()
	a.stopBus()
	took := time.Since(start)
	t.Logf("Run returned %v after cancel with a hung Redis (flush timeout 1s)", took)
	if took > 10*time.Second {
		t.Errorf("Run took %v to return", took)
	}
}
