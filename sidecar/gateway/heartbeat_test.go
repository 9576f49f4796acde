package gateway

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestHalfOpenClientsEvicted is BH-07: a client that stopped reading and one
// that reads but never answers are closed and removed once 2×Heartbeat pass
// without a frame from them, and no later than 3×Heartbeat (2 intervals plus
// one of slack for a loaded machine); a healthy client stays.
func TestHalfOpenClientsEvicted(t *testing.T) {
	const hb = 500 * time.Millisecond
	const bound = 3 * hb
	e := newEnv(t, Options{Heartbeat: hb})
	healthy, _ := e.dial("u1", wsclient.Options{})
	start := time.Now()
	// Neither client sends anything after its upgrade request: each is
	// silent from just before its dial.
	stalledSilent := time.Now()
	stalled := e.dialNoSync("u2", wsclient.Options{Stalled: true})
	muteSilent := time.Now()
	mute, _ := e.dial("u3", wsclient.Options{NoAutoPong: true})
	muteClosedAt := make(chan time.Time, 1)
	go func() {
		<-mute.Done()
		muteClosedAt <- time.Now()
	}()
	// The stalled client reads no unread_sync: wait for it to register, so
	// that a zero count below means removed, not not-yet-added.
	eventually(t, "stalled client registered", func() bool { return e.gw.Count("u2") == 1 })

	var stalledGone, muteGone time.Time
	eventually(t, "half-open clients evicted", func() bool {
		now := time.Now()
		if stalledGone.IsZero() && e.gw.Count("u2") == 0 {
			stalledGone = now
		}
		if muteGone.IsZero() && e.gw.Count("u3") == 0 {
			muteGone = now
		}
		return !stalledGone.IsZero() && !muteGone.IsZero()
	})
	t.Logf("evicted %s after connect, heartbeat %s", time.Since(start).Round(time.Millisecond), hb)
	if d := stalledGone.Sub(stalledSilent); d > bound {
		t.Errorf("stalled client removed %s after going silent, want at most %s", d.Round(time.Millisecond), bound)
	}
	if d := muteGone.Sub(muteSilent); d > bound {
		t.Errorf("mute client removed %s after going silent, want at most %s", d.Round(time.Millisecond), bound)
	}
	eventually(t, "evictions counted", func() bool {
		return counter(t, e.m.Evictions.WithLabelValues(metrics.EvictHeartbeat)) == 2
	})
	if _, _, err := mute.WaitClosed(waitTimeout); err != nil {
		t.Fatal(err)
	}
	if d := (<-muteClosedAt).Sub(muteSilent); d > bound {
		t.Errorf("mute client closed %s after going silent, want at most %s", d.Round(time.Millisecond), bound)
	}
	stalled.Resume()
	if _, _, err := stalled.WaitClosed(waitTimeout); err != nil {
		t.Fatal(err)
	}

	// The healthy client answered pings all along and is still there.
	if err := healthy.WaitPings(5, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if e.gw.Count("u1") != 1 {
		t.Fatal("healthy client evicted")
	}
	e.create("u1", 1)
	if _, err := healthy.WaitType(frameNotification, waitTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestClientFramesKeepSocketAlive: a client that never answers protocol
// pings but sends JSON pings (a browser cannot see protocol pings) stays.
func TestClientFramesKeepSocketAlive(t *testing.T) {
	const hb = 400 * time.Millisecond
	e := newEnv(t, Options{Heartbeat: hb})
	c, _ := e.dial("u1", wsclient.Options{NoAutoPong: true})
	for i := range 16 {
		if err := c.Send(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitN(wsclient.Type(framePong), i+1, waitTimeout); err != nil {
			t.Fatal(err)
		}
		// Pace the pings (this is the client's behaviour, not a wait for the
		// server): the test spans 4 intervals, twice the eviction timeout.
		time.Sleep(hb / 4)
	}
	if e.gw.Count("u1") != 1 {
		t.Fatal("client sending frames was evicted")
	}
}

// TestChurnReturnsToBaseline opens and closes 1,000 sockets (clean closes
// and resets) and checks that goroutines and heap come back to baseline.
func TestChurnReturnsToBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("churn test skipped in -short mode")
	}
	const total, parallel = 1000, 25
	// One user for all: the cap must not refuse sockets whose predecessors
	// were reset but not yet noticed.
	e := newEnv(t, Options{MaxConnsPerUser: total})
	e.create("u1", 20)
	warm, _ := e.dial("u1", wsclient.Options{})
	warm.Close()
	eventually(t, "warm-up socket gone", func() bool { return e.gw.Connections() == 0 })
	goroutines, heap := settle(t)
	logs := e.logs.size()

	var wg sync.WaitGroup
	for w := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total / parallel {
				c, _, err := wsclient.Dial(e.url, wsclient.Options{Token: e.token("u1")})
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				switch (w + i) % 3 {
				case 0:
					_, _ = c.WaitType(frameUnreadSync, waitTimeout)
					c.Close()
				case 1:
					_, _ = c.WaitType(frameUnreadSync, waitTimeout)
					c.Kill()
				default: // leave in the middle of the sync
					c.Kill()
				}
			}
		}()
	}
	wg.Wait()
	// A socket reset right after its upgrade may register a little later.
	eventually(t, "every socket registered", func() bool { return counter(t, e.m.Connects) == total+1 })
	eventually(t, "manager empty", func() bool { return e.gw.Connections() == 0 })
	var g2 int
	var h2 uint64
	eventually(t, "goroutines and heap back to baseline", func() bool {
		g2, h2 = settle(t)
		h2 -= e.logs.size() - logs // the captured trace logs grow per socket
		return g2 <= goroutines+2 && h2 <= heap+max(heap/20, 1<<20)
	})
	t.Logf("goroutines %d -> %d, heap in use %d KiB -> %d KiB", goroutines, g2, heap>>10, h2>>10)
}

// settle runs the GC and returns the goroutine count and heap in use.
func settle(tb testing.TB) (int, uint64) {
	tb.Helper()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}
