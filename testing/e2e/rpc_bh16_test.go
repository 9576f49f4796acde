package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/heraldhq/herald/sdk/herald"
)

// Environment of the host role.
const (
	hostBinEnv  = "HERALD_E2E_BIN"
	hostDataEnv = "HERALD_E2E_DATA"
	hostHTTPEnv = "HERALD_E2E_HTTP"
)

// runHost is a minimal host application: it launches herald, creates one
// notification, prints "ready <herald pid>" (or "error <message>") on
// stdout, and runs until its stdin closes. The BH-16 tests SIGKILL it.
func runHost() int {
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Debug})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := herald.Launch(ctx, herald.LaunchConfig{
		Path:   os.Getenv(hostBinEnv),
		Args:   []string{"serve", "--data-dir", os.Getenv(hostDataEnv), "--http-addr", os.Getenv(hostHTTPEnv)},
		Logger: logger,
		// Far above the test's patience: a Herald stuck on the lock would
		// show as a missing answer, not as a start timeout.
		StartTimeout: 90 * time.Second,
	})
	if err != nil {
		fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	defer c.Close()
	if _, err := c.CreateNotification(ctx, herald.NewNotification{UserID: "u1", Type: "t", Title: "hello"}); err != nil {
		fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	fmt.Printf("ready %d\n", c.PID())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// hostProc is a running host role process.
type hostProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
	done   chan error
}

func startHost(t *testing.T, dataDir, httpAddr string) *hostProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		roleEnv+"=host", hostBinEnv+"="+heraldBin, hostDataEnv+"="+dataDir, hostHTTPEnv+"="+httpAddr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &hostProc{
		cmd:    cmd,
		stdin:  stdin,
		stdout: bufio.NewReader(stdout),
		stderr: &syncBuffer{},
		done:   make(chan error, 1),
	}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-h.done
		}
	})
	return h
}

// answer reads the host's "ready PID" or "error MESSAGE" line.
func (h *hostProc) answer(t *testing.T) (pid int, errMsg string) {
	t.Helper()
	line := readLine(t, h.stdout, 60*time.Second)
	switch {
	case strings.HasPrefix(line, "ready "):
		return atoi(t, strings.TrimPrefix(line, "ready ")), ""
	case strings.HasPrefix(line, "error "):
		return 0, strings.TrimPrefix(line, "error ")
	}
	t.Fatalf("host said %q; its stderr:\n%s", line, h.stderr.String())
	return 0, ""
}

// TestBH16OrphanReleasesLock: a host dies by SIGKILL; its Herald exits on its
// own, releasing the store's lock and the HTTP port, so the next host's
// Herald on the same data directory and port starts.
func TestBH16OrphanReleasesLock(t *testing.T) {
	dataDir, httpAddr := shortDir(t), freeAddr(t)

	h1 := startHost(t, dataDir, httpAddr)
	s1, msg := h1.answer(t)
	if msg != "" {
		t.Fatalf("first host: %s", msg)
	}
	if err := h1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-h1.done
	h1.done <- nil // for the cleanup

	waitFor(t, 20*time.Second, fmt.Sprintf("the orphaned herald (pid %d) exits", s1), func() bool {
		return processGone(s1)
	})
	t.Logf("orphaned herald exited %v after its host was killed", time.Since(killed).Round(time.Millisecond))

	h2 := startHost(t, dataDir, httpAddr)
	s2, msg := h2.answer(t)
	if msg != "" {
		t.Fatalf("second host on the same data dir and port: %s\nits stderr:\n%s", msg, h2.stderr.String())
	}
	if s2 == s1 {
		t.Fatalf("second host reports the first herald's pid %d", s1)
	}
}

// TestBH16StoppedHolderFailsFast: the first Herald is alive but frozen
// (SIGSTOP) and keeps its lock; a second Launch on the same data directory
// fails fast with an error naming the lock and the holder's PID.
func TestBH16StoppedHolderFailsFast(t *testing.T) {
	dataDir := shortDir(t)
	first, err := herald.Launch(testCtx(t, 60*time.Second), herald.LaunchConfig{
		Path:   heraldBin,
		Args:   []string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0"},
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := first.PID()
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = first.Close()
	})
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	logger, logs := captureLogger()
	second, err := herald.Launch(testCtx(t, 60*time.Second), herald.LaunchConfig{
		Path:         heraldBin,
		Args:         []string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0"},
		Logger:       logger,
		StartTimeout: 90 * time.Second,
	})
	if err == nil {
		_ = second.Close()
		t.Fatal("a second herald started on a locked data directory")
	}
	var le *herald.LaunchError
	if !errors.As(err, &le) {
		t.Fatalf("error %T %v, want *herald.LaunchError", err, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "lock") || !strings.Contains(msg, strconv.Itoa(pid)) {
		t.Fatalf("error %q does not name the lock and the holder's pid %d; host log:\n%s", msg, pid, logs.String())
	}
	t.Logf("second launch failed as expected: %v", err)
	if strings.Contains(msg, "Unrecognized remote plugin message") {
		t.Fatalf("the failure reached the host as a handshake failure: %q", msg)
	}
}
