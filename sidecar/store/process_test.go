package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/sidecar/notification"
)

// The child processes of these tests are this test binary run again with
// -test.run naming a child test and an environment variable holding its
// store path; without the variable the child tests skip.
const (
	envCrashChild = "HERALD_STORE_CRASH_CHILD"
	envLockChild  = "HERALD_STORE_LOCK_CHILD"
)

// startChild starts the test binary running only test name with env set to
// path, and returns it with its stdout.
func startChild(t testing.TB, name, env, path string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(stdout)
}

// TestCrashKeepsAcknowledgedCreates SIGKILLs a process in the middle of a
// stream of creates and checks that every create it acknowledged survived.
func TestCrashKeepsAcknowledgedCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	cmd, out := startChild(t, "TestCrashChild", envCrashChild, path)

	// Read acknowledged ids; kill the child after a few hundred.
	var acked []string
	for len(acked) < 300 {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("child ended after %d acks: %v", len(acked), err)
		}
		acked = append(acked, strings.TrimSpace(line))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Whatever it printed before dying was acknowledged too.
	rest, _ := io.ReadAll(out)
	for _, line := range strings.Fields(string(rest)) {
		acked = append(acked, line)
	}
	_ = cmd.Wait()
	if len(acked) >= 1000 {
		t.Logf("the child finished all creates before the kill; the check still holds")
	}

	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	missing := 0
	for _, line := range acked {
		user, id, ok := strings.Cut(line, " ")
		if !ok {
			continue // a line cut by the kill
		}
		if _, err := s.Get(user, id); err != nil {
			missing++
			t.Errorf("acknowledged %s of %s lost: %v", id, user, err)
		}
	}
	t.Logf("%d acknowledged creates checked after SIGKILL, %d missing", len(acked), missing)
	checkFile(t, s)
	for u := range 8 {
		checkConsistent(t, s, fmt.Sprint("crash-", u))
	}
}

// checkFile runs bbolt's consistency check over the whole file.
func checkFile(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrashChild is the child of TestCrashKeepsAcknowledgedCreates: it
// creates 1,000 notifications from 8 goroutines and prints "user id" for each
// as soon as Create returns.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(envCrashChild)
	if path == "" {
		t.Skip("child process of TestCrashKeepsAcknowledgedCreates")
	}
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprint("crash-", g)
			for i := range 125 {
				ns, err := s.Create(context.Background(), []notification.Draft{draft(user, fmt.Sprint(i))})
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				mu.Lock()
				// Unbuffered: the line is in the pipe before the next create.
				fmt.Fprintf(os.Stdout, "%s %s\n", user, ns[0].ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Stay alive until killed, so the parent decides when we die.
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestOpenLockedFailsFast holds the store open in a child process and checks
// that Open fails with ErrLocked naming the file and the child's PID instead
// of waiting.
func TestOpenLockedFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	cmd, out := startChild(t, "TestLockChild", envLockChild, path)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "open" {
		t.Fatalf("child did not open the store: %q %v", line, err)
	}

	const timeout = 300 * time.Millisecond
	type result struct {
		s   *Store
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := Open(Options{Path: path, LockTimeout: timeout})
		done <- result{s, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(timeout + 30*time.Second):
		t.Fatalf("Open still waiting %v after a lock timeout of %v", time.Since(start), timeout)
	}
	if r.err == nil {
		r.s.Close()
		t.Fatalf("Open succeeded while another process holds the file")
	}
	if !errors.Is(r.err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", r.err)
	}
	msg := r.err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("message %q does not name the file %s and the pid %d", msg, path, cmd.Process.Pid)
	}
	t.Logf("Open failed after %v: %v", time.Since(start), r.err)

	// Once the holder is gone the file opens.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s, err := Open(Options{Path: path, LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open after the holder died: %v", err)
	}
	s.Close()
}

// TestLockChild is the child of TestOpenLockedFailsFast: it opens the store,
// says "open" and holds it until stdin closes.
func TestLockChild(t *testing.T) {
	path := os.Getenv(envLockChild)
	if path == "" {
		t.Skip("child process of TestOpenLockedFailsFast")
	}
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Fprintln(os.Stdout, "open")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
