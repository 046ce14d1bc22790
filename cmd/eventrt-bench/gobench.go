package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// goBench is one line of `go test -bench` output, or the median of several (medianRuns).
type goBench struct {
	Name    string             // without the -GOMAXPROCS suffix
	N       int64              // iterations (all runs')
	Metrics map[string]float64 // unit -> value: ns/op, B/op, allocs/op and custom ones
	Runs    int                // lines merged
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
		b := goBench{Name: procsSuffix.ReplaceAllString(f[0], ""), N: n, Metrics: map[string]float64{}, Runs: 1}
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

// medianRuns merges the lines of each benchmark (in the order they first appear): each metric
// becomes the median of its values, the middle one, or the mean of the two middle ones.
func medianRuns(lines []goBench) []goBench {
	var res []goBench
	var values []map[string][]float64 // res[i]'s metrics, every run's value
	at := map[string]int{}
	for _, l := range lines {
		i, seen := at[l.Name]
		if !seen {
			i = len(res)
			at[l.Name] = i
			res = append(res, goBench{Name: l.Name, Metrics: map[string]float64{}})
			values = append(values, map[string][]float64{})
		}
		res[i].N += l.N
		res[i].Runs++
		for unit, v := range l.Metrics {
			values[i][unit] = append(values[i][unit], v)
		}
	}
	for i, byUnit := range values {
		for unit, vs := range byUnit {
			slices.Sort(vs)
			m := len(vs) / 2
			if len(vs)%2 == 0 {
				res[i].Metrics[unit] = (vs[m-1] + vs[m]) / 2
			} else {
				res[i].Metrics[unit] = vs[m]
			}
		}
	}
	return res
}

// runGoBench runs `go test -run '^$' -bench pattern -benchmem -count count` on pkg (a
// ./internal/... path) in repo and returns each benchmark's medians.
func runGoBench(ctx context.Context, repo, pkg, pattern string, count int, timeout time.Duration, env ...string) ([]goBench, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", strconv.Itoa(count), pkg)
	cmd.Dir = repo
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	lines, perr := parseGoBench(out)
	res := medianRuns(lines)
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

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
