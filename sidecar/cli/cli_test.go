package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// heraldBin is the real herald binary, built once by TestMain.
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heraldBin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", heraldBin, "../cmd/herald")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(heraldBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run herald %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// cleanEnv drops HERALD_* variables of the developer's shell.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe starts `herald serve` and waits until its socket accepts.
func startServe(t *testing.T, dataDir, socket string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(heraldBin, "serve", "--data-dir", dataDir, "--socket", socket,
		"--http-addr", freeAddr(t))
	cmd.Env = append(cleanEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outCh := make(chan string, 1)
	go func() {
		b, _ := bufio.NewReader(stdout).ReadString(0)
		outCh <- b
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if out := <-outCh; out != "" {
			t.Errorf("herald serve wrote to stdout: %q", out)
		}
		if t.Failed() {
			t.Logf("herald serve stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald serve did not listen on %s; stderr:\n%s", socket, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func shortTemp(t *testing.T) string {
	dir, err := os.MkdirTemp("", "hcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestServeNotifyUnreadRead(t *testing.T) {
	dir := shortTemp(t)
	socket := filepath.Join(dir, "h.sock")
	startServe(t, filepath.Join(dir, "data"), socket)

	var ids []string
	for i, title := range []string{"Task 17 was assigned to you", "You were mentioned"} {
		r := run(t, nil, "notify", "--socket", socket, "--user", "42", "--type", "task.assigned",
			"--title", title, "--data", fmt.Sprintf(`{"task":%d}`, 17+i))
		if r.code != 0 {
			t.Fatalf("notify: exit %d: %s", r.code, r.stderr)
		}
		var n struct {
			ID, UserID, Title string
			IsRead            bool `json:"is_read"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &n); err != nil || n.ID == "" || n.Title != title {
			t.Fatalf("notify printed %q (%v), want the created notification as JSON", r.stdout, err)
		}
		ids = append(ids, n.ID)
	}

	// HERALD_SOCKET works like --socket.
	r := run(t, []string{"HERALD_SOCKET=" + socket}, "unread", "--user", "42")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("unread: exit %d, %d lines %q, stderr %s", r.code, len(lines), r.stdout, r.stderr)
	}
	for i, line := range lines {
		if !strings.Contains(line, ids[i]) {
			t.Errorf("unread line %d = %s, want id %s (oldest first)", i, line, ids[i])
		}
	}

	r = run(t, nil, "read", "--socket", socket, "--user", "42", "--id", ids[0])
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("read --id: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "unread", "--socket", socket, "--user", "42")
	if strings.Contains(r.stdout, ids[0]) || !strings.Contains(r.stdout, ids[1]) {
		t.Fatalf("after read --id, unread = %q", r.stdout)
	}
	r = run(t, nil, "read", "--socket", socket, "--user", "42", "--all")
	if r.code != 0 {
		t.Fatalf("read --all: exit %d: %s", r.code, r.stderr)
	}
	if r = run(t, nil, "unread", "--socket", socket, "--user", "42"); r.stdout != "" {
		t.Fatalf("after read --all, unread = %q", r.stdout)
	}

	// The token is signed with the secret serve generated in the data dir.
	r = run(t, nil, "token", "--user", "42", "--data-dir", filepath.Join(dir, "data"))
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || strings.Count(r.stdout, ".") != 2 {
		t.Fatalf("token: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestErrorsAreOneLineWithExitCode(t *testing.T) {
	dir := shortTemp(t)
	busy := filepath.Join(dir, "busy.sock")
	startServe(t, filepath.Join(dir, "data"), busy)

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"unknown flag", []string{"serve", "--no-such-flag"}, 2, "no-such-flag"},
		{"bad duration", []string{"serve", "--heartbeat", "soon"}, 2, "heartbeat"},
		{"unknown command", []string{"frobnicate"}, 2, "frobnicate"},
		{"notify without title", []string{"notify", "--socket", busy, "--user", "1", "--type", "t"}, 2, "--title"},
		{"notify without title nor server", []string{"notify", "--data-dir", filepath.Join(dir, "none"), "--user", "1", "--type", "t"}, 2, "--title"},
		{"notify title too long", []string{"notify", "--socket", busy, "--user", "1", "--type", "t", "--title", strings.Repeat("t", 1025)}, 2, "--title: is 1025 bytes"},
		{"notify bad data", []string{"notify", "--socket", busy, "--user", "1", "--type", "t", "--title", "x", "--data", "[1]"}, 2, "--data: must be a JSON object"},
		{"notify bad data without server", []string{"notify", "--data-dir", filepath.Join(dir, "none"), "--user", "1", "--type", "t", "--title", "x", "--data", "nope"}, 2, "--data: must be a JSON object"},
		{"notify long idempotency key", []string{"notify", "--socket", busy, "--user", "1", "--type", "t", "--title", "x", "--idempotency-key", strings.Repeat("k", 257)}, 2, "--idempotency-key: is 257 bytes"},
		{"unread user too long", []string{"unread", "--socket", busy, "--user", strings.Repeat("u", 129)}, 2, "--user: is 129 bytes"},
		{"read bad id", []string{"read", "--socket", busy, "--user", "1", "--id", "nope"}, 2, "--id[0]:"},
		{"read without ids", []string{"read", "--socket", busy, "--user", "1"}, 2, "--id"},
		{"unread without server", []string{"unread", "--socket", filepath.Join(dir, "none.sock"), "--user", "1"}, 1, ""},
		{"token without user", []string{"token", "--data-dir", dir}, 2, "--user"},
		{"serve invalid config", []string{"serve", "--data-dir", dir, "--sync-limit", "0", "--log-format", "xml"}, 2, "sync-limit"},
		{"serve bad environment", []string{"serve", "--data-dir", dir}, 2, "HERALD_HEARTBEAT"},
		{"serve socket path too long", []string{"serve", "--socket", filepath.Join(dir, strings.Repeat("s", 120))}, 2, "--socket"},
		{"token ttl too long", []string{"token", "--user", "1", "--ttl", "100000h", "--data-dir", dir}, 2, "--ttl"},
		{"serve socket in use", []string{"serve", "--data-dir", filepath.Join(dir, "other"), "--socket", busy, "--http-addr", freeAddr(t)}, 1, "in use"},
	}
	// A data directory that cannot be created: its parent is a regular file
	// (a read-only directory would not do: the tests may run as root).
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{"serve unusable data dir", []string{"serve", "--data-dir", filepath.Join(notDir, "data")}, 1, "data directory"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			if tt.name == "serve bad environment" {
				env = []string{"HERALD_HEARTBEAT=abc"}
			}
			r := run(t, env, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			last := lastLine(r.stderr)
			if !strings.HasPrefix(last, "herald: ") || !strings.Contains(last, tt.wantMsg) {
				t.Errorf("last stderr line %q, want a one-line error mentioning %q", last, tt.wantMsg)
			}
			if strings.HasPrefix(last, "herald: herald: ") {
				t.Errorf("doubled prefix in %q", last)
			}
			if tt.wantCode == 2 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("a usage error printed several lines:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	// Asked-for help goes to stdout, so that `herald serve --help | less` works.
	r := run(t, nil, "serve", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--redis-url") || !strings.Contains(r.stdout, "HERALD_") {
		t.Fatalf("serve --help: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "serve") {
		t.Fatalf("help: exit %d\n%s", r.code, r.stdout)
	}
	if r := run(t, nil); r.code != 2 || !strings.Contains(r.stderr, "serve") || r.stdout != "" {
		t.Fatalf("no command: exit %d\n%s", r.code, r.stderr)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
