// Package testenv decides what a test does when a tool it needs (node,
// chromium, Debian's Python gRPC packages) is missing: on a developer's
// machine it skips with a message saying what to install; in CI, where
// HERALD_REQUIRE_TOOLS=1 is set, it fails, so a test that silently skipped
// can never pass for one that ran.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RequireToolsEnv is the variable that turns a missing tool into a failure.
const RequireToolsEnv = "HERALD_REQUIRE_TOOLS"

// Missing skips t, or fails it when RequireToolsEnv is "1", with the message.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireToolsEnv) == "1" {
		t.Fatalf("%s (%s=1 requires it)", msg, RequireToolsEnv)
	}
	t.Skip(msg)
}
