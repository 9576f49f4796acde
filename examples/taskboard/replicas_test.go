package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/heraldhq/herald/testing/testenv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/testing/rediskit"
)

const chromiumPath = "/usr/bin/chromium"

// TestReplicasInBrowser runs run-replicas.sh (two taskboards, each with its
// own Herald in plugin mode, one Redis) and drives it in headless Chromium:
// alice assigns a task on replica 1, and the bell of bob, whose page and
// socket are on replica 2, lights up. The screenshots go to the test's
// artifact directory (kept with `go test -artifacts`).
func TestReplicasInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "skipping: %s not found; this test drives Debian's chromium", chromiumPath)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "skipping: node (Node.js 20+) is not on PATH")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	pwPackage := filepath.Join(root, "testing", "browser", "node_modules", "playwright-core", "package.json")
	if _, err := os.Stat(pwPackage); err != nil {
		testenv.Missing(t, "skipping: playwright-core is not installed; run `npm ci` in testing/browser")
	}
	redis := rediskit.Start(t)

	heraldPath := buildHerald(t)
	taskboardPath := filepath.Join(t.TempDir(), "taskboard")
	if out, err := exec.Command("go", "build", "-o", taskboardPath, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build taskboard: %v\n%s", err, out)
	}

	ports := freePorts(t, 4)
	work := t.TempDir()
	script := startReplicas(t, work, []string{
		"REDIS_URL=" + redis.URL(),
		"HERALD_BIN=" + heraldPath,
		"TASKBOARD_BIN=" + taskboardPath,
		"WORK_DIR=" + work,
		"PORT1=" + ports[0], "PORT2=" + ports[1],
		"WS_PORT1=" + ports[2], "WS_PORT2=" + ports[3],
	})
	url1, url2 := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1]
	for _, u := range []string{url1 + "/healthz", url2 + "/healthz",
		"http://127.0.0.1:" + ports[2] + "/readyz", "http://127.0.0.1:" + ports[3] + "/readyz"} {
		script.waitOK(u)
	}

	outDir := t.ArtifactDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, nodeBin, filepath.Join("e2e", "replicas.mjs"), url1, url2, outDir)
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_PACKAGE="+pwPackage, "CHROMIUM="+chromiumPath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Chromium dies with node on timeout
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Run()

	var res struct {
		OK          bool     `json:"ok"`
		Error       string   `json:"error"`
		Before      int      `json:"before"`
		After       int      `json:"after"`
		LatencyMs   int      `json:"latencyMs"`
		Screenshots []string `json:"screenshots"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || runErr != nil || !res.OK {
		t.Fatalf("browser scenario failed: %v / %s\nresult: %s\nbrowser log:\n%s\n%s",
			runErr, res.Error, stdout.String(), stderr.String(), script.logs())
	}
	t.Logf("bob's bell on replica 2 went from %d to %d, %d ms after alice's assignment on replica 1",
		res.Before, res.After, res.LatencyMs)
	for _, shot := range res.Screenshots {
		t.Logf("screenshot: %s", shot)
	}

	script.stop()
	if logs := script.logs(); strings.Contains(logs, "[ERROR]") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("the replicas logged errors:\n%s", logs)
	}
}

// replicas is a running run-replicas.sh.
type replicas struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *syncBuffer
	work   string
	exited chan struct{}
	err    error
	pgid   int
}

func startReplicas(t *testing.T, work string, env []string) *replicas {
	t.Helper()
	r := &replicas{t: t, out: &syncBuffer{}, work: work, exited: make(chan struct{})}
	r.cmd = exec.Command("./run-replicas.sh")
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start run-replicas.sh: %v", err)
	}
	r.pgid = r.cmd.Process.Pid
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(r.stop)
	return r
}

// stop sends SIGTERM to the script, which stops what it started; whatever
// is left of its process group after that is killed. Idempotent.
func (r *replicas) stop() {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(waitTimeout):
			r.t.Errorf("run-replicas.sh did not stop within %s of SIGTERM\n%s", waitTimeout, r.logs())
		}
	}
	_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
}

// logs returns the script's output and the taskboards' logs.
func (r *replicas) logs() string {
	var b strings.Builder
	b.WriteString("run-replicas.sh:\n" + r.out.String())
	for _, n := range []string{"1", "2"} {
		data, _ := os.ReadFile(filepath.Join(r.work, "taskboard-"+n+".log"))
		b.WriteString("\ntaskboard-" + n + ".log:\n" + string(data))
	}
	return b.String()
}

// waitOK waits until url answers 200, failing if the script exits first.
func (r *replicas) waitOK(url string) {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-r.exited:
			r.t.Fatalf("run-replicas.sh exited (%v) before %s answered\n%s", r.err, url, r.logs())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not OK after 2m (last error %v)\n%s", url, err, r.logs())
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
