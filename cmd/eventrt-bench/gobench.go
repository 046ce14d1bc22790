package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// goBench is one line of `go test -bench` output.
type goBench struct {
	Name    string             // without the -GOMAXPROCS suffix
	N       int64              // iterations
	Metrics map[string]float64 // unit -> value: ns/op, B/op, allocs/op and custom ones
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench reads the benchmark lines of `go test -bench` output; other lines are ignored.
func parseGoBench(out []byte) ([]goBench, error) {
	var res []goBench
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a "BenchmarkX" log line, not a result
		}
		b := goBench{Name: procsSuffix.ReplaceAllString(f[0], ""), N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %w", sc.Text(), f[i], err)
			}
			b.Metrics[f[i+1]] = v
		}
		res = append(res, b)
	}
	return res, sc.Err()
}

// runGoBench runs `go test -run '^$' -bench pattern -benchmem` on pkg (a ./internal/...
// path) in repo and parses its results.
func runGoBench(ctx context.Context, repo, pkg, pattern string, timeout time.Duration) ([]goBench, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", "1", pkg)
	cmd.Dir = repo
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	res, perr := parseGoBench(out)
	if err != nil {
		// Benchmarks that ran are still reported beside the failure.
		return res, fmt.Errorf("go test -bench %s %s: %w: %s", pattern, pkg, err, failureLines(out))
	}
	if perr != nil {
		return nil, perr
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench %s %s: no benchmark matched: %s", pattern, pkg, lastLines(out, 3))
	}
	return res, nil
}

// failureLines picks what explains a failed go test: "--- FAIL" lines with the line after
// each, panics and compiler errors; else the last lines.
func failureLines(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var picked []string
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "--- FAIL"):
			picked = append(picked, t)
			if i+1 < len(lines) {
				picked = append(picked, strings.TrimSpace(lines[i+1]))
			}
		case strings.HasPrefix(t, "panic:"), strings.Contains(t, ".go:") && !strings.HasPrefix(t, "---") && len(picked) == 0:
			picked = append(picked, t)
		}
		if len(picked) >= 4 {
			break
		}
	}
	if len(picked) == 0 {
		return lastLines(out, 3)
	}
	return strings.Join(picked, " | ")
}

// hasBenchmark reports whether a _test.go file of dir declares func name.
func hasBenchmark(dir, name string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte("func "+name+"(")) {
			return true
		}
	}
	return false
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
