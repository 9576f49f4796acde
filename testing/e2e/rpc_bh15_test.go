package e2e

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sdk/herald"
)

// handshakeLine is go-plugin's negotiation record as Herald prints it with
// AutoMTLS: core|app|unix|<socket>|grpc|<server cert, base64 without padding>.
var handshakeLine = regexp.MustCompile(`^1\|1\|unix\|/[^|]+\|grpc\|[A-Za-z0-9+/]+$`)

// stdoutTap writes a wrapper that runs herald with its stdout copied into a
// file, and returns the wrapper's path and the file's.
func stdoutTap(t *testing.T) (wrapper, captured string) {
	t.Helper()
	dir := shortDir(t)
	wrapper = filepath.Join(dir, "herald-tap")
	captured = filepath.Join(dir, "stdout")
	script := "#!/bin/sh\n" +
		"# Runs herald with its stdout copied to a file; go-plugin reads the copy.\n" +
		strconv.Quote(heraldBin) + ` "$@" | tee ` + strconv.Quote(captured) + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return wrapper, captured
}

// TestBH15StdoutCarriesOnlyTheHandshake launches the real binary under
// conditions that tempt a program to print: debug logs, verbose gRPC logs,
// an unreachable Redis, an invalid flag, an unusable data directory. Over the
// whole life of the process its stdout holds exactly the handshake line, or
// nothing when it cannot start; a failed start reaches the host as Herald's
// own readable error, not as a broken handshake.
func TestBH15StdoutCarriesOnlyTheHandshake(t *testing.T) {
	notADir := filepath.Join(shortDir(t), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		// wantErr, when set, is a word Herald's start error must contain.
		wantErr string
	}{
		{name: "debug log level", args: []string{"--log-level", "debug"}},
		{name: "verbose grpc logging", args: []string{"--log-level", "trace"},
			env: []string{"GRPC_GO_LOG_SEVERITY_LEVEL=info", "GRPC_GO_LOG_VERBOSITY_LEVEL=99"}},
		{name: "redis unreachable", args: []string{"--redis-url", "redis://127.0.0.1:1"}},
		{name: "invalid configuration", args: []string{"--sync-limit", "0"}, wantErr: "--sync-limit"},
		{name: "data dir not writable", args: []string{"--data-dir", filepath.Join(notADir, "data")},
			wantErr: "data directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wrapper, captured := stdoutTap(t)
			args := append([]string{"serve", "--data-dir", shortDir(t), "--http-addr", "127.0.0.1:0"}, tc.args...)
			logger, logs := captureLogger()
			c, err := herald.Launch(testCtx(t, 60*time.Second), herald.LaunchConfig{
				Path: wrapper, Args: args, Env: tc.env, Logger: logger,
			})

			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("launch: %v\nhost log:\n%s", err, logs.String())
				}
				if _, err := c.UnreadCount(testCtx(t, 10*time.Second), "u"); err != nil {
					t.Fatalf("unread count: %v", err)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				var le *herald.LaunchError
				if !errors.As(err, &le) {
					t.Fatalf("launch: %v, want a *herald.LaunchError", err)
				}
				if !strings.Contains(le.Reason, tc.wantErr) {
					t.Fatalf("reason %q does not contain %q; host log:\n%s", le.Reason, tc.wantErr, logs.String())
				}
				if strings.Contains(err.Error(), "Unrecognized remote plugin message") {
					t.Fatalf("a failed start reads as a handshake failure: %v", err)
				}
			}

			out, err := os.ReadFile(captured)
			if err != nil {
				t.Fatal(err)
			}
			got := lines(string(out))
			switch {
			case tc.wantErr == "" && (len(got) != 1 || !handshakeLine.MatchString(got[0])):
				t.Fatalf("stdout is not exactly one handshake line:\n%s", out)
			case tc.wantErr != "" && len(got) != 0:
				t.Fatalf("a failed start wrote to stdout:\n%s", out)
			}
		})
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	return master, slave
}

// TestBH15StdoutOnTTY runs herald in plugin mode with its stdout on a
// terminal, where programs like to print banners and colours: over its whole
// life the terminal shows only the handshake line.
func TestBH15StdoutOnTTY(t *testing.T) {
	master, slave := openPTY(t)
	cmd := exec.Command(heraldBin, "serve", "--data-dir", shortDir(t),
		"--http-addr", "127.0.0.1:0", "--log-level", "debug")
	cmd.Env = append(os.Environ(),
		plugin.Handshake.MagicCookieKey+"="+plugin.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1")
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = slave, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = slave.Close() // the child holds its own copy
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	// Read the terminal until the last writer is gone (EIO).
	var screen syncBuffer
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(&screen, master)
	}()
	waitFor(t, 30*time.Second, "herald prints its handshake", func() bool {
		return strings.Contains(screen.String(), "\n")
	})
	line := strings.TrimSpace(screen.String())
	parts := strings.Split(line, "|")
	if len(parts) < 4 {
		t.Fatalf("not a handshake: %q", line)
	}

	// The socket it announced serves (no TLS: no host certificate was given).
	conn, err := grpc.NewClient("unix://"+parts[3], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := heraldv1.NewNotificationServiceClient(conn).
		UnreadCount(testCtx(t, 10*time.Second), &heraldv1.UnreadCountRequest{UserId: "u"})
	if err != nil || resp.GetUnreadCount() != 0 {
		t.Fatalf("unread count: %v, %v", resp, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("herald exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("herald did not exit on SIGTERM")
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close after herald exited")
	}
	got := lines(strings.ReplaceAll(screen.String(), "\r", ""))
	emptyCert := regexp.MustCompile(`^1\|1\|unix\|/[^|]+\|grpc\|$`)
	if len(got) != 1 || !emptyCert.MatchString(got[0]) {
		t.Fatalf("the terminal shows more than the handshake:\n%q", got)
	}
}

// TestBH15NoStdoutInHeraldCode is the static half of BH-15: no code linked
// into the herald binary writes to stdout, except the plugin bootstrap
// (plugin/, where go-plugin prints the handshake) and main, which hands
// os.Stdout to the command line for the client commands' results.
func TestBH15NoStdoutInHeraldCode(t *testing.T) {
	const module = "github.com/heraldhq/herald"
	allowed := map[string]bool{
		module + "/plugin":             true,
		module + "/sidecar/cmd/herald": true,
	}
	out, err := exec.Command("go", "list", "-deps",
		"-f", `{{if .Module}}{{if eq .Module.Path "`+module+`"}}{{.ImportPath}} {{.Dir}}{{end}}{{end}}`,
		module+"/sidecar/cmd/herald").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range lines(string(out)) {
		pkg, dir, _ := strings.Cut(line, " ")
		if allowed[pkg] {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checked++
			for _, use := range stdoutUses(t, f) {
				t.Errorf("%s writes to stdout (%s), which carries go-plugin's handshake in plugin mode", use, pkg)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no files checked")
	}
}

// stdoutUses returns the positions in file where os.Stdout or fmt.Print* is
// used, following import renames.
func stdoutUses(t *testing.T, file string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	names := map[string]string{} // local name → import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = path
	}
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		switch {
		case names[id.Name] == "os" && sel.Sel.Name == "Stdout",
			names[id.Name] == "fmt" && strings.HasPrefix(sel.Sel.Name, "Print"),
			names[id.Name] == "syscall" && sel.Sel.Name == "Stdout":
			uses = append(uses, fset.Position(sel.Pos()).String()+" "+id.Name+"."+sel.Sel.Name)
		}
		return true
	})
	return uses
}

// TestBH15StaticCheckFindsUses keeps the static check honest: it must flag
// real uses, renamed imports included, and ignore comments and stderr.
func TestBH15StaticCheckFindsUses(t *testing.T) {
	src := `package x

import (
	"fmt"
	stdos "os"
)

// os.Stdout and fmt.Println in a comment are fine.
func f() {
	fmt.Fprintln(stdos.Stderr, "ok")
	fmt.Println("bad")
	_ = stdos.Stdout
	fmt.Printf("%d", 1)
}
`
	file := filepath.Join(shortDir(t), "x.go")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	uses := stdoutUses(t, file)
	if len(uses) != 3 {
		t.Fatalf("found %d uses, want 3: %q", len(uses), uses)
	}
}
