package trigger_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/trigger"
)

// awaitNode waits until a catch-up follows a setup on node: subscribed there, with
// notifications (or, with wantNotifications false, without).
func (h *harness) awaitNode(t *testing.T, node *redistest.Server, wantNotifications bool) trigger.Status {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case k := <-h.sink.notify:
			if k != trigger.KindCatchup {
				continue
			}
			st := h.w.Status()
			if st.Node == node.Addr() && st.Subscribed && st.Notifications == wantNotifications {
				return st
			}
		case <-deadline:
			t.Fatalf("not following node %s within %s: %+v", node.Addr(), waitTimeout, h.w.Status())
		}
	}
}

// dump logs every record, to tell what the Watcher did when a test failed.
func (h *logRecorder) dump(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		line := r.Time.Format("15:04:05.000") + " " + r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
		t.Log(line)
	}
}

// nodeConfig reads notify-keyspace-events on exactly one node.
func nodeConfig(t *testing.T, c *redistest.Cluster, s *redistest.Server) string {
	t.Helper()
	nc := c.NodeClient(s)
	m, err := nc.Do(context.Background(), nc.B().ConfigGet().Parameter("notify-keyspace-events").Build()).AsStrMap()
	if err != nil {
		t.Fatalf("CONFIG GET on %s: %v", s.Addr(), err)
	}
	return m["notify-keyspace-events"]
}

// numsub counts the subscribers of channel on exactly one node (PUBSUB is node-local).
func numsub(t *testing.T, c *redistest.Cluster, s *redistest.Server, channel string) string {
	t.Helper()
	return c.NodeDo(s, "PUBSUB", "NUMSUB", channel)
}

func otherMaster(c *redistest.Cluster, not *redistest.Server) *redistest.Server {
	for _, m := range c.Masters() {
		if m != not {
			return m
		}
	}
	return nil
}

// TestClusterFollowsTheOwningNode walks one Watcher through the life of a cluster: it shares
// one 6-node cluster between its steps, since starting one takes seconds.
func TestClusterFollowsTheOwningNode(t *testing.T) {
	t.Parallel()
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{
		Masters: 3, ReplicasPerMaster: 1, Directives: []string{`notify-keyspace-events ""`},
	})
	client := c.Client()
	h := startWith(t, nil, client, func(o *trigger.Options) {
		// Short, so that the per-tick owner check notices a coordinated failover promptly.
		o.PollPeriod = 100 * time.Millisecond
		o.MaxRetryBackoff = 500 * time.Millisecond
	})
	// A second Watcher never polls: only the "del" of the migrated key can move it. It has a
	// client of its own: two subscriptions of one channel on one connection are one for
	// Redis, and its UNSUBSCRIBE would end the first Watcher's too.
	hDel := startWith(t, nil, c.Client(), nil)
	ks := "__keyspace@0__:" + inputKey
	ch := "eventrt:trigger:" + inputKey
	slot := c.KeySlot(inputKey)
	owner := c.NodeForKey(inputKey)
	moves := 0
	t.Cleanup(func() {
		if t.Failed() {
			h.logs.dump(t)
		}
	})
	if st := hDel.awaitNode(t, owner, true); st.Moves != 0 {
		t.Fatalf("second watcher: %+v", st)
	}

	// set writes the input key on the node that owns it now (as any cluster client would
	// after following MOVED), then awaits the keyspace signal.
	set := func(t *testing.T, v string) {
		t.Helper()
		c.NodeDo(owner, "SET", inputKey, v)
		h.sink.waitFor(t, trigger.KindKeyspace)
	}
	// follows checks the Watcher moved to node: subscribed and configured there (where subs
	// Watchers are subscribed), and no longer subscribed on the node it left.
	follows := func(t *testing.T, node, left *redistest.Server, subs int) {
		t.Helper()
		st := h.awaitNode(t, node, true)
		if st.Moves != moves || st.Reconnects != 0 || !st.Cluster {
			t.Fatalf("status = %+v, want %d moves, no reconnect, cluster", st, moves)
		}
		if got := nodeConfig(t, c, node); !hasFlags(got, "Kg$h") {
			t.Fatalf("notify-keyspace-events on the owner %s = %q, want K, g, $ and h", node.Addr(), got)
		}
		if got, want := numsub(t, c, node, ks), ks+" "+strconv.Itoa(subs); !strings.Contains(got, want) {
			t.Fatalf("PUBSUB NUMSUB on the owner = %s, want %s", got, want)
		}
		if left != nil {
			if got := numsub(t, c, left, ks); !strings.Contains(got, ks+" 0") {
				t.Fatalf("PUBSUB NUMSUB on the node left behind = %s, want 0", got)
			}
		}
		owner = node
	}

	if !t.Run("subscribes and configures on the owner only", func(t *testing.T) {
		follows(t, owner, nil, 2)
		for _, n := range c.Nodes() {
			if n != owner && nodeConfig(t, c, n) != "" {
				t.Errorf("CONFIG SET reached node %s, which does not own the key", n.Addr())
			}
		}
		if got := numsub(t, c, otherMaster(c, owner), ks); !strings.Contains(got, ks+" 0") {
			t.Fatalf("PUBSUB NUMSUB on a non-owner = %s, want 0", got)
		}
		// Through the cluster client, as the runner and users write.
		if err := client.Do(context.Background(), client.B().Set().Key(inputKey).Value("1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		h.sink.waitFor(t, trigger.KindKeyspace)
		// PUBLISH is broadcast to every node: the trigger channel works from any of them.
		c.NodeDo(otherMaster(c, owner), "PUBLISH", ch, "run")
		h.sink.waitFor(t, trigger.KindPubSub)
	}) {
		return
	}

	if !t.Run("slot migration", func(t *testing.T) {
		from, to := owner, otherMaster(c, owner)
		c.MigrateSlot(slot, to)
		moves++
		if st := hDel.awaitNode(t, to, true); st.Moves != 1 {
			t.Fatalf("non-polling watcher after migration: %+v, want 1 move", st)
		}
		hDel.stop(t)
		follows(t, to, from, 1)
		set(t, "2")
	}) {
		return
	}

	if !t.Run("coordinated failover", func(t *testing.T) {
		from := owner
		promoted := c.Failover(from)
		moves++
		follows(t, promoted, from, 1)
		set(t, "3")
	}) {
		return
	}

	if !t.Run("owner killed and replaced by its replica", func(t *testing.T) {
		dead := owner
		dead.Kill()
		promoted := c.Failover(dead)
		moves++
		follows(t, promoted, nil, 1)
		set(t, "4")
	}) {
		return
	}

	t.Run("Run cancel unsubscribes on the owner", func(t *testing.T) {
		h.stop(t)
		if got := numsub(t, c, owner, ks); !strings.Contains(got, ks+" 0") {
			t.Fatalf("PUBSUB NUMSUB on the owner after Run returned = %s, want 0", got)
		}
	})
}

// TestClusterConfigRefusedFallsBackToPolling: CONFIG renamed away on every node and no
// notifications: the probe runs on the owner, finds nothing, and polling carries on.
func TestClusterConfigRefusedFallsBackToPolling(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, `notify-keyspace-events ""`, `rename-command CONFIG ""`)
	h := startWith(t, nil, c.Client(), func(o *trigger.Options) { o.PollPeriod = 20 * time.Millisecond })
	owner := c.NodeForKey(inputKey)
	st := h.awaitNode(t, owner, false)
	if !st.ConfigRefused || st.NotifyConfig != "" {
		t.Fatalf("status = %+v, want CONFIG refused", st)
	}
	if !strings.Contains(st.LastError, "unknown command") || !strings.Contains(st.LastError, owner.Addr()) {
		t.Fatalf("LastError = %q, want the refused CONFIG naming the owner", st.LastError)
	}
	if w := h.logs.warnings(); len(w) != 1 || !strings.Contains(w[0], "relying on polling") {
		t.Fatalf("warnings = %q, want exactly one about polling", w)
	}
	// Probe keys share the input key's slot: any left (they expire) are on the owner.
	for _, n := range c.Masters() {
		if n != owner {
			if got := c.NodeDo(n, "KEYS", "eventrt:probe:*"); got != "[]" {
				t.Errorf("probe keys on non-owner %s: %s", n.Addr(), got)
			}
		}
	}
	h.sink.waitFor(t, trigger.KindPoll)
	h.sink.waitFor(t, trigger.KindPoll)
}

// TestClusterConfigRefusedProbeSeesOwnerEvents: CONFIG renamed away but notifications
// configured in the nodes' files: the probe, subscribed on the owner, sees them.
func TestClusterConfigRefusedProbeSeesOwnerEvents(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, `notify-keyspace-events "Kg$h"`, `rename-command CONFIG ""`)
	client := c.Client()
	h := startWith(t, nil, client, nil)
	owner := c.NodeForKey(inputKey)
	st := h.awaitNode(t, owner, true)
	if !st.ConfigRefused {
		t.Fatalf("status = %+v, want CONFIG refused and notifications from the probe", st)
	}
	if w := h.logs.warnings(); len(w) != 0 {
		t.Fatalf("warnings = %q, want none", w)
	}
	if err := client.Do(context.Background(), client.B().Hset().Key(inputKey).FieldValue().FieldValue("cpu", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	h.sink.waitFor(t, trigger.KindKeyspace)

	o := trigger.DefaultOptions()
	o.Client, o.InputKey, o.DB = client, inputKey, 1
	if _, err := trigger.New(o, newRecSink()); !trigger.IsInvalidOptions(err) || !strings.Contains(err.Error(), "Cluster") {
		t.Fatalf("New with DB 1 on a cluster: %v, want ErrInvalidOptions", err)
	}
}

// BenchmarkClusterSetToNotify is BenchmarkSetToNotify on a 3-master cluster: the SET goes
// through the cluster client, the event through the owner's connection.
func BenchmarkClusterSetToNotify(b *testing.B) {
	c := redistest.StartCluster(b, 3)
	client := c.Client()
	sink := newRecSink()
	opts := trigger.DefaultOptions()
	opts.Client, opts.InputKey, opts.PollPeriod = client, inputKey, time.Hour
	w, err := trigger.New(opts, sink)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for k := range sink.notify {
		if k == trigger.KindCatchup {
			break
		}
	}
	set := client.B().Set().Key(inputKey).Value(`{"cpu":1}`).Build().Pin()
	for b.Loop() {
		if err := client.Do(ctx, set).Error(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-sink.notify:
		case <-time.After(waitTimeout):
			b.Fatal("no Notify")
		}
	}
}
