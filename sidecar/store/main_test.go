package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// Store's writer must be gone once its Close returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
