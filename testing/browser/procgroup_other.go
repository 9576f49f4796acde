//go:build !unix

package browser

import "os/exec"

// setProcessGroup does nothing where process groups do not exist; a timeout
// then kills node alone.
func setProcessGroup(*exec.Cmd) {}
