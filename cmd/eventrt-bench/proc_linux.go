package main

import "syscall"

// sysProcAttr makes the kernel kill a child when the driver dies, so an interrupted
// make bench leaves no redis-server or eventrt behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
