package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestSlowClientClosed1013: a client of u1 that stops reading while frames
// pour in is closed with 1013 once its write queue is full; the healthy
// clients of u1 and u2 get every frame.
func TestSlowClientClosed1013(t *testing.T) {
	e := newEnv(t, Options{
		Heartbeat:         time.Minute, // only the queue may evict here
		WriteTimeout:      time.Minute,
		WriteQueueFrames:  64,
		WriteQueueBytes:   128 << 10,
		MaxSyncFrameBytes: 16 << 10,
	})
	slow, _ := e.dial("u1", wsclient.Options{ReceiveBuffer: 4 << 10})
	slow.Stall()
	healthy1, s1 := e.dial("u1", wsclient.Options{})
	healthy2, s2 := e.dial("u2", wsclient.Options{})

	body := strings.Repeat("x", 12_000)
	created := map[string]int{}
	evicted := func() bool { return e.gw.Count("u1") == 1 }
	// The time from a create's commit to its frames on both healthy clients,
	// while the stalled one is still connected. Were a healthy client's
	// frames held behind the stalled socket, a round would take up to the
	// minute-long write timeout.
	var worst time.Duration
	for i := 0; !evicted(); i++ {
		if i == 500 {
			slow.Resume()
			t.Fatalf("the stalled client was never evicted; frames %d; logs:\n%s", len(slow.Frames()), tail(e.logs.String(), 3000))
		}
		for _, u := range []string{"u1", "u2"} {
			ds := drafts(u, 10)
			for j := range ds {
				ds[j].Body = body
			}
			if _, err := e.st.Create(context.Background(), ds); err != nil {
				t.Fatal(err)
			}
			created[u] += len(ds)
		}
		// Let the healthy clients keep up, so only the stalled one lags.
		committed := time.Now()
		for u, c := range map[string]*wsclient.Client{"u1": healthy1, "u2": healthy2} {
			if _, err := c.WaitN(wsclient.Type(frameNotification), created[u], waitTimeout); err != nil {
				t.Fatalf("healthy %s: %v", u, err)
			}
		}
		worst = max(worst, time.Since(committed))
	}
	// A bound far below the write timeout, with room for a loaded CI box.
	if worst > 5*time.Second {
		t.Fatalf("healthy clients waited up to %v for their frames while a client of u1 was stalled", worst)
	}
	t.Logf("healthy clients' slowest round while the stalled client was connected: %v", worst)
	// A few more after the eviction: the healthy ones still get them.
	for _, u := range []string{"u1", "u2"} {
		if _, err := e.st.Create(context.Background(), drafts(u, 20)); err != nil {
			t.Fatal(err)
		}
		created[u] += 20
	}
	t.Logf("evicted after %d notifications per user", created["u1"]-20)

	if got := counter(t, e.m.Evictions.WithLabelValues(metrics.EvictSlowClient)); got != 1 {
		t.Fatalf("slow_client evictions = %v, want 1", got)
	}
	slow.Resume()
	code, reason, err := slow.WaitClosed(waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != int(CloseTryAgain) {
		t.Fatalf("stalled client closed with %d %q, want 1013", code, reason)
	}

	for name, c := range map[string]struct {
		cl    *wsclient.Client
		sync  wsclient.Frame
		count int
	}{"u1": {healthy1, s1, created["u1"]}, "u2": {healthy2, s2, created["u2"]}} {
		fs, err := c.cl.WaitN(wsclient.Type(frameNotification), c.count, waitTimeout)
		if err != nil {
			t.Fatalf("healthy %s: %v", name, err)
		}
		last := decodeSync(t, c.sync).Seq
		for _, f := range fs {
			if f.Seq != last+1 {
				t.Fatalf("healthy %s: seq %d after %d", name, f.Seq, last)
			}
			last = f.Seq
		}
		if len(fs) != c.count {
			t.Fatalf("healthy %s: %d frames, want %d", name, len(fs), c.count)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
