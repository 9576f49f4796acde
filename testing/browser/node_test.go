package browser

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeSDK runs the JavaScript SDK's test suite (sdk/js/test/*.test.mjs,
// node's test runner) against a freshly built herald binary, and fails when
// any of its tests fails.
func TestNodeSDK(t *testing.T) {
	node := lookNode(t)
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "sdk", "js", "test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in sdk/js/test: %v", err)
	}
	bin := buildHerald(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append(nodeArgs(t, node), "--test", "--test-reporter=spec")
	cmd := nodeCommand(ctx, node, append(args, files...)...)
	cmd.Dir = filepath.Join(root, "sdk", "js")
	cmd.Env = append(os.Environ(), "HERALD_BIN="+bin, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}
