//go:build !unix

package pyengine

import (
	"os"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }

func rawRead(fd uintptr, p []byte) (int, error) { return syscall.Read(syscall.Handle(fd), p) }

func readable(uintptr) bool { return true }
