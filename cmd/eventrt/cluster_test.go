package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/redistest"
)

// TestClusterEndToEnd runs the daemon against a 3-master cluster given one node's address
// (rueidis discovers the rest): the input key's events come from the node owning it, and the
// output and the state it derives ({output}:env) commit together in the output's slot.
func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	// The output's own events are for the test's watcher; the daemon must complete the
	// configuration on the input's owner (g and h besides K and $).
	c := redistest.StartCluster(t, 3, `notify-keyspace-events K$`)
	// An input key on another node than the output, so that reads and commits go to
	// different nodes ("metrics" shares a node with "output" in a 3-master cluster).
	input, out := "metrics", c.NodeForKey("output")
	for i := 0; c.NodeForKey(input) == out; i++ {
		input = "metrics-" + strconv.Itoa(i)
	}
	in := c.NodeForKey(input)
	seed := c.Masters()[0]
	for _, m := range c.Masters() {
		if m != in && m != out {
			seed = m // a node that holds neither key, when there is one
		}
	}
	if slot := c.KeySlot("output"); c.KeySlot("{output}:env") != slot || c.KeySlot("{output}:env:meta") != slot {
		t.Fatalf("the default state keys do not share output's slot %d", slot)
	}
	if err := redisconn.CheckSameSlot(c.Client(), "output", "{output}:env", "{output}:env:meta"); err != nil {
		t.Fatalf("slot check of the default keys: %v", err)
	}

	d := startDaemon(t, seed, map[string]string{"REDIS_INPUT_KEY": input})
	// Notifications are reported once the trigger configured them on the input's owner.
	d.awaitMetric(`eventrt_keyspace_notifications{function="handler_module.handler"}`, 1)
	if got := c.NodeDo(in, "CONFIG", "GET", "notify-keyspace-events"); !strings.Contains(got, "g") || !strings.Contains(got, "h") {
		t.Fatalf("notify-keyspace-events on the input's owner %s = %s, want g and h added", in.Addr(), got)
	}
	watch := watchOutput(t, out, "output") // a client bound to the output's owner
	client := c.Client()
	ctx := context.Background()
	if err := client.Do(ctx, client.B().Set().Key(input).Value(string(sampleMetrics(t))).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	o := watch.next()
	if o["percent_network_egress"] != 16.74 || o["avg-util-cpu0-60sec"] != 32.4 || o["executions"] != 1.0 {
		t.Fatalf("output %v", o)
	}
	// The state lives on the output's node, next to it.
	if got := c.NodeDo(out, "HGET", "{output}:env", "avg-util-cpu0-60sec"); got != "32.4" {
		t.Fatalf("state avg-util-cpu0-60sec on %s = %q, want 32.4", out.Addr(), got)
	}
	if got := c.NodeDo(out, "HGET", "{output}:env:meta", "executions"); got != "1" {
		t.Fatalf("meta executions = %q, want 1", got)
	}

	second := strings.Replace(string(sampleMetrics(t)), `"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`, 1)
	if err := client.Do(ctx, client.B().Set().Key(input).Value(second).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if o := watch.next(); o["avg-util-cpu0-60sec"] != 33.4 || o["executions"] != 2.0 {
		t.Fatalf("second output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 2)
	if code := d.stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestTLSEndToEnd runs the daemon with a rediss:// URL and a CA file against a TLS-only
// redis-server whose certificate a throwaway CA signed.
func TestTLSEndToEnd(t *testing.T) {
	t.Parallel()
	srv, files := redistest.StartTLS(t)
	d := startDaemon(t, srv, map[string]string{
		"REDIS_URL":     "rediss://127.0.0.1:" + strconv.Itoa(srv.Port),
		"REDIS_CA_FILE": files.CAFile,
	})
	watch := watchOutput(t, srv, "output") // srv's clients speak TLS
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	if o := watch.next(); o["percent_network_egress"] != 16.74 || o["executions"] != 1.0 {
		t.Fatalf("output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 1)
}
