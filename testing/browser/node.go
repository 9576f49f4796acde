// Package browser holds the tests of Herald's JavaScript SDK (sdk/js): its
// Node test suite, run against a real `herald serve`, and a headless Chromium
// test of the example page (examples/browser) against a real Herald node.
//
// The tests need Node 20+ on PATH and, for the browser test, Debian's
// /usr/bin/chromium and playwright-core (`npm ci` in this directory). They
// skip with a message naming what is missing.
package browser

import (
	"context"
	"github.com/heraldhq/herald/testing/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// chromiumPath is the browser the tests drive; playwright's own browser
// downloads are not used.
const chromiumPath = "/usr/bin/chromium"

// repoRoot returns the module's root directory (two levels above this package).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// lookNode returns the node binary, skipping the test when there is none.
func lookNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "skipping: node (Node.js 20+) is not on PATH; the JavaScript SDK tests need it")
	}
	return node
}

// nodeArgs returns the flags node needs for a global WebSocket: Node 20 has
// it only behind --experimental-websocket, Node 22+ by default.
func nodeArgs(t testing.TB, node string) []string {
	t.Helper()
	out, err := exec.Command(node, "-p", "typeof WebSocket").Output()
	if err != nil {
		t.Fatalf("run node: %v", err)
	}
	if strings.TrimSpace(string(out)) == "function" {
		return nil
	}
	return []string{"--experimental-websocket"}
}

// buildHerald builds the herald binary into a temporary directory.
func buildHerald(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command(goBin, "build", "-o", out, "./sidecar/cmd/herald")
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./sidecar/cmd/herald: %v\n%s", err, b)
	}
	return out
}

// nodeCommand prepares node with args in its own process group, so that a
// timeout ends node and everything it started (test files, herald servers,
// Chromium), not node alone.
func nodeCommand(ctx context.Context, node string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, node, args...)
	setProcessGroup(cmd)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}
