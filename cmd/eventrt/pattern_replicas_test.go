package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
)

// dupHandler counts the values it ran per key and flags a value run twice or out of order
// (values are written in increasing order per key).
const dupHandler = `
	let c = (env.count ?? 0) + 1;
	let dups = (env.dups ?? 0) + (input.n <= (env.last ?? -1) ? 1 : 0);
	result({"n": input.n, "count": c, "dups": dups}, {"count": c, "last": input.n, "dups": dups})`

// executions sums a daemon's successful executions over every trigger.
func (d *daemonUnderTest) executions() float64 {
	d.t.Helper()
	_, body := d.get("/metrics")
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, `eventrt_executions_total{function="handler_module.handler",outcome="success"`) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// awaitExecutions waits until the daemons' executions add up to want.
func awaitExecutions(t *testing.T, want float64, ds ...*daemonUnderTest) {
	t.Helper()
	awaitCondition(t, func() (bool, string) {
		var sum float64
		var each []float64
		for _, d := range ds {
			n := d.executions()
			sum += n
			each = append(each, n)
		}
		if sum > want {
			t.Fatalf("executions %v (sum %v) exceed the %v values written: a value ran twice", each, sum, want)
		}
		return sum == want, fmt.Sprintf("executions %v, want a sum of %v", each, want)
	})
}

// writeRound sets every key to n.
func writeRound(srv interface{ Do(...string) string }, keys, n int) {
	for k := range keys {
		srv.Do("SET", fmt.Sprintf("metrics:k%d", k), fmt.Sprintf(`{"n": %d}`, n))
	}
}

// checkKeys asserts every key ran its last value n, count times in all, and no value twice.
func checkKeys(t *testing.T, srv interface{ Do(...string) string }, keys, n, count int) {
	t.Helper()
	for k := range keys {
		st := fmt.Sprintf("{avg:k%d}:env", k)
		if got := srv.Do("HGET", st, "last"); got != fmt.Sprint(n) {
			t.Fatalf("%s last %q, want %d", st, got, n)
		}
		if got := srv.Do("HGET", st, "count"); got != fmt.Sprint(count) {
			t.Fatalf("%s count %q, want %d", st, got, count)
		}
		if got := srv.Do("HGET", st, "dups"); got != "0" {
			t.Fatalf("%s: %s values ran twice", st, got)
		}
	}
}

func replicaEnv(t *testing.T) map[string]string {
	return patternEnv(t, map[string]string{"LEASE": "true", "LEASE_TTL": "2s", "PATTERN_PARTITIONS": "16",
		"HANDLER_PATH": writeHandler(t, dupHandler)})
}

// Two and then three replicas share the keys: every value runs exactly once in all, each
// replica runs some, and a replica stopped with SIGTERM hands its keys over with nothing lost.
func TestPatternReplicasShareKeys(t *testing.T) {
	srv := redistest.Start(t)
	env := replicaEnv(t)
	const keys = 40
	d1 := startDaemon(t, srv, env)
	d2 := startDaemon(t, srv, env)
	d1.awaitLog(`"partitions rebalanced"`)
	awaitOwned(t, 16, d1, d2)
	round := 0
	next := func(ds ...*daemonUnderTest) {
		round++
		writeRound(srv, keys, round)
		awaitExecutions(t, float64(keys*round), ds...)
	}
	next(d1, d2)
	if d1.executions() == 0 || d2.executions() == 0 {
		t.Fatalf("one replica ran every key: %v and %v", d1.executions(), d2.executions())
	}
	d3 := startDaemon(t, srv, env)
	awaitOwned(t, 16, d1, d2, d3)
	base3 := d3.executions()
	next(d1, d2, d3)
	if d3.executions() == base3 {
		t.Fatal("the third replica ran no key")
	}
	// SIGTERM: d1 hands over at once; the next round runs entirely on d2 and d3.
	done := d1.executions()
	d1.stop()
	round++
	writeRound(srv, keys, round)
	awaitExecutions(t, float64(keys*round)-done, d2, d3)
	checkKeys(t, srv, keys, round, round)
}

// awaitOwned waits until the daemons hold all n partitions between them, each at most once.
func awaitOwned(t *testing.T, n int, ds ...*daemonUnderTest) {
	t.Helper()
	awaitCondition(t, func() (bool, string) {
		total := 0
		var each []int
		for _, d := range ds {
			c := int(d.metric(`eventrt_pattern_partitions_owned{function="handler_module.handler"}`))
			each = append(each, c)
			total += c
		}
		return total == n && !containsZero(each), fmt.Sprintf("partitions owned %v, want %d in all", each, n)
	})
}

func containsZero(xs []int) bool {
	for _, x := range xs {
		if x <= 0 {
			return true
		}
	}
	return false
}

// awaitCondition waits until check holds; the state it reads (metrics, Redis) has no event
// of its own to wait for, so it is polled.
func awaitCondition(t *testing.T, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, what := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
