package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sdk/herald"
	"github.com/heraldhq/herald/testing/heraldtest"
	"github.com/heraldhq/herald/testing/wsclient"
)

// waitTimeout bounds every wait; generous for a loaded 2-core machine.
const waitTimeout = 60 * time.Second

func TestMentions(t *testing.T) {
	cases := []struct {
		name, text, author string
		want               []string
	}{
		{"none", "no mentions here", "alice", nil},
		{"one", "@bob please look", "alice", []string{"bob"}},
		{"several in order, once each", "@carol and @bob, then @carol again", "alice", []string{"carol", "bob"}},
		{"author left out", "note to self @alice, ping @bob", "alice", []string{"bob"}},
		{"end of sentence", "thanks @bob.", "alice", []string{"bob"}},
		{"e-mail address is no mention", "write to bob@example.com", "alice", nil},
		{"dotted name", "@first.last here", "alice", []string{"first.last"}},
		{"lone at sign", "meet @ noon", "alice", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Mentions(tc.text, tc.author); !slices.Equal(got, tc.want) {
				t.Fatalf("Mentions(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestBoardEvents(t *testing.T) {
	b := NewBoard()
	recipients := func(ns []herald.NewNotification) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.UserID)
		}
		return out
	}

	_, ns, err := b.Assign("alice", 17, "alice")
	if err != nil || len(ns) != 0 {
		t.Fatalf("self-assignment: %v, %d notifications; want none", err, len(ns))
	}
	_, ns, err = b.Assign("alice", 17, "bob")
	if err != nil || !slices.Equal(recipients(ns), []string{"bob"}) {
		t.Fatalf("assign to bob: %v, recipients %v", err, recipients(ns))
	}
	if n := ns[0]; n.Type != "task.assigned" || n.Title != "Task 17 was assigned to you" || n.Link != "/tasks/17" {
		t.Fatalf("assign notification = %+v", n)
	}

	_, ns, err = b.Comment("bob", 17, "@carol @dave can you help? cc @bob")
	if err != nil || !slices.Equal(recipients(ns), []string{"carol", "dave"}) {
		t.Fatalf("comment: %v, recipients %v", err, recipients(ns))
	}
	for _, n := range ns {
		if n.Type != "comment.mentioned" || !strings.HasPrefix(n.Link, "/tasks/17#comment-") {
			t.Fatalf("mention notification = %+v", n)
		}
	}

	// Watchers: alice (creator), bob (assignee, commenter). carol was only
	// mentioned, so she does not watch.
	_, ns, err = b.Block("bob", 17, "waiting for the API keys")
	if err != nil || !slices.Equal(recipients(ns), []string{"alice"}) {
		t.Fatalf("block by bob: %v, recipients %v", err, recipients(ns))
	}
	if n := ns[0]; n.Type != "task.blocked" || !strings.Contains(n.Body, "waiting for the API keys") {
		t.Fatalf("block notification = %+v", n)
	}

	for name, f := range map[string]func() error{
		"unknown task":    func() error { _, _, err := b.Assign("alice", 999, "bob"); return err },
		"bad assignee":    func() error { _, _, err := b.Assign("alice", 17, "bob smith"); return err },
		"empty comment":   func() error { _, _, err := b.Comment("alice", 17, ""); return err },
		"too long reason": func() error { _, _, err := b.Block("alice", 17, strings.Repeat("x", maxText+1)); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
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
		dir, err := os.MkdirTemp("", "taskboard-bin")
		if err != nil {
			buildErr = err
			return
		}
		heraldBin = filepath.Join(dir, "herald")
		cmd := exec.Command("go", "build", "-o", heraldBin, "./sidecar/cmd/herald")
		cmd.Dir = filepath.Join("..", "..")
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

// syncBuffer collects log output written from several goroutines.
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

// taskboard is a taskboard running inside the test, as `run` runs it.
type taskboard struct {
	t      *testing.T
	base   string         // http://host:port
	herald *herald.Client // the taskboard's own Herald client
	logs   *syncBuffer
	stop   func() // stops the taskboard and checks its logs; idempotent
}

// startTaskboard runs the taskboard with args until the test ends; at
// cleanup it must stop cleanly and must have logged no error.
func startTaskboard(t *testing.T, args ...string) *taskboard {
	t.Helper()
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags(%q): %v", args, err)
	}
	tb := &taskboard{t: t, logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, o, tb.logs, func(addr string, h *herald.Client) {
			tb.base, tb.herald = "http://"+addr, h
			close(ready)
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("taskboard stopped at start: %v\n%s", err, tb.logs.String())
	case <-time.After(waitTimeout):
		cancel()
		t.Fatalf("taskboard not ready within %s\n%s", waitTimeout, tb.logs.String())
	}
	var once sync.Once
	tb.stop = func() { once.Do(func() { tb.stopAndCheck(cancel, done) }) }
	t.Cleanup(tb.stop)
	return tb
}

// stopAndCheck stops the taskboard, waits for it, and fails the test if it
// logged an error.
func (tb *taskboard) stopAndCheck(cancel context.CancelFunc, done <-chan error) {
	t := tb.t
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("taskboard: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("taskboard did not stop within %s", waitTimeout)
	}
	logs := tb.logs.String()
	if strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "[ERROR]") {
		t.Errorf("taskboard logged errors:\n%s", logs)
	} else if t.Failed() {
		t.Logf("taskboard logs:\n%s", logs)
	}
}

// login returns an HTTP client holding user's session cookie.
func (tb *taskboard) login(user string) *http.Client {
	tb.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: waitTimeout}
	resp, err := c.Get(tb.base + "/login?user=" + user)
	if err != nil {
		tb.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // after the redirect to the page
		tb.t.Fatalf("login %s: %s", user, resp.Status)
	}
	return c
}

// call sends a JSON request (GET when body is nil) and decodes the answer.
func (tb *taskboard) call(c *http.Client, path string, body any, out any) int {
	tb.t.Helper()
	var resp *http.Response
	var err error
	if body == nil {
		resp, err = c.Get(tb.base + path)
	} else {
		b, _ := json.Marshal(body)
		resp, err = c.Post(tb.base+path, "application/json", bytes.NewReader(b))
	}
	if err != nil {
		tb.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.t.Fatalf("%s: %s: bad JSON %q", path, resp.Status, raw)
		}
	}
	return resp.StatusCode
}

// actionResult is the answer of assign, comment and block.
type actionResult struct {
	Task            Task     `json:"task"`
	Notified        []string `json:"notified"`
	NotificationIDs []string `json:"notification_ids"`
	Error           string   `json:"error"`
}

func (tb *taskboard) act(c *http.Client, path string, body any) actionResult {
	tb.t.Helper()
	var res actionResult
	if status := tb.call(c, path, body, &res); status != http.StatusOK {
		tb.t.Fatalf("POST %s: %d %s", path, status, res.Error)
	}
	return res
}

// unreadOf lists a user's unread notifications through the SDK.
func unreadOf(t *testing.T, h *herald.Client, user string) []herald.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	page, err := h.ListNotifications(ctx, herald.ListOptions{UserID: user, UnreadOnly: true, Limit: 100})
	if err != nil {
		t.Fatalf("ListNotifications(%s): %v", user, err)
	}
	return page.Notifications
}

func findByID(ns []herald.Notification, id string) (herald.Notification, bool) {
	for _, n := range ns {
		if n.ID == id {
			return n, true
		}
	}
	return herald.Notification{}, false
}

// runScenario drives the three actions over HTTP and checks, through the
// taskboard's own Herald client, what each one created.
func runScenario(t *testing.T, tb *taskboard) {
	alice, bob := tb.login("alice"), tb.login("bob")

	res := tb.act(alice, "/api/tasks/17/assign", map[string]string{"assignee": "bob"})
	if !slices.Equal(res.Notified, []string{"bob"}) || len(res.NotificationIDs) != 1 {
		t.Fatalf("assign: notified %v, ids %v", res.Notified, res.NotificationIDs)
	}
	n, ok := findByID(unreadOf(t, tb.herald, "bob"), res.NotificationIDs[0])
	if !ok {
		t.Fatalf("bob has no notification %s", res.NotificationIDs[0])
	}
	var data struct {
		TaskID int    `json:"task_id"`
		By     string `json:"by"`
	}
	if err := json.Unmarshal(n.Data, &data); err != nil || data.TaskID != 17 || data.By != "alice" {
		t.Fatalf("data = %s (%v)", n.Data, err)
	}
	if n.Type != "task.assigned" || n.Title != "Task 17 was assigned to you" || n.Link != "/tasks/17" {
		t.Fatalf("assign notification = %+v", n)
	}

	// One comment mentioning two users: one call, two notifications.
	res = tb.act(bob, "/api/tasks/17/comments", map[string]string{"text": "@carol @dave please review, thanks @alice."})
	if !slices.Equal(res.Notified, []string{"carol", "dave", "alice"}) {
		t.Fatalf("comment notified %v", res.Notified)
	}
	for i, user := range res.Notified {
		if n, ok := findByID(unreadOf(t, tb.herald, user), res.NotificationIDs[i]); !ok || n.Type != "comment.mentioned" {
			t.Fatalf("%s: mention %s missing or wrong: %+v", user, res.NotificationIDs[i], n)
		}
	}

	// bob blocks it: alice (creator) is told, bob (the actor) is not.
	res = tb.act(bob, "/api/tasks/17/block", map[string]string{"reason": "waiting for the API keys"})
	if !slices.Equal(res.Notified, []string{"alice"}) || !res.Task.Blocked {
		t.Fatalf("block: notified %v, task %+v", res.Notified, res.Task)
	}
	if n, ok := findByID(unreadOf(t, tb.herald, "alice"), res.NotificationIDs[0]); !ok || n.Type != "task.blocked" {
		t.Fatalf("alice: blocked notification missing or wrong: %+v", n)
	}

	// Refusals: each a clear status, nothing created.
	jar, _ := cookiejar.New(nil)
	anonymous := &http.Client{Jar: jar, Timeout: waitTimeout}
	cases := []struct {
		name   string
		client *http.Client
		path   string
		body   any
		want   int
	}{
		{"not logged in", anonymous, "/api/tasks/17/assign", map[string]string{"assignee": "bob"}, http.StatusUnauthorized},
		{"unknown task", alice, "/api/tasks/999/assign", map[string]string{"assignee": "bob"}, http.StatusNotFound},
		{"bad user name", alice, "/api/tasks/17/assign", map[string]string{"assignee": "bob smith"}, http.StatusBadRequest},
		{"unknown field", alice, "/api/tasks/17/assign", map[string]string{"user": "bob"}, http.StatusBadRequest},
	}
	for _, tc := range cases {
		var out actionResult
		if got := tb.call(tc.client, tc.path, tc.body, &out); got != tc.want || out.Error == "" {
			t.Errorf("%s: %d %q, want %d with a message", tc.name, got, out.Error, tc.want)
		}
	}
	resp, err := alice.Post(tb.base+"/api/tasks/17/assign", "text/plain", strings.NewReader(`{"assignee":"bob"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain POST: %s, want 415", resp.Status)
	}
	if got := len(unreadOf(t, tb.herald, "bob")); got != 1 {
		t.Errorf("bob has %d unread after the refusals, want 1", got)
	}

	// The page and the SDK it imports are served.
	for _, path := range []string{"/", "/tasks/17", "/static/app.js", "/herald.js"} {
		resp, err := alice.Get(tb.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
}

// TestPluginMode: the taskboard launches Herald itself. After the taskboard
// stops (and so its Herald), the data directory holds what was created.
func TestPluginMode(t *testing.T) {
	bin := buildHerald(t)
	dataDir := t.TempDir()
	tb := startTaskboard(t, "--addr", "127.0.0.1:0", "--herald-bin", bin,
		"--herald-http-addr", "127.0.0.1:0", "--herald-data-dir", dataDir)
	if tb.herald.PID() == 0 {
		t.Fatal("plugin mode: the SDK reports no Herald child process")
	}
	runScenario(t, tb)

	var tok struct {
		URL   string `json:"url"`
		Token string `json:"token"`
	}
	if status := tb.call(tb.login("bob"), "/api/herald-token", nil, &tok); status != http.StatusOK || tok.Token == "" {
		t.Fatalf("herald-token: %d %+v", status, tok)
	}

	// Stop the taskboard: Close stops the Herald it launched, which
	// releases its store for a new Herald on the same data directory.
	pid := tb.herald.PID()
	tb.stop()
	node := heraldtest.Start(t, heraldtest.Options{DataDir: dataDir})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	count, err := node.RPC.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: "bob"})
	if err != nil || count.UnreadCount != 1 {
		t.Fatalf("after Herald (pid %d) stopped, bob's unread count = %v (%v), want 1", pid, count, err)
	}
}

// TestSidecarMode: Herald runs on its own (a heraldtest node, the daemon of
// `herald serve`); the taskboard attaches to its socket. A browser-like
// client opens the WebSocket with the taskboard's connect token and sees
// the assignment arrive live.
func TestSidecarMode(t *testing.T) {
	node := heraldtest.Start(t, heraldtest.Options{})
	node.WaitReady(waitTimeout)
	tb := startTaskboard(t, "--addr", "127.0.0.1:0", "--herald-socket", node.Config.Socket,
		"--herald-ws-url", "ws://"+node.HTTPAddr+"/ws")
	if tb.herald.PID() != 0 {
		t.Fatalf("sidecar mode: PID = %d, want 0", tb.herald.PID())
	}

	// bob's "browser": the token from the taskboard, the URL it names.
	var tok struct {
		URL       string `json:"url"`
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if status := tb.call(tb.login("bob"), "/api/herald-token", nil, &tok); status != http.StatusOK {
		t.Fatalf("herald-token: %d", status)
	}
	if tok.URL != "ws://"+node.HTTPAddr+"/ws" || time.UnixMilli(tok.ExpiresAt).Before(time.Now()) {
		t.Fatalf("herald-token = %+v", tok)
	}
	ws, _, err := wsclient.Dial(tok.URL, wsclient.Options{Token: tok.Token})
	if err != nil {
		t.Fatalf("open the WebSocket with the taskboard's token: %v", err)
	}
	t.Cleanup(ws.Close)
	if _, err := ws.WaitType("unread_sync", waitTimeout); err != nil {
		t.Fatal(err)
	}

	runScenario(t, tb)

	frame, err := ws.WaitFor(func(f wsclient.Frame) bool {
		return f.Type == "notification" && bytes.Contains(f.Raw, []byte("Task 17 was assigned to you"))
	}, waitTimeout)
	if err != nil {
		t.Fatalf("bob's socket got no task.assigned push: %v", err)
	}
	var push struct {
		Notification herald.Notification `json:"notification"`
	}
	if err := frame.Decode(&push); err != nil || push.Notification.UserID != "bob" {
		t.Fatalf("push = %s (%v)", frame.Raw, err)
	}

	// The same notification, through the sidecar's own RPC.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	page, err := node.RPC.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: "bob", UnreadOnly: true})
	if err != nil || len(page.Notifications) != 1 || page.Notifications[0].Id != push.Notification.ID {
		t.Fatalf("sidecar lists %v (%v), want the pushed %s", page.GetNotifications(), err, push.Notification.ID)
	}
}

// TestKubernetesManifestArgs parses the taskboard container's arguments in
// examples/kubernetes/deployment.yaml with the taskboard's own flags, so a
// renamed flag fails here as well as in the manifest's own test.
func TestKubernetesManifestArgs(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(raw, &d); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range d.Spec.Template.Spec.Containers {
		if slices.Contains(c.Args, "serve") {
			continue // Herald
		}
		found = true
		o, err := parseFlags(c.Args, io.Discard)
		if err != nil {
			t.Fatalf("container %s args %q: %v", c.Name, c.Args, err)
		}
		if o.heraldSocket == "" || o.heraldBin != "" {
			t.Fatalf("container %s is not in sidecar mode: %q", c.Name, c.Args)
		}
	}
	if !found {
		t.Fatal("no taskboard container in the deployment")
	}
}
