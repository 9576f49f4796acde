package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/testing/heraldtest"
)

// readyBound is PROTOCOL.md's "within 10 s" plus slack for a loaded CI
// machine.
const readyBound = 15 * time.Second

// TestHealthReadyAndMetrics is what an operator's probes and dashboards
// see: /healthz answers 200 throughout, /readyz turns 503 when Redis goes
// away and 200 when it is back, while the open tab stays connected; and
// /metrics counts the tab and the frames pushed to it.
func TestHealthReadyAndMetrics(t *testing.T) {
	c := newCluster(t)
	a := c.start("A")
	base := "http://" + a.HTTPAddr
	tab, _ := c.tab(a, "u1")

	before := metric(t, base, "herald_frames_out_total")
	create(t, a, "u1", 3)
	eventually(t, "3 notifications on the tab", func() error {
		if n := countType(tab.Frames(), "notification"); n != 3 {
			return fmt.Errorf("%d notification frames", n)
		}
		return nil
	})
	eventually(t, "metrics of the deliveries", func() error {
		if got := metric(t, base, "herald_connections"); got != 1 {
			return fmt.Errorf("herald_connections %v, want 1", got)
		}
		if got := metric(t, base, "herald_frames_out_total") - before; got < 3 {
			return fmt.Errorf("herald_frames_out_total grew by %v, want at least 3", got)
		}
		if got := metric(t, base, "herald_delivery_seconds_count"); got < 3 {
			return fmt.Errorf("herald_delivery_seconds_count %v, want at least 3", got)
		}
		return nil
	})

	c.redis.Stop()
	waitStatus(t, base+"/readyz", http.StatusServiceUnavailable, readyBound)
	if code := status(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d while Redis is down, want 200: the process is fine", code)
	}
	c.redis.Start()
	waitStatus(t, base+"/readyz", http.StatusOK, readyBound)
	if _, _, ended := tab.CloseStatus(); ended {
		t.Fatal("the tab was closed during the Redis outage")
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls url until it answers want, failing after bound.
func waitStatus(t *testing.T, url string, want int, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		got := status(t, url)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers %d after %v, want %d", url, got, bound, want)
		}
		time.Sleep(100 * time.Millisecond) // polling pace
	}
}

// metric returns the value of an unlabelled sample on /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q is not a number", name, v)
			}
			return f
		}
	}
	t.Fatalf("no sample %s on /metrics", name)
	return 0
}

// TestDefaultNodeIDIsKeptWithTheData: without --node-id a replica names
// itself once and keeps the name in its data directory, so a restart is
// the same replica to the others (its presence, the origin of its changes)
// and another data directory is another replica.
func TestDefaultNodeIDIsKeptWithTheData(t *testing.T) {
	dir := t.TempDir()
	first := heraldtest.Start(t, heraldtest.Options{DataDir: dir})
	id := first.Daemon.NodeID()
	if !strings.HasPrefix(id, "herald-") {
		t.Fatalf("generated node id %q", id)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	again := heraldtest.Start(t, heraldtest.Options{DataDir: dir})
	if got := again.Daemon.NodeID(); got != id {
		t.Fatalf("node id after a restart on the same data %q, want %q", got, id)
	}
	other := heraldtest.Start(t, heraldtest.Options{})
	if other.Daemon.NodeID() == id {
		t.Fatalf("two data directories share the node id %q", id)
	}
	// --node-id wins over the stored one, and is kept from then on.
	if err := again.Stop(); err != nil {
		t.Fatal(err)
	}
	named := heraldtest.Start(t, heraldtest.Options{DataDir: dir, NodeID: "pod-a"})
	if got := named.Daemon.NodeID(); got != "pod-a" {
		t.Fatalf("node id %q with --node-id pod-a", got)
	}
}
