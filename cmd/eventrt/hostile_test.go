package main

import (
	"bufio"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/redistest"
)

// hostileHandler runs the attack its input names, or echoes input.n.
const hostileHandler = `
let a = input.attack ?? "";
a == "repeat" ? len(map(0..200000, repeat("x", 1048576))) :
a == "split" ? len(map(0..200000, split(repeat("a", 1000000), ""))) :
a == "tojson" ? (let big = map(0..20000, "0123456789"); len(map(0..2000, toJSON(big)))) :
a == "concat" ? len(map(0..100000, "x" + repeat("y", 100000))) :
a == "elements" ? len(map(0..299999, [#, #, #])) :
a == "ranges" ? len(map(0..100000, 0..999)) :
a == "regexmem" ? ("aaaa" matches repeat("(a|b)*", 170000)) :
a == "regexgroups" ? ("aaaa" matches repeat("(a|b)*", 2000)) :
a == "regextime" ? (repeat("a", 1000000) matches (repeat("(a|aa)*", 1000) + "b")) :
{n: input.n}
`

// The attacks of a hostile handler, through the real daemon (built without -race) and a real
// Redis: each run fails with its kind, the next input runs, and the process's peak resident
// memory stays within its baseline plus twice the run's byte budget.
func TestHostileHandlerThroughTheDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	srv := redistest.Start(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler_module.expr"), []byte(hostileHandler), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(bin)
	cmd.Env = append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
		"HANDLER_PATH="+dir, "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "MONITORING_PERIOD=1h",
		"HANDLER_TIMEOUT=1s", "GOMEMLIMIT=", "GOGC=")
	lines, _ := startLogged(t, cmd)
	// A long wait: the attacks are slow on a loaded machine, and a log line is the event.
	await := func(text string) string { t.Helper(); return awaitLog(t, lines, text, time.Minute) }
	await("enabled keyspace notifications")

	n := 0
	good := func() {
		t.Helper()
		n++
		srv.Do("SET", "metrics", fmt.Sprintf(`{"n": %d}`, n))
		waitOutput(t, srv, fmt.Sprintf(`{"n":%d}`, n))
	}
	good()
	baseline := peakRSS(t, cmd.Process.Pid)

	for _, tc := range []struct{ attack, kind string }{
		{"repeat", "memory"},
		{"split", "memory"},
		{"tojson", "memory"},
		{"concat", "memory"},
		{"elements", "memory"}, // expr's element budget, capped by HANDLER_MEMORY
		{"ranges", "memory"},
		{"regexmem", "timeout"},   // the pattern's size
		{"regexgroups", "memory"}, // what regexp would take for 2,000 groups
		{"regextime", "timeout"},  // refused before it starts: minutes of work for 1s
	} {
		sent := time.Now()
		srv.Do("SET", "metrics", fmt.Sprintf(`{"attack": %q}`, tc.attack))
		line := await(`"execution failed"`)
		failedAfter := time.Since(sent) // reported, not asserted
		if !strings.Contains(line, fmt.Sprintf(`"kind":%q`, tc.kind)) {
			t.Errorf("%s: want kind %s, got %.400s", tc.attack, tc.kind, line)
		}
		if got := srv.Do("GET", "output"); got != fmt.Sprintf(`{"n":%d}`, n) {
			t.Errorf("%s: a failed run wrote %q", tc.attack, got)
		}
		good()
		t.Logf("%s: failed after %s; VmHWM %d KiB", tc.attack, failedAfter.Round(time.Millisecond), peakRSS(t, cmd.Process.Pid)>>10)
	}
	peak := peakRSS(t, cmd.Process.Pid)
	bound := baseline + 2*config.DefaultHandlerMemory
	t.Logf("VmHWM: %d KiB after a good run, %d KiB after the attacks (bound %d KiB)", baseline>>10, peak>>10, bound>>10)
	if peak > bound {
		t.Errorf("peak RSS %d KiB passes baseline %d KiB + 2 × HANDLER_MEMORY", peak>>10, baseline>>10)
	}
}

// peakRSS is the process's peak resident set size (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
