package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/sdk/herald"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestSIGTERMClosesSocketsWith1012AndExitsZero runs the real binary with
// browser sockets open and notifications acknowledged, sends SIGTERM, and
// checks what clients and the host see: every socket gets close code 1012
// (never an abnormal 1006), frames queued before the signal arrive before
// the close, the process exits 0 within its shutdown bound, and after a
// restart every acknowledged notification is still unread.
func TestSIGTERMClosesSocketsWith1012AndExitsZero(t *testing.T) {
	dir := shortDir(t)
	dataDir, socket, addr := filepath.Join(dir, "data"), filepath.Join(dir, "h.sock"), freeAddr(t)
	serve := func() (*exec.Cmd, *syncBuffer, chan error) {
		cmd := exec.Command(heraldBin, "serve", "--data-dir", dataDir, "--socket", socket,
			"--http-addr", addr, "--shutdown-timeout", "5s")
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		exited := make(chan struct{})
		go func() { done <- cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		return cmd, stderr, done
	}
	cmd, stderr, done := serve()
	p := &sidecarProc{socket: socket}
	c := p.attach(t)
	defer c.Close()

	token, err := exec.Command(heraldBin, "token", "--user", "u1", "--data-dir", dataDir).Output()
	if err != nil {
		t.Fatalf("herald token: %v", err)
	}
	url := "ws://" + addr + "/ws"
	var tabs []*wsclient.Client
	for range 10 {
		tab, _, err := wsclient.Dial(url, wsclient.Options{Token: strings.TrimSpace(string(token))})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if _, err := tab.WaitType("unread_sync", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		tabs = append(tabs, tab)
	}

	const created = 50
	for i := range created {
		_, err := c.CreateNotification(testCtx(t, 10*time.Second), herald.NewNotification{
			UserID: "u1", Type: "task.assigned", Title: fmt.Sprintf("task %d", i),
		})
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	for i, tab := range tabs {
		code, reason, err := tab.WaitClosed(15 * time.Second)
		if err != nil {
			t.Fatalf("tab %d: %v", i, err)
		}
		if code != 1012 {
			t.Errorf("tab %d closed with %d %q, want 1012", i, code, reason)
		}
		if n := countType(tab.Frames(), "notification"); n != created {
			t.Errorf("tab %d got %d notification frames before the close, want %d", i, n, created)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("herald serve exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("herald serve still running 20s after SIGTERM; stderr:\n%s", stderr.String())
	}

	// Everything acknowledged survives the stop.
	serve()
	c2 := p.attach(t)
	defer c2.Close()
	n, err := c2.UnreadCount(testCtx(t, 10*time.Second), "u1")
	if err != nil || n != created {
		t.Fatalf("after restart UnreadCount = %d, %v; want %d", n, err, created)
	}
}

func countType(frames []wsclient.Frame, typ string) int {
	n := 0
	for _, f := range frames {
		if f.Type == typ {
			n++
		}
	}
	return n
}
