package main

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/pattern"
	"github.com/eventrt/eventrt/internal/redistest"
)

// SIGKILL of a replica: its partitions are reassigned when its registration expires and taken
// over when their leases expire; the values written meanwhile all run, none twice.
func TestPatternKillHandsOver(t *testing.T) {
	srv := redistest.Start(t)
	bin := buildBinary(t)
	env := replicaEnv(t)
	const keys = 30
	port := redistest.FreePort(t)
	killed := osexec.Command(bin)
	killed.Env = append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
		fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", port), "LOG_FORMAT=json", "MONITORING_PERIOD=1h")
	for k, v := range env {
		killed.Env = append(killed.Env, k+"="+v)
	}
	_, await := startLogged(t, killed)
	await("partitions rebalanced")
	a := &daemonUnderTest{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	a.awaitReady()
	b := startDaemon(t, srv, env)
	awaitOwned(t, 16, a, b)
	writeRound(srv, keys, 1)
	awaitExecutions(t, keys, a, b)
	ranOnA := a.executions()
	if ranOnA == 0 || b.executions() == 0 {
		t.Fatalf("one replica ran every key: %v and %v", ranOnA, b.executions())
	}
	if err := killed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = killed.Wait()
	start := time.Now()
	writeRound(srv, keys, 2)
	awaitExecutions(t, 2*keys-ranOnA, b)
	t.Logf("SIGKILL hand-over: every value written after the kill ran within %v (LEASE_TTL 2s)", time.Since(start).Round(10*time.Millisecond))
	checkKeys(t, srv, keys, 2, 2)
}

// clusterDo sends a keyed command through a cluster client (the key is args[1]).
type clusterDo struct {
	t *testing.T
	c rueidis.Client
}

func (c clusterDo) Do(args ...string) string {
	c.t.Helper()
	cmd := c.c.B().Arbitrary(args[0]).Keys(args[1]).Args(args[2:]...).Build()
	s, err := c.c.Do(context.Background(), cmd).ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		c.t.Fatalf("%v: %v", args, err)
	}
	return s
}

// Two replicas of a pattern function on a 3-master cluster: the keys spread over every node,
// each value runs once, and a SIGTERM hands the keys over with nothing lost.
func TestPatternReplicasOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	env := replicaEnv(t)
	const keys = 30
	do := clusterDo{t, c.Client()}
	nodes := map[string]bool{}
	for k := range keys {
		nodes[c.NodeForKey(fmt.Sprintf("metrics:k%d", k)).Addr()] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("the keys live on %d nodes, want 3", len(nodes))
	}
	seed := c.Masters()[0]
	d1 := startDaemon(t, seed, env)
	d2 := startDaemon(t, c.Masters()[1], env)
	awaitOwned(t, 16, d1, d2)
	writeRound(do, keys, 1)
	awaitExecutions(t, keys, d1, d2)
	if d1.executions() == 0 || d2.executions() == 0 {
		t.Fatalf("one replica ran every key: %v and %v", d1.executions(), d2.executions())
	}
	done := d1.executions()
	d1.stop()
	writeRound(do, keys, 2)
	awaitExecutions(t, 2*keys-done, d2)
	checkKeys(t, do, keys, 2, 2)
}

// 1, 2 and 4 replicas on a 3-master cluster: each replica's share of a round's executions is
// within 20% of 1/N (the assignment balances partitions; the keys spread over them), and a
// SIGTERM of one of four hands its keys over with nothing lost. The hand-over time is logged,
// not asserted.
func TestPatternScaleOutOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and four daemons")
	}
	c := redistest.StartCluster(t, 3)
	env := patternEnv(t, map[string]string{"LEASE": "true", "LEASE_TTL": "2s", "HANDLER_PATH": writeHandler(t, dupHandler)})
	const keys = 800
	do := clusterDo{t, c.Client()}
	var ds []*daemonUnderTest
	var before []float64
	round := 0
	for _, n := range []int{1, 2, 4} {
		for len(ds) < n {
			ds = append(ds, startDaemon(t, c.Masters()[len(ds)%3], env))
		}
		awaitOwned(t, 64, ds...)
		before = before[:0]
		var total float64
		for _, d := range ds {
			e := d.executions()
			before = append(before, e)
			total += e
		}
		round++
		writeRound(do, keys, round)
		awaitExecutions(t, total+keys, ds...)
		var shares []string
		for i, d := range ds {
			share := (d.executions() - before[i]) / keys
			shares = append(shares, fmt.Sprintf("%.3f", share))
			if want := 1 / float64(n); share < 0.8*want || share > 1.2*want {
				t.Errorf("%d replicas: replica %d ran %.3f of the keys, want %.3f ± 20%%", n, i, share, want)
			}
		}
		t.Logf("%d replicas: shares of %d keys %v (1/N = %.3f)", n, keys, shares, 1/float64(n))
	}
	var total float64
	for _, d := range ds {
		total += d.executions()
	}
	stopped := ds[0].executions()
	start := time.Now()
	ds[0].stop()
	stopping := time.Since(start)
	round++
	writeRound(do, keys, round)
	written := time.Since(start)
	awaitExecutions(t, total-stopped+keys, ds[1:]...)
	t.Logf("SIGTERM of 1 of 4 replicas: stopped in %v; the next round of %d values written %v after the SIGTERM, all ran %v after it",
		stopping.Round(time.Millisecond), keys, written.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	checkKeys(t, do, keys, round, round)
}

// A failover on the cluster: the pattern subscription follows the promoted master, and the
// keys it serves keep running on their events.
func TestPatternFollowsAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node cluster")
	}
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	d := startDaemon(t, c.Masters()[0], patternEnv(t, map[string]string{"MONITORING_PERIOD": "200ms",
		"HANDLER_PATH": writeHandler(t, dupHandler)}))
	const keys = 30
	do := clusterDo{t, c.Client()}
	writeRound(do, keys, 1)
	awaitExecutions(t, keys, d)
	old := c.NodeForKey("metrics:k0")
	promoted := c.Failover(old)
	awaitCondition(t, func() (bool, string) {
		n := c.NodeDo(promoted, "PUBSUB", "NUMPAT")
		return n != "0", "no pattern subscription on the promoted master " + promoted.Addr()
	})
	writeRound(do, keys, 2)
	awaitExecutions(t, 2*keys, d)
	checkKeys(t, do, keys, 2, 2)
}

// A value whose runs kill the process (SIGKILL here, as the OOM killer would) runs at most
// KEY_MAX_ATTEMPTS times across restarts, then goes to its slot's dead-letter stream; the
// key's next value runs, and the other keys were never held up.
func TestPatternPoisonValueIsDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := redistest.Start(t)
	bin := buildBinary(t)
	handler := writePython(t, `
import time
def handler(input, context):
    if input.get("poison"):
        print("poison run started", flush=True)
        time.sleep(60)
    return {"ok": input["n"]}
`)
	const maxAttempts = 2
	env := append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
		"HANDLER_RUNTIME=python", "PYFILE_PATH="+handler, "PYTHON="+python(t), "HANDLER_TIMEOUT=120s",
		"HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "MONITORING_PERIOD=1h", fmt.Sprintf("KEY_MAX_ATTEMPTS=%d", maxAttempts),
		"REDIS_INPUT_KEY=metrics:*", "REDIS_OUTPUT_KEY=avg:*", "LEASE=false")
	srv.Do("SET", "metrics:bad", `{"n": 1, "poison": true}`)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		cmd := osexec.Command(bin)
		cmd.Env = env
		_, await := startLogged(t, cmd)
		await("poison run started") // the catch-up run of the value at start
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if got := srv.Do("HGET", "{avg:bad}:env:meta", "attempts"); got != fmt.Sprint(attempt) {
			t.Fatalf("after kill %d: attempts = %q", attempt, got)
		}
	}
	cmd := osexec.Command(bin)
	cmd.Env = env
	_, await := startLogged(t, cmd)
	await("value dead-lettered")
	l, err := pattern.NewLayout("metrics:*", "avg:*", pattern.OutputSet, "handler_module.handler")
	if err != nil {
		t.Fatal(err)
	}
	deadKey := l.DeadKey(l.Keys("metrics:bad").Slot)
	dead := srv.Do("XRANGE", deadKey, "-", "+")
	if !strings.Contains(dead, "metrics:bad") || !strings.Contains(dead, `"poison": true`) {
		t.Fatalf("dead letters in %s: %s", deadKey, dead)
	}
	out := watchOutput(t, srv, "avg:bad")
	srv.Do("SET", "metrics:bad", `{"n": 2}`)
	if got := out.next(); got["ok"] != 2.0 {
		t.Fatalf("the next value's output %v, want {ok: 2}", got)
	}
}
