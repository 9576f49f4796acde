package e2e

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/sdk/herald"
)

// exerciseRPC runs the host's everyday calls against a Herald.
func exerciseRPC(t *testing.T, c *herald.Client) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	var ids []string
	for _, title := range []string{"Task 17 assigned to you", "You were mentioned", "Task 9 is blocked"} {
		n, err := c.CreateNotification(ctx, herald.NewNotification{
			UserID: "42", Type: "task.assigned", Title: title, Link: "/tasks/17",
		})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		ids = append(ids, n.ID)
	}
	page, err := c.ListNotifications(ctx, herald.ListOptions{UserID: "42"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(page.Notifications) != 3 || page.Notifications[0].ID != ids[2] || page.Next != "" {
		t.Fatalf("list: %+v", page)
	}
	if n, err := c.UnreadCount(ctx, "42"); err != nil || n != 3 {
		t.Fatalf("unread count: %d, %v", n, err)
	}
	res, err := c.MarkRead(ctx, "42", ids[:2])
	if err != nil || len(res.Changed) != 2 || res.UnreadCount != 1 {
		t.Fatalf("mark read: %+v, %v", res, err)
	}
	if n, err := c.UnreadCount(ctx, "42"); err != nil || n != 1 {
		t.Fatalf("unread count after mark read: %d, %v", n, err)
	}
	if _, err := c.MarkRead(ctx, "42", []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV"}); !errors.Is(err, herald.ErrNotFound) {
		t.Fatalf("mark read of an unknown id: %v, want ErrNotFound", err)
	}
	_, err = c.CreateNotification(ctx, herald.NewNotification{UserID: "42", Type: "t"})
	if !errors.Is(err, herald.ErrInvalidArgument) {
		t.Fatalf("create without title: %v, want ErrInvalidArgument", err)
	}
}

// TestPluginMode launches the real binary through go-plugin, uses it, and
// checks that Close stops it gracefully.
func TestPluginMode(t *testing.T) {
	logger, logs := captureLogger()
	launchCtx, endLaunch := context.WithTimeout(context.Background(), 60*time.Second)
	c, err := herald.Launch(launchCtx, herald.LaunchConfig{
		Path:   heraldBin,
		Args:   []string{"serve", "--data-dir", shortDir(t), "--http-addr", "127.0.0.1:0"},
		Logger: logger,
	})
	endLaunch() // the context bounds the start only; Herald lives on
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	pid := c.PID()
	if pid <= 0 {
		t.Fatalf("PID %d", pid)
	}
	exerciseRPC(t, c)

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Fatalf("herald (pid %d) still runs after Close", pid)
	}
	if !c.Exited() {
		t.Fatal("Exited is false after Close")
	}
	out := logs.String()
	if strings.Contains(out, "plugin failed to exit gracefully") {
		t.Fatalf("herald had to be killed:\n%s", out)
	}
	if !strings.Contains(out, "herald stopped") {
		t.Fatalf("herald's own logs did not reach the host logger:\n%s", out)
	}
	if errs := errorLines(out); len(errs) > 0 {
		t.Fatalf("error lines in the host log:\n%s", strings.Join(errs, "\n"))
	}
	if _, err := c.UnreadCount(testCtx(t, 5*time.Second), "42"); !errors.Is(err, herald.ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
}

// sidecarProc is a `herald serve --socket` child process.
type sidecarProc struct {
	cmd    *exec.Cmd
	socket string
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan error
}

func startSidecar(t *testing.T, extra ...string) *sidecarProc {
	t.Helper()
	dir := shortDir(t)
	p := &sidecarProc{
		socket: filepath.Join(dir, "h.sock"),
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		done:   make(chan error, 1),
	}
	args := append([]string{
		"serve", "--socket", p.socket, "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:0", "--log-level", "debug",
	}, extra...)
	p.cmd = exec.Command(heraldBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// attach attaches to the sidecar, retrying while it starts.
func (p *sidecarProc) attach(t *testing.T) *herald.Client {
	t.Helper()
	var c *herald.Client
	waitFor(t, 30*time.Second, "the sidecar accepts an attach", func() bool {
		var err error
		c, err = herald.Attach(testCtx(t, 10*time.Second), p.socket)
		if err != nil && !errors.Is(err, herald.ErrUnavailable) {
			t.Fatalf("attach: %v", err)
		}
		return err == nil
	})
	return c
}

// stop sends SIGTERM and waits for a clean exit.
func (p *sidecarProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("herald serve exited with %v; stderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("herald serve did not exit on SIGTERM; stderr:\n%s", p.stderr.String())
	}
}

// TestSidecarMode attaches to a real `herald serve --socket`, uses it, and
// checks that Close leaves the shared sidecar running.
func TestSidecarMode(t *testing.T) {
	p := startSidecar(t)
	c := p.attach(t)
	exerciseRPC(t, c)
	if c.PID() != 0 {
		t.Fatalf("PID %d of an attached client, want 0", c.PID())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		t.Fatalf("the sidecar exited when a host closed: %v; stderr:\n%s", err, p.stderr.String())
	default:
	}

	// Another host attaches and sees the first one's state.
	again := p.attach(t)
	if n, err := again.UnreadCount(testCtx(t, 10*time.Second), "42"); err != nil || n != 1 {
		t.Fatalf("unread count from a second host: %d, %v", n, err)
	}
	_ = again.Close()
	p.stop(t)

	// BH-15: outside plugin mode herald serve never writes to stdout.
	if out := p.stdout.String(); out != "" {
		t.Fatalf("herald serve wrote to stdout:\n%s", out)
	}
	if errs := errorLines(p.stderr.String()); len(errs) > 0 {
		t.Fatalf("error lines in the sidecar's log:\n%s", strings.Join(errs, "\n"))
	}
	if !strings.Contains(p.stderr.String(), "herald stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.stderr.String())
	}
}

// TestSidecarSocketInUse starts a second sidecar on the socket of a running
// one: it must refuse, naming the socket, and leave the first one serving.
func TestSidecarSocketInUse(t *testing.T) {
	first := startSidecar(t)
	c := first.attach(t)
	defer c.Close()

	second := exec.Command(heraldBin, "serve", "--socket", first.socket,
		"--data-dir", filepath.Join(shortDir(t), "data"), "--http-addr", "127.0.0.1:0")
	var stderr syncBuffer
	second.Stderr = &stderr
	err := second.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second herald serve: %v, want exit status 1; stderr:\n%s", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, first.socket) || !strings.Contains(msg, "in use") {
		t.Fatalf("unclear error:\n%s", msg)
	}
	if _, err := c.UnreadCount(testCtx(t, 10*time.Second), "u"); err != nil {
		t.Fatalf("the first sidecar stopped serving: %v", err)
	}
}

// lines splits captured output into its non-empty lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}
