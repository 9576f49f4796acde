// Package rediskit starts real redis-server processes for tests.
//
// Each Server runs in its own temporary directory on a free loopback port,
// without persistence (--save "" --appendonly no), so a Stop followed by a
// Start behaves like a Redis restart that lost its data: the same address, an
// empty keyspace, every client connection dropped. Everything a Server starts
// is stopped by t.Cleanup.
//
// Tests call Require (or Start, which calls it) so that a machine without
// redis-server skips them with a clear message, and CI, which sets
// HERALD_REQUIRE_REDIS=1, fails instead.
//
// A Server is safe for concurrent use, but Stop, Start and Kill are meant to be
// called from the test goroutine.
package rediskit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv is the environment variable that turns a missing redis-server
// into a test failure instead of a skip.
const RequireEnv = "HERALD_REQUIRE_REDIS"

// startTimeout bounds how long a redis-server may take to answer PING after
// it was started, generous for a loaded CI machine.
const startTimeout = 20 * time.Second

// Binary returns the path of redis-server on PATH, or an error.
func Binary() (string, error) {
	return exec.LookPath("redis-server")
}

// Require skips the test when redis-server is not on PATH, or fails it when
// HERALD_REQUIRE_REDIS=1 is set.
func Require(t testing.TB) {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("rediskit: redis-server not found on PATH and %s=1: %v", RequireEnv, err)
		}
		t.Skipf("rediskit: redis-server not found on PATH, skipping (set %s=1 to fail instead): %v",
			RequireEnv, err)
	}
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	runs   int
	paused bool
}

// Start starts a redis-server on a free loopback port and registers its
// shutdown with t.Cleanup. It skips or fails the test like Require when
// redis-server is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	Require(t)
	bin, _ := Binary()
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.cleanup)

	// Another process may take the free port between our probe and redis'
	// bind, so try a few ports before giving up.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("rediskit: find a free port: %v", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("rediskit: start redis-server: %v", lastErr)
	return nil
}

// URL returns the server's address as a redis:// URL (database 0).
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port; it stays the same across Stop and Start.
func (s *Server) Port() int { return s.port }

// Running reports whether a redis-server process is currently running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

// Stop shuts the server down with SIGTERM and waits for it to exit. Nothing
// is saved. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.signal(false); err != nil {
		s.t.Fatalf("rediskit: stop: %v", err)
	}
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	s.t.Helper()
	if err := s.signal(true); err != nil {
		s.t.Fatalf("rediskit: kill: %v", err)
	}
}

// Pause stops the server process with SIGSTOP: connections stay open and
// the kernel still accepts new ones, but nothing answers, like a hung server
// or a black-holed network path. Resume undoes it; Stop, Kill and the
// cleanup resume a paused server first.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.pause(true); err != nil {
		s.t.Fatalf("rediskit: pause: %v", err)
	}
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.pause(false); err != nil {
		s.t.Fatalf("rediskit: resume: %v", err)
	}
}

func (s *Server) pause(stop bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.runningLocked() {
		return errors.New("not running")
	}
	sig := contSignal
	if stop {
		sig = pauseSignal
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal pid %d: %w", s.cmd.Process.Pid, err)
	}
	s.paused = stop
	return nil
}

// Start starts a stopped server again on the same port, with an empty
// keyspace, and waits until it answers PING. It fails the test if the server
// is running or the port cannot be bound again within a generous deadline.
func (s *Server) Start() {
	s.t.Helper()
	if s.Running() {
		s.t.Fatalf("rediskit: start: redis-server on port %d is already running", s.port)
	}
	// The old process has exited, but the kernel may briefly refuse the port
	// to a new listener; retry until the deadline.
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("rediskit: restart on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond) // retry pacing, not synchronisation
	}
}

// Restart is Stop followed by Start.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Client returns a go-redis client of the server, closed by t.Cleanup. It
// reconnects by itself across Stop and Start, does not retry failed
// commands, and honours context deadlines on the socket.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  s.Addr(),
		DisableIdentity:       true,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Do runs one command on a short-lived connection and returns its result, for
// checks such as PUBSUB NUMSUB. It fails the test on error.
func (s *Server) Do(t testing.TB, args ...any) any {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		t.Fatalf("rediskit: %v: %v", args, err)
	}
	return v
}

// NumSub returns PUBSUB NUMSUB for channel: how many clients subscribe to it.
func (s *Server) NumSub(t testing.TB, channel string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.PubSubNumSub(ctx, channel).Result()
	if err != nil {
		t.Fatalf("rediskit: PUBSUB NUMSUB %s: %v", channel, err)
	}
	return m[channel]
}

// LogPath returns the path of the server's log file.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "redis.log") }

func (s *Server) runningLocked() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runningLocked() {
		return errors.New("already running")
	}
	s.runs++
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--dbfilename", "dump.rdb",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", s.LogPath(),
		"--loglevel", "notice",
	)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { // owned by the Server: ends when the process exits
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	if err := waitPing(s.Addr(), done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on port %d (run %d): %w; log tail:\n%s",
			s.port, s.runs, err, s.logTail())
	}
	return nil
}

// signal stops the current process with SIGKILL (kill) or SIGTERM and waits.
func (s *Server) signal(kill bool) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	running := s.runningLocked()
	if running && s.paused {
		_ = cmd.Process.Signal(contSignal)
		s.paused = false
	}
	s.mu.Unlock()
	if !running {
		return nil
	}
	sig := stopSignal
	if kill {
		sig = killSignal
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server pid %d did not exit within %v after %v; killed",
			cmd.Process.Pid, startTimeout, sig)
	}
}

func (s *Server) cleanup() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	running := s.runningLocked()
	s.paused = false
	s.mu.Unlock()
	if running {
		_ = cmd.Process.Kill()
		<-done
	}
	if s.t.Failed() {
		s.t.Logf("rediskit: redis-server port %d log tail:\n%s", s.port, s.logTail())
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.LogPath())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// waitPing polls addr with PING until it answers PONG, the process exits, or
// startTimeout passes.
func waitPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("process exited before answering PING")
		default:
		}
		if lastErr = ping(addr); lastErr == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // poll pacing
	}
	return fmt.Errorf("no PONG within %v: %w", startTimeout, lastErr)
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("+PONG")) {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
