package main

import (
	"fmt"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
)

// Two daemons on one key (two replicas of a Deployment): each value runs once in total, the
// state goes on across a hand-over, and stopping the holder lets the other take over.
func TestTwoReplicasRunEachValueOnce(t *testing.T) {
	const (
		executions = `eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`
		catchups   = `eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="catchup"}`
		standby    = `eventrt_runs_skipped_total{function="handler_module.handler",reason="standby"}`
	)
	srv := redistest.Start(t)
	env := map[string]string{"LEASE_TTL": "2s", "HANDLER_PATH": writeHandler(t, `
		let c = (env.count ?? 0) + 1;
		result({"n": input.n, "count": c}, {"count": c})`)}
	d1 := startDaemon(t, srv, env)
	d2 := startDaemon(t, srv, env)
	out := watchOutput(t, srv, "output")
	const values = 5
	for n := 1; n <= values; n++ {
		srv.Do("SET", "metrics", fmt.Sprintf(`{"n": %d}`, n))
		if o := out.next(); o["n"] != float64(n) || o["count"] != float64(n) {
			t.Fatalf("output %v after value %d", o, n)
		}
	}
	if got := srv.Do("HGET", "{output}:env:meta", "executions"); got != fmt.Sprint(values) {
		t.Fatalf("meta executions = %s for %d values", got, values)
	}
	ran := func(d *daemonUnderTest) float64 { return max(d.metric(executions), 0) + max(d.metric(catchups), 0) }
	holder, other := d1, d2
	if ran(d2) > 0 {
		holder, other = d2, d1
	}
	if ran(holder) != values || ran(other) != 0 {
		t.Fatalf("executions: holder %v, standby %v; want %d and 0", ran(holder), ran(other), values)
	}
	// The standby heard every event and ran none.
	other.awaitMetric(standby, values)

	if code := holder.stop(); code != 0 {
		t.Fatalf("holder exit %d", code)
	}
	srv.Do("SET", "metrics", `{"n": 6}`)
	if o := out.next(); o["n"] != 6.0 || o["count"] != 6.0 {
		t.Fatalf("output after the hand-over %v: state not carried over", o)
	}
	if got := srv.Do("HGET", "{output}:env:meta", "executions"); got != "6" {
		t.Fatalf("meta executions = %s after the hand-over", got)
	}
	if ran(other) != 1 {
		t.Fatalf("the new holder ran %v times, want 1", ran(other))
	}
	if got := srv.Do("HGET", "{output}:env:meta", "fence"); got != "2" {
		t.Fatalf("meta fence = %q: the second tenure should have committed", got)
	}
}

// LEASE=false keeps the single-replica path: no lease keys, unfenced commits.
func TestLeaseOff(t *testing.T) {
	srv := redistest.Start(t)
	startDaemon(t, srv, map[string]string{"LEASE": "false"})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	if o := out.next(); o["executions"] != 1.0 {
		t.Fatalf("output %v", o)
	}
	for _, k := range []string{"{output}:env:lease", "{output}:env:fence"} {
		if got := srv.Do("EXISTS", k); got != "0" {
			t.Errorf("%s exists with LEASE=false", k)
		}
	}
	if got := srv.Do("HEXISTS", "{output}:env:meta", "fence"); got != "0" {
		t.Error("an unfenced commit recorded a fence")
	}
}
