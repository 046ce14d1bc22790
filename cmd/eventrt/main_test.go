package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGCDefault(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	gcDefault(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, DefaultGCPercent)
	}
	gcDefault(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent changed to %d; the runtime's own setting must stand", got)
	}
}

func TestProcsDefault(t *testing.T) {
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	unset := func(string) string { return "" }
	for _, c := range []struct {
		key, stream, want int
	}{{1, 0, 1}, {2, 0, def}, {1, 1, def}, {0, 1, def}, {1, 0, 1}, {0, 0, def}} {
		procsDefault(unset, c.key, c.stream)
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("%d key-mode and %d stream functions: GOMAXPROCS %d, want %d", c.key, c.stream, got, c.want)
		}
	}
	runtime.GOMAXPROCS(3)
	procsDefault(func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}, 1, 0)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS set: %d; the runtime's own setting must stand", got)
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var out, errb strings.Builder
		if code := run(t.Context(), args, func(string) string { return "" }, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "eventrt ") || errb.Len() != 0 {
			t.Errorf("eventrt %v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}
