package lease

import (
	"strconv"
	"strings"
)

// incarnation identifies one process on one machine: its host name, the machine's boot id,
// its process id and the time it started (in the kernel's clock ticks since boot). Default
// owner ids end with it, so that a restarted process can recognise its own predecessor's lease
// and take it over at once instead of waiting up to a TTL for it to expire (see predecessor).
type incarnation struct {
	host  string
	boot  string
	pid   int
	start string
}

func (i incarnation) suffix() string {
	return strconv.Itoa(i.pid) + "-" + i.boot + "-" + i.start
}

// parseOwner reads the incarnation at the end of a default owner id,
// "<host>-<random>-<pid>-<boot>-<start>"; ok is false for any other id.
func parseOwner(owner string) (inc incarnation, ok bool) {
	f := strings.Split(owner, "-")
	if len(f) < 5 {
		return incarnation{}, false
	}
	n := len(f)
	pid, err := strconv.Atoi(f[n-3])
	if err != nil || pid <= 0 || f[n-2] == "" || f[n-1] == "" || f[n-4] == "" {
		return incarnation{}, false
	}
	host := strings.Join(f[:n-4], "-")
	if host == "" {
		return incarnation{}, false
	}
	return incarnation{host: host, boot: f[n-2], pid: pid, start: f[n-1]}, true
}

// predecessor reports whether the owner id holder belongs to a dead earlier process of this
// replica: same host name on the same machine boot, and either our own pid with another start
// time (a container restarted in its pod: a new PID namespace where eventrt is pid 1 again), or
// another pid that no longer exists. A process of this very process (same pid and start: two
// functions, or tests) is never a predecessor. The check can be wrong only for two live
// processes with one host name on one machine in different PID namespaces; the cost of that is
// one takeover, which the fenced commit makes safe (the loser's commits are refused and the new
// holder catches up on the input).
func (me incarnation) predecessor(holder string) bool {
	h, ok := parseOwner(holder)
	if !ok || h.host != me.host || h.boot != me.boot {
		return false
	}
	if h.pid == me.pid {
		return h.start != me.start
	}
	return !alive(h.pid)
}
