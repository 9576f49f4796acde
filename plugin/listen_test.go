package plugin

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func socketPath(tb testing.TB) string {
	tb.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir() under a long
	// TMPDIR can exceed that, so use a short directory of our own.
	dir, err := os.MkdirTemp("", "hrld")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "h.sock")
}

func mustDial(tb testing.TB, path string) {
	tb.Helper()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		tb.Fatalf("dial %s: %v", path, err)
	}
	_ = c.Close()
}

func TestListenUnixCreatesSocket0660(t *testing.T) {
	path := socketPath(t)
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("mode %v, want a socket", fi.Mode())
	}
	if got := fi.Mode().Perm(); got != 0o660 {
		t.Fatalf("permissions %v, want 0660", got)
	}
	mustDial(t, path)

	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left after Close: %v", err)
	}
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	path := socketPath(t)
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	// A Herald killed with SIGKILL leaves its socket file behind.
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}

	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	mustDial(t, path)
}

func TestListenUnixRefusesLiveSocket(t *testing.T) {
	path := socketPath(t)
	live, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })

	ln, err := ListenUnix(path)
	if err == nil {
		_ = ln.Close()
		t.Fatal("ListenUnix on a live socket succeeded")
	}
	if !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("error %v, want ErrSocketInUse", err)
	}
	// The running one keeps its socket.
	mustDial(t, path)
}

func TestListenUnixRefusesNonSocket(t *testing.T) {
	cases := []struct {
		name string
		make func(tb testing.TB, path string)
	}{
		{"regular file", func(tb testing.TB, path string) {
			if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
				tb.Fatal(err)
			}
		}},
		{"directory", func(tb testing.TB, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				tb.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := socketPath(t)
			tc.make(t, path)
			ln, err := ListenUnix(path)
			if err == nil {
				_ = ln.Close()
				t.Fatal("ListenUnix over a non-socket succeeded")
			}
			if !errors.Is(err, ErrNotSocket) {
				t.Fatalf("error %v, want ErrNotSocket", err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("the existing file was removed: %v", err)
			}
		})
	}
}
