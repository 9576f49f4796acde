//go:build !linux

package rediskit

import (
	"os"
	"syscall"
)

var (
	stopSignal  os.Signal = syscall.SIGTERM
	pauseSignal os.Signal = syscall.SIGSTOP
	contSignal  os.Signal = syscall.SIGCONT
	killSignal  os.Signal = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }
