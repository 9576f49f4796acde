//go:build !linux

package rediskit

import (
	"os"
	"syscall"
)

var (
	stopSignal os.Signal = syscall.SIGTERM
	killSignal os.Signal = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }
