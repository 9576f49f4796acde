// Package pythonhost_test runs the Python host example against a real herald
// binary: in sidecar mode on a `herald serve` socket, and in plugin mode, where
// Python launches Herald itself through go-plugin's handshake.
package pythonhost_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/heraldhq/herald/testing/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/plugin/heraldv1"
)

// python is Debian's interpreter, which sees python3-grpcio; the python3 on
// PATH may be a pyenv shim that does not.
const python = "/usr/bin/python3"

// timeout bounds every wait of these tests; generous for a loaded machine.
const timeout = 60 * time.Second

var createdLine = regexp.MustCompile(`(?m)^created notification (\S+) for user (\S+): "Task 17 was assigned to you"$`)

// requirePython skips the test when Debian's Python cannot import grpc.
func requirePython(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf").CombinedOutput()
	if err != nil {
		testenv.Missing(t, "skipping: %s cannot import grpc (install python3-grpcio and python3-protobuf): %v\n%s",
			python, err, out)
	}
}

var (
	buildOnce sync.Once
	heraldBin string
	buildErr  error
)

// buildHerald builds the herald binary once per test process.
func buildHerald(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin")
		if err != nil {
			buildErr = err
			return
		}
		heraldBin = filepath.Join(dir, "herald")
		cmd := exec.Command("go", "build", "-o", heraldBin, "github.com/heraldhq/herald/sidecar/cmd/herald")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build herald: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return heraldBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if heraldBin != "" {
		os.RemoveAll(filepath.Dir(heraldBin))
	}
	os.Exit(code)
}

// shortDir returns a temporary directory with a path short enough for a Unix
// socket (sun_path is 108 bytes; t.TempDir() paths can be longer).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hpy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// syncBuffer collects a child's output; safe for the exec copier goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveSidecar starts `herald serve` on a socket in dataDir and returns the
// socket path once a gRPC call succeeds on it. The process is stopped with
// SIGTERM at cleanup and must exit 0.
func serveSidecar(t *testing.T, bin, dataDir string) (string, heraldv1.NotificationServiceClient) {
	t.Helper()
	socket := filepath.Join(dataDir, "herald.sock")
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--socket", socket, "--data-dir", dataDir, "--http-addr", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("herald serve exited with %v\n%s", err, logs.String())
			}
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			t.Errorf("herald serve did not stop on SIGTERM within %s\n%s", timeout, logs.String())
		}
	})

	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rpc := heraldv1.NewNotificationServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if _, err := os.Stat(socket); err == nil {
			callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = rpc.UnreadCount(callCtx, &heraldv1.UnreadCountRequest{UserId: "probe"}, grpc.WaitForReady(true))
			callCancel()
			if err == nil {
				return socket, rpc
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("herald serve exited early: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("herald serve not answering on %s within %s\n%s", socket, timeout, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runHost runs host.py with args and returns its stdout; it fails the test
// on a non-zero exit.
func runHost(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, append([]string{"host.py"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	if err := cmd.Run(); err != nil {
		t.Fatalf("host.py %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("host.py %s:\n%s", strings.Join(args, " "), stdout.String())
	return stdout.String()
}

// checkOutput checks the lines every host.py run prints and returns the id of
// the notification it created.
func checkOutput(t *testing.T, out, user string, wantUnread int) string {
	t.Helper()
	m := createdLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no 'created notification' line in:\n%s", out)
	}
	if m[2] != user {
		t.Fatalf("created for user %s, want %s", m[2], user)
	}
	if want := fmt.Sprintf("unread count for user %s: %d\n", user, wantUnread); !strings.Contains(out, want) {
		t.Fatalf("want %q in:\n%s", want, out)
	}
	if !strings.Contains(out, "invalid request refused (INVALID_ARGUMENT): notification.title: ") {
		t.Fatalf("no clear INVALID_ARGUMENT line naming the title in:\n%s", out)
	}
	return m[1]
}

// checkStored checks through the RPC that the notification exists, unread.
func checkStored(t *testing.T, rpc heraldv1.NotificationServiceClient, user, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	page, err := rpc.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: user, UnreadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range page.Notifications {
		if n.Id == id {
			if n.Type != "task.assigned" || n.Link != "/tasks/17" || n.IsRead {
				t.Fatalf("stored notification %+v, want unread task.assigned linking /tasks/17", n)
			}
			if !strings.Contains(n.DataJson, `"task_id": 17`) {
				t.Fatalf("data_json = %s, want task_id 17", n.DataJson)
			}
			return
		}
	}
	t.Fatalf("notification %s not among user %s's unread: %v", id, user, page.Notifications)
}

func TestSidecarMode(t *testing.T) {
	requirePython(t)
	bin := buildHerald(t)
	socket, rpc := serveSidecar(t, bin, shortDir(t))

	out := runHost(t, "--socket", socket, "--user", "42")
	id := checkOutput(t, out, "42", 1)
	checkStored(t, rpc, "42", id)

	// A second run adds a second notification: the count is Herald's, not
	// the script's.
	out = runHost(t, "--socket", socket, "--user", "42")
	checkStored(t, rpc, "42", checkOutput(t, out, "42", 2))
}

func TestSidecarModeNoSocket(t *testing.T) {
	requirePython(t)
	missing := filepath.Join(shortDir(t), "nothing.sock")
	var stderr bytes.Buffer
	cmd := exec.Command(python, "host.py", "--socket", missing)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("host.py succeeded without a Herald")
	}
	if got := stderr.String(); !strings.Contains(got, "no socket at "+missing) || strings.Contains(got, "Traceback") {
		t.Fatalf("want a one-line error naming the socket, got:\n%s", got)
	}
}

func TestPluginMode(t *testing.T) {
	requirePython(t)
	bin := buildHerald(t)
	dataDir := shortDir(t)

	out := runHost(t, "--herald-bin", bin, "--data-dir", dataDir, "--user", "7")
	id := checkOutput(t, out, "7", 1)
	if !strings.Contains(out, "launched Herald as a plugin") {
		t.Fatalf("no launch line in:\n%s", out)
	}
	if !strings.Contains(out, "Herald stopped with exit status 0\n") {
		t.Fatalf("Herald did not exit 0 after Shutdown:\n%s", out)
	}

	// The plugin is gone and released its store: a sidecar opens the same
	// data directory and finds the notification there.
	_, rpc := serveSidecar(t, bin, dataDir)
	checkStored(t, rpc, "7", id)
}

// TestPluginHandshakeConstants keeps host.py's copy of the go-plugin
// handshake equal to plugin.Handshake.
func TestPluginHandshakeConstants(t *testing.T) {
	src, err := os.ReadFile("host.py")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PLUGIN_COOKIE_KEY":       fmt.Sprintf("%q", plugin.Handshake.MagicCookieKey),
		"PLUGIN_COOKIE_VALUE":     fmt.Sprintf("%q", plugin.Handshake.MagicCookieValue),
		"PLUGIN_PROTOCOL_VERSION": fmt.Sprint(plugin.Handshake.ProtocolVersion),
	}
	for name, value := range want {
		line := regexp.MustCompile(`(?m)^` + name + ` = (.+)$`).FindSubmatch(src)
		if line == nil || string(line[1]) != value {
			t.Errorf("host.py: want %s = %s, got %q", name, value, line)
		}
	}
}

// TestGeneratedStubsCurrent regenerates the stubs into a scratch copy and
// compares them with the committed ones, so a .proto change without
// ./generate.sh fails here.
func TestGeneratedStubsCurrent(t *testing.T) {
	requirePython(t)
	if err := exec.Command(python, "-c", "import grpc_tools.protoc").Run(); err != nil {
		testenv.Missing(t, "skipping: %s has no grpc_tools (install python3-grpc-tools): %v", python, err)
	}
	scratch := t.TempDir()
	script, err := os.ReadFile("generate.sh")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Run the committed script with its output redirected to scratch.
	scriptCopy := filepath.Join(scratch, "generate.sh")
	patched := strings.Replace(string(script), `root=$(cd "$here/../.." && pwd)`, "root="+root, 1)
	if err := os.WriteFile(scriptCopy, []byte(patched), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", scriptCopy).CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, out)
	}
	for _, f := range []string{"herald/v1/herald_pb2.py", "herald/v1/herald_pb2_grpc.py"} {
		got, err := os.ReadFile(filepath.Join(scratch, f))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed) {
			t.Errorf("%s is stale: run examples/python-host/generate.sh", f)
		}
	}
}
