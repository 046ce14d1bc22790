//go:build unix

package pyengine

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// killGroup kills the worker's process group: the worker and anything its handler started.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill() // the group is gone already; make sure of the worker itself
	}
}

func rawRead(fd uintptr, p []byte) (int, error) { return syscall.Read(int(fd), p) }

// readable reports whether fd has data to read, without blocking. Spinning on poll rather
// than on read keeps the spinner off the pipe's lock, which the writer needs.
func readable(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	return err != nil || n > 0 // an error: let the read report it
}
