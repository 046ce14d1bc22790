//go:build unix && !linux

package pyengine

import "syscall"

// procAttr puts the worker in a process group of its own, so that a kill reaches whatever it
// started too.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
