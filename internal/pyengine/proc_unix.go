//go:build unix

package pyengine

import (
	"os"
	"syscall"
)

// killGroup kills the worker's process group: the worker and anything its handler started.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill() // the group is gone already; make sure of the worker itself
	}
}

func rawRead(fd uintptr, p []byte) (int, error) { return syscall.Read(int(fd), p) }
