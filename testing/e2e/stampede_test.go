package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/sdk/herald"
	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/testing/rediskit"
	"github.com/heraldhq/herald/testing/wsclient"
)

// Stampede sizes: scaled down from BH-14's 3,000 users so that the test
// runs in seconds next to the race detector; the shape is the same (a
// tenth of the users with a backlog over the sync limit, the rest 0-20).
const (
	stampedeUsers   = 300
	stampedeBig     = 30  // users with a backlog
	stampedeBacklog = 600 // over the default --sync-limit of 500
	stampedeWait    = 30 * time.Second
)

// replicaProc is a real `herald serve` process of a two-replica cluster.
type replicaProc struct {
	id, dataDir, socket, addr string
	args                      []string
	cmd                       *exec.Cmd
	stderr                    *syncBuffer
	done                      chan error
}

func startReplica(t *testing.T, r *replicaProc) {
	t.Helper()
	r.stderr, r.done = &syncBuffer{}, make(chan error, 1)
	r.cmd = exec.Command(heraldBin, append([]string{"serve", "--data-dir", r.dataDir,
		"--socket", r.socket, "--http-addr", r.addr, "--node-id", r.id}, r.args...)...)
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, done, exited := r.cmd, r.done, make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitFor(t, stampedeWait, r.id+" ready", func() bool {
		resp, err := http.Get("http://" + r.addr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// connections reads herald_connections from the replica's /metrics.
func (r *replicaProc) connections(t *testing.T) int {
	t.Helper()
	return int(metric(t, "http://"+r.addr, "herald_connections"))
}

// stampedeTab is one browser tab of the stampede: its user and what it must see.
type stampedeTab struct {
	user   string
	unread int
	ws     *wsclient.Client
}

// TestReconnectStampede is BH-14(b). Every tab of a replica that is stopped
// moves to the other replica at once:
//   - on SIGTERM, each socket is closed with 1012 (none abnormally), and the
//     replica exits 0;
//   - after a SIGKILL the tabs reconnect too, here with client jitter;
//   - each time, every tab gets its unread_sync within stampedeWait with its
//     user's full unread count, the surviving replica counts exactly the
//     tabs it holds (no ghosts), and none is evicted over the next heartbeats.
//
// The host's create latency on the surviving replica during the storm is
// logged, not asserted: it is a measurement (testing/load storm).
func TestReconnectStampede(t *testing.T) {
	srv := rediskit.Start(t)
	dir := shortDir(t)
	secret := []byte("stampede-test-secret-0123456789abcdefgh")
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--redis-url", srv.URL(), "--redis-namespace", "stampede",
		"--jwt-secret-file", secretFile, "--heartbeat", "1s", "--shutdown-timeout", "10s",
		"--log-level", "warn"}
	replica := func(id string) *replicaProc {
		d := filepath.Join(dir, id)
		return &replicaProc{id: id, dataDir: d, socket: filepath.Join(dir, id+".sock"),
			addr: freeAddr(t), args: common}
	}
	a, b := replica("A"), replica("B")
	startReplica(t, a)
	startReplica(t, b)
	hostA := attach(t, a.socket)

	// The backlog, created on A; B catches up through the stream.
	tabs := make([]*stampedeTab, stampedeUsers)
	for i := range tabs {
		n := i % 21
		if i < stampedeBig {
			n = stampedeBacklog
		}
		tabs[i] = &stampedeTab{user: fmt.Sprintf("user-%03d", i), unread: n}
		createFor(t, hostA, tabs[i].user, n)
	}
	hostB := attach(t, b.socket)
	eventually(t, "B caught up with A's backlog", func() error {
		for _, st := range tabs {
			if n, err := hostB.UnreadCount(testCtx(t, stampedeWait), st.user); err != nil || int(n) != st.unread {
				return fmt.Errorf("%s: %d unread on B, want %d (%v)", st.user, n, st.unread, err)
			}
		}
		return nil
	})

	connectAll(t, tabs, a, secret, 0)
	if n := a.connections(t); n != stampedeUsers {
		t.Fatalf("A counts %d connections, want %d", n, stampedeUsers)
	}

	// SIGTERM A: every tab gets 1012 and reconnects to B at once.
	probe := startProbe(t, hostB)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	codes := moveAll(t, tabs, b, secret, 0)
	if codes[1012] != stampedeUsers {
		t.Errorf("close codes from the SIGTERM: %v, want all %d to be 1012", codes, stampedeUsers)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("A exited with %v after SIGTERM; stderr:\n%s", err, a.stderr.String())
		}
	case <-time.After(stampedeWait):
		t.Fatal("A still running after SIGTERM")
	}
	probe.stop(t, "B during the SIGTERM stampede")
	settled(t, tabs, b)

	// Restart A, then SIGKILL B: the tabs lose B without a close frame and
	// come back to A with jitter.
	startReplica(t, a)
	probe = startProbe(t, attach(t, a.socket))
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	codes = moveAll(t, tabs, a, secret, time.Second)
	if codes[1012] != 0 {
		t.Errorf("close codes after SIGKILL %v: no close frame can have come", codes)
	}
	probe.stop(t, "A during the SIGKILL stampede")
	settled(t, tabs, a)
}

// attach attaches the Go SDK to a sidecar socket for the test's duration.
func attach(t *testing.T, socket string) *herald.Client {
	t.Helper()
	c, err := herald.Attach(testCtx(t, stampedeWait), socket)
	if err != nil {
		t.Fatalf("attach %s: %v", socket, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// createFor creates n notifications for user, in calls of 100.
func createFor(t *testing.T, c *herald.Client, user string, n int) {
	t.Helper()
	for n > 0 {
		k := min(100, n)
		batch := make([]herald.NewNotification, k)
		for i := range batch {
			batch[i] = herald.NewNotification{UserID: user, Type: "task.assigned",
				Title: "Task assigned to you", Body: strings.Repeat("b", 200)}
		}
		if _, err := c.CreateNotifications(testCtx(t, stampedeWait), batch); err != nil {
			t.Fatalf("create for %s: %v", user, err)
		}
		n -= k
	}
}

// connectAll opens every tab on r, each after a random delay below jitter,
// all at once, and checks its unread_sync.
func connectAll(t *testing.T, tabs []*stampedeTab, r *replicaProc, secret []byte, jitter time.Duration) {
	t.Helper()
	issuer := auth.NewHS256Issuer(secret)
	url := "ws://" + r.addr + "/ws"
	errs := make(chan error, len(tabs))
	var wg sync.WaitGroup
	for _, st := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if jitter > 0 {
				time.Sleep(rand.N(jitter))
			}
			errs <- st.connect(issuer, url)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func (st *stampedeTab) connect(issuer *auth.Issuer, url string) error {
	token, _, err := issuer.Issue(st.user, time.Hour)
	if err != nil {
		return err
	}
	ws, _, err := wsclient.Dial(url, wsclient.Options{Token: token})
	if err != nil {
		return fmt.Errorf("%s: connect: %w", st.user, err)
	}
	f, err := ws.WaitType("unread_sync", stampedeWait)
	if err != nil {
		ws.Close()
		return fmt.Errorf("%s: no unread_sync: %w", st.user, err)
	}
	var s syncFrame
	if err := f.Decode(&s); err != nil {
		ws.Close()
		return fmt.Errorf("%s: decode unread_sync: %w", st.user, err)
	}
	if s.UnreadCount != st.unread || s.Truncated != (st.unread > 500) {
		ws.Close()
		return fmt.Errorf("%s: unread_sync says %d unread, truncated %v; want %d", st.user, s.UnreadCount, s.Truncated, st.unread)
	}
	st.ws = ws
	return nil
}

// moveAll waits for every tab's socket to end and reconnects it to r, and
// returns how many ended with each close code (0: no close frame).
func moveAll(t *testing.T, tabs []*stampedeTab, r *replicaProc, secret []byte, jitter time.Duration) map[int]int {
	t.Helper()
	codes := map[int]int{}
	for _, st := range tabs {
		code, _, err := st.ws.WaitClosed(stampedeWait)
		if err != nil {
			t.Fatalf("%s: socket still open after its replica stopped: %v", st.user, err)
		}
		codes[code]++
		st.ws.Close()
	}
	connectAll(t, tabs, r, secret, jitter)
	return codes
}

// settled checks that r counts exactly the tabs and evicts none of them
// over three heartbeats.
func settled(t *testing.T, tabs []*stampedeTab, r *replicaProc) {
	t.Helper()
	eventually(t, r.id+" counts every tab once", func() error {
		if n := r.connections(t); n != len(tabs) {
			return fmt.Errorf("%d connections, want %d", n, len(tabs))
		}
		return nil
	})
	time.Sleep(3 * time.Second) // three --heartbeat intervals
	for _, st := range tabs {
		if code, reason, ended := st.ws.CloseStatus(); ended {
			t.Fatalf("%s: a healthy tab was closed (%d %q) after the stampede", st.user, code, reason)
		}
	}
	if n := r.connections(t); n != len(tabs) {
		t.Fatalf("%s counts %d connections after three heartbeats, want %d", r.id, n, len(tabs))
	}
}

// probe creates notifications for a user with no tab in a loop, timing the
// host's calls while the stampede runs.
type probe struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	latency []time.Duration
	err     error
}

func startProbe(t *testing.T, c *herald.Client) *probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			start := time.Now()
			_, err := c.CreateNotification(ctx, herald.NewNotification{UserID: "probe", Type: "t", Title: "probe"})
			p.mu.Lock()
			if err != nil && ctx.Err() == nil {
				p.err = err
			}
			p.latency = append(p.latency, time.Since(start))
			p.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

func (p *probe) stop(t *testing.T, what string) {
	t.Helper()
	p.cancel()
	<-p.done
	if p.err != nil {
		t.Fatalf("host create on %s failed: %v", what, p.err)
	}
	if len(p.latency) == 0 {
		return
	}
	slices.Sort(p.latency)
	t.Logf("host CreateNotification on %s: %d calls, p50 %v, p99 %v, max %v", what, len(p.latency),
		p.latency[len(p.latency)/2], p.latency[len(p.latency)*99/100], p.latency[len(p.latency)-1])
}
