package lease

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
)

func TestParseOwner(t *testing.T) {
	for _, c := range []struct {
		owner string
		want  incarnation
		ok    bool
	}{
		{"pod-7d9f-x-abcd1234-1-0a1b2c3d-4567", incarnation{host: "pod-7d9f-x", pid: 1, boot: "0a1b2c3d", start: "4567"}, true},
		{"h-abcd1234-42-b-9", incarnation{host: "h", pid: 42, boot: "b", start: "9"}, true},
		{"h-abcd1234", incarnation{}, false},                // an owner id of before pids were added
		{"a", incarnation{}, false},                         // a configured owner
		{"h-abcd1234-x-b-9", incarnation{}, false},          // no pid
		{"h-abcd1234-0-b-9", incarnation{}, false},          // no pid
		{"-abcd1234-42-b-9", incarnation{host: ""}, false},  // no host
		{"h-abcd1234-42--9", incarnation{host: "h"}, false}, // no boot
	} {
		got, ok := parseOwner(c.owner)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("parseOwner(%q) = %+v, %v; want %+v, %v", c.owner, got, ok, c.want, c.ok)
		}
	}
}

// A process restarted after a crash takes over the lease its predecessor left at its first
// attempt, instead of standing by until the lease expires; nobody else's lease is taken.
func TestRestartTakesOverItsPredecessorsLease(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("owner ids carry the process's incarnation on Linux only")
	}
	s := redistest.Start(t)
	me, err := NewOwner()
	if err != nil {
		t.Fatal(err)
	}
	self, ok := parseOwner(me)
	if !ok {
		t.Fatalf("NewOwner() = %q: no incarnation in it", me)
	}
	if self.pid != os.Getpid() {
		t.Fatalf("owner %q: pid %d, want %d", me, self.pid, os.Getpid())
	}
	start, _ := strconv.Atoi(self.start)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	owner := func(host string, pid int, boot string, start int) string {
		return host + "-deadbeef-" + strconv.Itoa(pid) + "-" + boot + "-" + strconv.Itoa(start)
	}
	for _, c := range []struct {
		name   string
		holder string
		take   bool
	}{
		{"restarted in a new PID namespace (same pid, earlier start)", owner(self.host, self.pid, self.boot, start-1), true},
		{"a process that is gone", owner(self.host, dead.Process.Pid, self.boot, 1), true},
		{"another lease of this very process", owner(self.host, self.pid, self.boot, start), false},
		{"a live process on this host", owner(self.host, os.Getppid(), self.boot, 1), false},
		{"another host", owner(self.host+"x", self.pid, self.boot, start-1), false},
		{"another boot of this host", owner(self.host, self.pid, self.boot+"0", start-1), false},
		{"a configured owner id", "replica-a", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.Do("DEL", key)
			s.Do("SET", key, c.holder+":7", "PX", "60000")
			l, err := New(Options{Client: s.Client(), Key: key, FenceKey: fenceKey, TTL: testTTL})
			if err != nil {
				t.Fatal(err)
			}
			held, err := l.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := s.Do("GET", key)
			if held != c.take {
				t.Fatalf("holder %q: took over %v, want %v (lease now %q)", c.holder, held, c.take, got)
			}
			if want := c.holder + ":7"; !c.take && got != want {
				t.Fatalf("lease %q, want it left as %q", got, want)
			}
			if h, _ := l.Held(); c.take && (got != h.Value || !strings.HasPrefix(got, l.Owner()+":")) {
				t.Fatalf("lease %q, want this replica's tenure %q", got, h.Value)
			}
		})
	}
}

// Only the first attempt of a process looks for a predecessor: a replica that has been
// standing by waits for the holder, whoever it is.
func TestOnlyTheFirstAttemptTakesOver(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("owner ids carry the process's incarnation on Linux only")
	}
	s := redistest.Start(t)
	l, err := New(Options{Client: s.Client(), Key: key, FenceKey: fenceKey, TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	s.Do("SET", key, "someone-else:3", "PX", "60000")
	if held, err := l.Acquire(context.Background()); held || err != nil {
		t.Fatalf("first attempt against a live holder: held %v, err %v", held, err)
	}
	predecessor := l.self
	predecessor.start += "0"
	s.Do("SET", key, predecessor.host+"-deadbeef-"+predecessor.suffix()+":4", "PX", "60000")
	if held, err := l.Acquire(context.Background()); held || err != nil {
		t.Fatalf("second attempt: held %v, err %v; want standby", held, err)
	}
}
