package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestShutdownFlushesThenCloses1012: frames queued when Shutdown starts
// reach the clients before the 1012 close frame; no client sees 1006; new
// upgrades get 503; every socket goroutine is gone when Shutdown returns.
func TestShutdownFlushesThenCloses1012(t *testing.T) {
	e := newEnv(t, Options{})
	goroutines, _ := settle(t)
	type tab struct {
		c    *wsclient.Client
		user string
		seq  uint64
	}
	var tabs []tab
	for _, u := range []string{"a", "b", "c"} {
		for range 3 {
			c, f := e.dial(u, wsclient.Options{})
			tabs = append(tabs, tab{c, u, decodeSync(t, f).Seq})
		}
	}
	const burst = 200
	for _, u := range []string{"a", "b", "c"} {
		// One commit: its frames are queued to the sockets before Create returns.
		if _, err := e.st.Create(context.Background(), drafts(u, burst)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := e.gw.Shutdown(ctx); !errors.Is(err, ErrShutdown) {
		t.Fatalf("second Shutdown: %v", err)
	}

	for i, tb := range tabs {
		code, reason, err := tb.c.WaitClosed(waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if code != int(CloseRestart) {
			t.Fatalf("tab %d closed with %d %q, want 1012", i, code, reason)
		}
		fs := tb.c.Frames()
		live := fs[1:]
		if len(live) != burst {
			t.Fatalf("tab %d got %d of %d queued frames before the close", i, len(live), burst)
		}
		for j, f := range live {
			if f.Seq != tb.seq+uint64(j)+1 {
				t.Fatalf("tab %d: frame %d has seq %d", i, j, f.Seq)
			}
		}
	}
	if e.gw.Connections() != 0 {
		t.Fatalf("Connections = %d after Shutdown", e.gw.Connections())
	}
	if got := counter(t, e.m.Evictions.WithLabelValues(metrics.EvictShutdown)); got != float64(len(tabs)) {
		t.Fatalf("shutdown evictions = %v", got)
	}
	status, _, err := wsclient.Handshake(e.url, wsclient.Options{Token: e.token("a")})
	if err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("after Shutdown: %d, %v; want 503", status, err)
	}
	// The server side is gone; the clients' read loops ended above.
	eventually(t, "goroutines back to baseline", func() bool {
		g, _ := settle(t)
		return g <= goroutines
	})
}

// TestShutdownDeadlineDropsStalledClients: a client that does not read
// cannot stop Shutdown past its context.
func TestShutdownDeadlineDropsStalledClients(t *testing.T) {
	e := newEnv(t, Options{WriteTimeout: time.Minute, CloseTimeout: time.Minute,
		MaxSyncFrameBytes: 16 << 10, WriteQueueBytes: 64 << 20, WriteQueueFrames: 100_000})
	stalled, _ := e.dial("u1", wsclient.Options{ReceiveBuffer: 4 << 10})
	stalled.Stall()
	healthy, _ := e.dial("u2", wsclient.Options{})
	// Enough to fill the stalled client's socket buffers.
	ds := drafts("u1", 1000)
	for i := range ds {
		ds[i].Body = strings.Repeat("x", 4000)
	}
	if _, err := e.st.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := e.gw.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the context's deadline", err)
	}
	if code, _, err := healthy.WaitClosed(waitTimeout); err != nil || code != int(CloseRestart) {
		t.Fatalf("healthy client: %d, %v; want 1012", code, err)
	}
	stalled.Resume()
	if _, _, err := stalled.WaitClosed(waitTimeout); err != nil {
		t.Fatal(err)
	}
}
