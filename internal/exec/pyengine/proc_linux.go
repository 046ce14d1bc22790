package pyengine

import "syscall"

// procAttr puts the worker in a process group of its own, so that a kill reaches whatever it
// started too, and has the kernel kill it if eventrt dies while it runs a handler (an idle
// worker exits by itself when its request pipe closes).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
