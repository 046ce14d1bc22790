package main

import (
	"errors"
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// MemoryLimitRatio is the share of the container's memory limit that Go's soft memory limit
// takes when GOMEMLIMIT is not set: the collector works harder as the heap nears it, so the
// process collects before the kernel kills it. The rest is left to what Go does not count
// (stacks of threads in cgo, the binary) and to Python workers, which share the container.
const MemoryLimitRatio = 0.9

// memoryLimit sets Go's soft memory limit from the container's (cgroup v1 or v2) memory
// limit, unless GOMEMLIMIT is set, which wins, and logs the limit chosen and where it came
// from. provider reports the container's limit (memlimit.FromCgroup) and set is
// debug.SetMemoryLimit; both are parameters so that a test can run this without touching the
// test process.
func memoryLimit(log *slog.Logger, getenv func(string) string, provider memlimit.Provider, set func(int64) int64) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("Go memory limit", "limit_bytes", set(-1), "source", "GOMEMLIMIT")
		return
	}
	limit, err := provider()
	switch {
	case errors.Is(err, memlimit.ErrNoLimit):
		log.Info("Go memory limit: none (no container memory limit; GOMEMLIMIT sets one)")
		return
	case err != nil:
		// Not in a cgroup eventrt can read (another OS, a restricted /proc): no limit, as
		// before, but say so.
		log.Info("Go memory limit: none (container memory limit unknown; GOMEMLIMIT sets one)", "err", err)
		return
	}
	goLimit := int64(math.MaxInt64)
	if l := float64(limit) * MemoryLimitRatio; l < float64(math.MaxInt64) {
		goLimit = int64(l)
	}
	set(goLimit)
	log.Info("Go memory limit", "limit_bytes", goLimit, "source", "cgroup", "container_limit_bytes", limit, "ratio", MemoryLimitRatio)
}

// containerMemoryLimit is memoryLimit on the process itself.
func containerMemoryLimit(log *slog.Logger, getenv func(string) string) {
	memoryLimit(log, getenv, memlimit.FromCgroup, debug.SetMemoryLimit)
}
