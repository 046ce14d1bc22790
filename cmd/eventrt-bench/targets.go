package main

import (
	"fmt"
	"math"
	"strings"
)

// targetKind is how a target's bound reads.
type targetKind int

const (
	perFloor         targetKind = iota // a latency percentile as a multiple of the floor's
	atLeastPerSecond                   // a throughput, entries/s
	atMostNs                           // a go test metric in ns/op
	nearShare                          // a share of N as a multiple of 1/N, within ± bound
)

// target is one pass mark of make bench: a bound on one metric of some rows.
type target struct {
	section string // where its rows are in the report
	rows    string // which rows it applies to, for the reader
	metric  string // p50, p99, entries/s, ns/op, overhead-ns/op
	kind    targetKind
	bound   float64 // the multiple, the rate, or nanoseconds
	bench   string  // handler cost: the one go test benchmark (name without -GOMAXPROCS) it judges
}

// The targets of make bench: the only place they are set. Every verdict in the report comes
// from one of them, and the report prints them all (targetTable).
var (
	targetLatencyP50 = target{section: "1. latency", rows: "every eventrt row", metric: "p50", kind: perFloor, bound: 1.15}
	targetLatencyP99 = target{section: "1. latency", rows: "every eventrt row", metric: "p99", kind: perFloor, bound: 1.5}

	targetStreamStateless = target{section: "2. streams", rows: "eventrt, stateless mapping", metric: "entries/s",
		kind: atLeastPerSecond, bound: 100000}
	targetStreamClassic = target{section: "2. streams", rows: "eventrt, stateful classic handler", metric: "entries/s",
		kind: atLeastPerSecond, bound: 40000}

	targetExprHandler = target{section: "3. handler cost", rows: "BenchmarkClassic (expr engine, Go's default GOGC)",
		metric: "ns/op", kind: atMostNs, bound: 10000, bench: "BenchmarkClassic"}
	targetPythonOverhead = target{section: "3. handler cost", rows: "BenchmarkClassicPython" + pythonDefaultRows() +
		" (Python engine, eventrt's default settings)", metric: "overhead-ns/op", kind: atMostNs, bound: 30000,
		bench: "BenchmarkClassicPython" + pythonDefaultRows()}

	targetScaleShare = target{section: "patterns", rows: "scale-out: each of 1, 2 and 4 replicas on a 3-master cluster",
		metric: "share of the executions", kind: nearShare, bound: 0.2}

	targets = []*target{&targetLatencyP50, &targetLatencyP99, &targetStreamStateless, &targetStreamClassic,
		&targetExprHandler, &targetPythonOverhead, &targetScaleShare}
)

// String is the target as the rows' target column shows it.
func (t *target) String() string {
	switch t.kind {
	case perFloor:
		return fmt.Sprintf("%s ≤ %g× floor", t.metric, t.bound)
	case atLeastPerSecond:
		return "≥ " + count(t.bound) + "/s"
	case nearShare:
		return fmt.Sprintf("%s 1/N ± %g%%", t.metric, t.bound*100)
	default:
		return fmt.Sprintf("%s ≤ %g µs", t.metric, t.bound/1e3)
	}
}

// met reports whether v (the multiple, the rate, the nanoseconds, or the share × N) meets
// the target.
func (t *target) met(v float64) bool {
	switch t.kind {
	case atLeastPerSecond:
		return v >= t.bound
	case nearShare:
		return math.Abs(v-1) <= t.bound+1e-9 // 0.8 and 1.2 are within, despite rounding
	}
	return v <= t.bound
}

// targetTable is the markdown table of every target.
func targetTable() string {
	var b strings.Builder
	b.WriteString("| section | rows | target |\n|---|---|---|\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.section, t.rows, t)
	}
	return b.String()
}
