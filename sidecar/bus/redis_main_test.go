package bus_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: every
// goroutine of the bus must end when Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
