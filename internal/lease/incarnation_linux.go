package lease

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// selfIncarnation reads this process's incarnation from /proc.
func selfIncarnation(host string) (incarnation, bool) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return incarnation{}, false
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return incarnation{}, false
	}
	// Fields after the command name (which may hold spaces and parentheses): starttime is the
	// 22nd field of the line, the 20th after it.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return incarnation{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return incarnation{}, false
	}
	if _, err := strconv.ParseUint(f[19], 10, 64); err != nil {
		return incarnation{}, false
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(boot)), "-", "")
	if len(id) > 8 {
		id = id[:8]
	}
	if id == "" {
		return incarnation{}, false
	}
	return incarnation{host: host, boot: id, pid: os.Getpid(), start: f[19]}, true
}

// alive reports whether a process pid exists (in this PID namespace).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
