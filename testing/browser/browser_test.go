package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/heraldhq/herald/testing/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/testing/heraldtest"
)

// TestBrowserPage opens examples/browser in headless Chromium against a real
// Herald node and checks what a user sees: the badge shows the unread count
// at load, follows a notification created over gRPC and a click that marks
// one read, and is right again after Herald restarts on the same port and
// data directory, including a notification created while it was down.
func TestBrowserPage(t *testing.T) {
	node := lookNode(t)
	root := repoRoot(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "skipping: %s not found; the browser test drives Debian's chromium", chromiumPath)
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core")); err != nil {
		testenv.Missing(t, "skipping: testing/browser/node_modules/playwright-core is missing; run `npm ci` in testing/browser")
	}
	const user = "browser-user"
	dataDir := t.TempDir()

	// The page and the SDK come from a local server, which also plays the
	// host application's token endpoint. Herald allows only its origin.
	tokens := &tokenEndpoint{dataDir: dataDir, user: user}
	site := httptest.NewServer(siteHandler(root, tokens))
	t.Cleanup(site.Close)
	allowSite := func(c *config.Config) { c.AllowedOrigins = []string{site.URL} }

	n1 := heraldtest.Start(t, heraldtest.Options{DataDir: dataDir, Configure: allowSite})
	n1.WaitReady(10 * time.Second)
	addr := n1.HTTPAddr
	create(t, n1, user, "Task 17 assigned to you")
	create(t, n1, user, "You were mentioned in #ops")

	d := startDriver(t, node)
	pageURL := site.URL + "/examples/browser/index.html?ws=" + "ws://" + addr + "/ws" +
		"&tokenURL=/token&backoffMax=1000&restartDelay=300"
	d.do(t, "open", "url", pageURL)
	d.do(t, "waitBadge", "count", 2)
	d.do(t, "waitItem", "title", "Task 17 assigned to you")
	d.do(t, "waitStatus", "prefix", "connected")

	// Live: a notification created over gRPC reaches the badge.
	create(t, n1, user, "Build 88 is blocked")
	d.do(t, "waitBadge", "count", 3)
	d.do(t, "waitItem", "title", "Build 88 is blocked")

	// A click marks one read, in the page and on the server.
	d.do(t, "click", "title", "You were mentioned in #ops")
	d.do(t, "waitBadge", "count", 2)
	waitUnread(t, n1, user, 2)

	// Restart Herald on the same port and data directory. While it is down,
	// another node on the same data directory (and another port, out of the
	// page's reach) creates a notification.
	if err := n1.Stop(); err != nil {
		t.Fatalf("stop herald: %v", err)
	}
	d.do(t, "waitStatus", "prefix", "reconnecting")
	offline := heraldtest.Start(t, heraldtest.Options{DataDir: dataDir, Configure: allowSite})
	create(t, offline, user, "Created while you were away")
	if err := offline.Stop(); err != nil {
		t.Fatalf("stop the offline node: %v", err)
	}
	n2 := heraldtest.Start(t, heraldtest.Options{DataDir: dataDir, Configure: func(c *config.Config) {
		allowSite(c)
		c.HTTPAddr = addr
	}})
	d.do(t, "waitStatus", "prefix", "connected", "timeout", 30_000)
	// The page heard the restart as 1012, not as a dropped connection; the
	// closes after it are its tries while Herald was down.
	closes, _ := d.do(t, "closes")["closes"].([]any)
	if len(closes) == 0 || closes[0] != float64(1012) {
		t.Errorf("close codes seen by the page: %v, want 1012 first", closes)
	}
	t.Logf("close codes seen by the page: %v", closes)
	d.do(t, "waitBadge", "count", 3)
	d.do(t, "waitItem", "title", "Created while you were away")

	create(t, n2, user, "After the restart")
	d.do(t, "waitBadge", "count", 4)
	d.do(t, "waitItem", "title", "After the restart")

	shot := filepath.Join(outputDir(t), "browser-page.png")
	d.do(t, "screenshot", "path", shot)
	t.Logf("screenshot: %s", shot)
	d.quit(t)

	// The tokens the page used never reach Herald's logs.
	for _, n := range []*heraldtest.Node{n1, offline, n2} {
		for _, tok := range tokens.issued() {
			if strings.Contains(n.Logs(), tok[len(tok)-16:]) {
				t.Errorf("a token the page used appears in the logs of node %s", n.Daemon.NodeID())
			}
		}
	}
}

// create makes a notification for user through the node's gRPC service.
func create(t *testing.T, n *heraldtest.Node, user, title string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := n.RPC.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{
		Notification: &heraldv1.NewNotification{UserId: user, Type: "task.update", Title: title},
	})
	if err != nil {
		t.Fatalf("CreateNotification %q: %v", title, err)
	}
}

// waitUnread waits until the server counts want unread notifications for user.
func waitUnread(t *testing.T, n *heraldtest.Node, user string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := n.RPC.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: user})
		cancel()
		if err == nil && res.GetUnreadCount() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server unread count of %s: got %d (err %v), want %d", user, res.GetUnreadCount(), err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outputDir is $HERALD_TEST_OUTPUT when set (kept after the test), else a
// temporary directory.
func outputDir(t *testing.T) string {
	if dir := os.Getenv("HERALD_TEST_OUTPUT"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("HERALD_TEST_OUTPUT: %v", err)
		}
		return dir
	}
	return t.TempDir()
}

// siteHandler serves the example page and the SDK from the repository (and
// nothing else from it), and the token endpoint at /token.
func siteHandler(root string, tokens http.Handler) http.Handler {
	files := http.FileServer(http.Dir(root))
	mux := http.NewServeMux()
	mux.Handle("/examples/browser/", files)
	mux.Handle("/sdk/js/", files)
	mux.Handle("/token", tokens)
	return mux
}

// tokenEndpoint issues connect tokens the way a host application would: for
// its logged-in user, signed with the secret Herald keeps in its data
// directory (read on each request: the first node creates it).
type tokenEndpoint struct {
	dataDir, user string
	mu            sync.Mutex
	tokens        []string
}

func (te *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secret, err := auth.LoadSecretFile(filepath.Join(te.dataDir, auth.SecretFileName))
	if err != nil {
		http.Error(w, "no secret yet", http.StatusServiceUnavailable)
		return
	}
	tok, _, err := auth.NewHS256Issuer(secret).Issue(te.user, 10*time.Minute)
	if err != nil {
		http.Error(w, "cannot issue", http.StatusInternalServerError)
		return
	}
	te.mu.Lock()
	te.tokens = append(te.tokens, tok)
	te.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, tok)
}

func (te *tokenEndpoint) issued() []string {
	te.mu.Lock()
	defer te.mu.Unlock()
	return append([]string(nil), te.tokens...)
}

// driver is driver.mjs running headless Chromium, one command at a time.
type driver struct {
	stdin   io.WriteCloser
	answers chan string
	stderr  *lockedBuffer
	stop    chan struct{} // closed at cleanup: nobody reads answers anymore
	done    chan struct{} // closed when the driver process has been waited for
}

func startDriver(t *testing.T, node string) *driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := nodeCommand(ctx, node, "driver.mjs")
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start driver: %v", err)
	}
	d := &driver{stdin: stdin, answers: make(chan string), stderr: stderr,
		stop: make(chan struct{}), done: make(chan struct{})}
	// One goroutine reads every answer, then waits for the process: Wait
	// must come after the last read of its stdout pipe.
	go func() {
		defer close(d.done)
		defer close(d.answers)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case d.answers <- sc.Text():
			case <-d.stop:
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		close(d.stop)
		cancel()
		<-d.done
		if t.Failed() {
			t.Logf("driver stderr:\n%s", stderr.String())
		}
	})
	return d
}

// do sends a command with key/value arguments and fails the test unless the
// driver answers ok.
func (d *driver) do(t *testing.T, cmd string, kv ...any) map[string]any {
	t.Helper()
	req := map[string]any{"cmd": cmd}
	for i := 0; i+1 < len(kv); i += 2 {
		req[kv[i].(string)] = kv[i+1]
	}
	line, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("driver %s: write: %v\n%s", cmd, err, d.stderr.String())
	}
	var answer string
	var ok bool
	select {
	case answer, ok = <-d.answers:
	case <-time.After(90 * time.Second):
	}
	if !ok {
		t.Fatalf("driver %s: no answer\n%s", cmd, d.stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(answer), &res); err != nil {
		t.Fatalf("driver %s: bad answer %q", cmd, answer)
	}
	if res["ok"] != true {
		t.Fatalf("driver %s %v: %v; page state %v", cmd, kv, res["error"], res["state"])
	}
	return res
}

func (d *driver) quit(t *testing.T) {
	t.Helper()
	fmt.Fprintln(d.stdin, `{"cmd":"quit"}`)
	d.stdin.Close()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case _, open := <-d.answers: // none expected; read until the driver exits
			if open {
				continue
			}
			select {
			case <-d.done:
			case <-timeout:
				t.Errorf("driver did not exit after quit")
			}
			return
		case <-timeout:
			t.Errorf("driver did not exit after quit")
			return
		}
	}
}

// lockedBuffer collects a child's stderr; safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
