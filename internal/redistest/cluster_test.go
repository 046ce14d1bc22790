package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/rediscluster"
)

// TestCluster shares one 3-master cluster between its steps: starting one takes ~2 s.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3, "notify-keyspace-events KA")
	if got := len(c.Masters()); got != 3 {
		t.Fatalf("masters = %d, want 3", got)
	}
	client := c.Client()
	if client.Mode() != rueidis.ClientModeCluster {
		t.Fatalf("client mode = %s, want cluster", client.Mode())
	}
	ctx := context.Background()

	t.Run("keys land on the node NodeForKey names", func(t *testing.T) {
		owners := map[*Server]bool{}
		for i := 0; i < 30; i++ {
			key, value := "k"+strconv.Itoa(i), "v"+strconv.Itoa(i)
			if err := client.Do(ctx, client.B().Set().Key(key).Value(value).Build()).Error(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}
			owner := c.NodeForKey(key)
			owners[owner] = true
			if got := c.NodeDo(owner, "GET", key); got != value {
				t.Fatalf("GET %s on owner %s = %q", key, owner.Addr(), got)
			}
			for _, s := range c.Nodes() {
				if _, err := c.nodeDo(s, "GET", key); s != owner && (err == nil || !strings.Contains(err.Error(), "MOVED")) {
					t.Fatalf("GET %s on non-owner %s: err = %v, want MOVED", key, s.Addr(), err)
				}
			}
		}
		if len(owners) != 3 {
			t.Fatalf("30 keys landed on %d masters, want all 3", len(owners))
		}
	})

	t.Run("MigrateSlot moves the keys", func(t *testing.T) {
		key := "{m}:a"
		if err := client.Do(ctx, client.B().Set().Key(key).Value("1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		from := c.NodeForKey(key)
		var to *Server
		for _, m := range c.Masters() {
			if m != from {
				to = m
				break
			}
		}
		c.MigrateSlot(c.KeySlot(key), to)
		if got := c.NodeForKey(key); got != to {
			t.Fatalf("owner after migration = %s, want %s", got.Addr(), to.Addr())
		}
		if got := c.NodeDo(to, "GET", key); got != "1" {
			t.Fatalf("GET %s on new owner = %q, want 1", key, got)
		}
		if _, err := c.nodeDo(from, "GET", key); err == nil || !strings.Contains(err.Error(), "MOVED") {
			t.Fatalf("GET %s on old owner: err = %v, want MOVED", key, err)
		}
		// The cluster client follows the MOVED redirection.
		if got, err := client.Do(ctx, client.B().Get().Key(key).Build()).ToString(); err != nil || got != "1" {
			t.Fatalf("GET %s through cluster client = %q, %v", key, got, err)
		}
	})

	t.Run("RestartNode keeps data and config-file directives", func(t *testing.T) {
		if err := client.Do(ctx, client.B().Set().Key("r").Value("1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		owner := c.NodeForKey("r")
		c.RestartNode(owner)
		if got := c.NodeDo(owner, "GET", "r"); got != "1" {
			t.Fatalf("GET after restart = %q", got)
		}
		if got := c.NodeDo(owner, "CONFIG", "GET", "notify-keyspace-events"); !strings.Contains(got, "AK") {
			t.Fatalf("notify-keyspace-events after restart = %q, want the directive (AK)", got)
		}
	})
}

func TestFailoverLiveAndKilledMaster(t *testing.T) {
	t.Parallel()
	c := StartClusterWith(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	if got := len(c.Nodes()); got != 6 {
		t.Fatalf("nodes = %d, want 6", got)
	}
	client := c.Client()
	ctx := context.Background()
	key := "fo"
	if err := client.Do(ctx, client.B().Set().Key(key).Value("1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	old := c.NodeForKey(key)

	promoted := c.Failover(old)
	if got := c.NodeForKey(key); got != promoted || promoted == old {
		t.Fatalf("owner after failover = %s, want promoted %s (old %s)", got.Addr(), promoted.Addr(), old.Addr())
	}
	if role := rediscluster.InfoField(c.NodeDo(old, "INFO", "replication"), "role"); role != "slave" {
		t.Fatalf("old master role = %q, want slave", role)
	}
	if got := c.NodeDo(promoted, "GET", key); got != "1" {
		t.Fatalf("GET on promoted = %q, want 1", got)
	}

	// Now kill the new master: its replica (the first master) takes over.
	promoted.Kill()
	back := c.Failover(promoted)
	if back != old {
		t.Fatalf("second failover promoted %s, want %s", back.Addr(), old.Addr())
	}
	if got, err := client.Do(ctx, client.B().Get().Key(key).Build()).ToString(); err != nil || got != "1" {
		t.Fatalf("GET through cluster client after failover = %q, %v", got, err)
	}
	c.StartNodeAgain(promoted)
	if role := rediscluster.InfoField(c.NodeDo(promoted, "INFO", "replication"), "role"); role != "slave" {
		t.Fatalf("restarted old master role = %q, want slave", role)
	}
}

// subscription records what one Receive delivers, without ever blocking rueidis' pipeline
// goroutine.
type subscription struct {
	msgs       chan rueidis.PubSubMessage
	subscribed chan string // one "kind channel" per confirmation
	done       chan error
	cancel     context.CancelFunc
}

// nodeClient is client's per-node client for the node at addr. After a failover rueidis
// learns of the new master in a topology refresh that it runs in the background after a MOVED
// reply or a failed command, and nothing signals its end: this polls Nodes(), bounded, sending
// a read of key between polls so that a refresh is due.
func nodeClient(t *testing.T, client rueidis.Client, addr, key string) rueidis.Client {
	t.Helper()
	for deadline := time.Now().Add(studyWait); ; time.Sleep(20 * time.Millisecond) {
		if n := client.Nodes()[addr]; n != nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client for %s in the cluster client's Nodes() after %v", addr, studyWait)
		}
		_ = client.Do(context.Background(), client.B().Get().Key(key).Build()).Error()
	}
}

func subscribe(t *testing.T, client rueidis.Client, channels ...string) *subscription {
	t.Helper()
	if client == nil {
		t.Fatal("subscribe: no client for that node")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		msgs:       make(chan rueidis.PubSubMessage, 256),
		subscribed: make(chan string, 256),
		done:       make(chan error, 1),
		cancel:     cancel,
	}
	ctx = rueidis.WithOnSubscriptionHook(ctx, func(ps rueidis.PubSubSubscription) {
		select {
		case s.subscribed <- ps.Kind + " " + ps.Channel:
		default:
		}
	})
	go func() {
		s.done <- client.Receive(ctx, client.B().Subscribe().Channel(channels...).Build(), func(m rueidis.PubSubMessage) {
			select {
			case s.msgs <- m:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	for range channels {
		s.awaitSubscribed(t)
	}
	return s
}

const studyWait = 10 * time.Second

func (s *subscription) awaitSubscribed(t *testing.T) {
	t.Helper()
	select {
	case <-s.subscribed:
	case err := <-s.done:
		t.Fatalf("Receive returned before subscribing: %v", err)
	case <-time.After(studyWait):
		t.Fatal("no subscribe confirmation")
	}
}

// expect fails unless the next message is event on channel.
func (s *subscription) expect(t *testing.T, channel, event string) {
	t.Helper()
	select {
	case m := <-s.msgs:
		if m.Channel != channel || m.Message != event {
			t.Fatalf("got %q on %q, want %q on %q", m.Message, m.Channel, event, channel)
		}
	case err := <-s.done:
		t.Fatalf("Receive returned while waiting for %q on %q: %v", event, channel, err)
	case <-time.After(studyWait):
		t.Fatalf("no %q on %q", event, channel)
	}
}

func (s *subscription) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		t.Fatalf("Receive returned: %v", err)
	default:
	}
}

// TestClusterKeyspaceStudy records how keyspace notifications behave on a Redis 7.0 cluster
// seen through rueidis v1.0.79, for the keyspace trigger. Each subtest states one finding and
// fails if it stops holding. Absence of an event on a node is proven with a marker: PUBLISH
// is forwarded to every node over the cluster bus in order, after anything the owner would
// have forwarded for the write before it.
func TestClusterKeyspaceStudy(t *testing.T) {
	t.Parallel()
	c := StartClusterWith(t, ClusterOptions{
		Masters: 3, ReplicasPerMaster: 1,
		// In the config file, unlike CONFIG SET, the setting survives restarts.
		Directives: []string{"notify-keyspace-events KA"},
	})
	client := c.Client()
	ctx := context.Background()
	const key, marker = "in", "study:marker"
	channel := "__keyspace@0__:" + key
	set := func(t *testing.T, v string) {
		t.Helper()
		if err := client.Do(ctx, client.B().Set().Key(key).Value(v).Build()).Error(); err != nil {
			t.Fatalf("SET %s %s: %v", key, v, err)
		}
	}
	mark := func(t *testing.T, via *Server, subs ...*subscription) {
		t.Helper()
		c.NodeDo(via, "PUBLISH", marker, "m")
		for _, s := range subs {
			s.expect(t, marker, "m")
		}
	}
	owner := c.NodeForKey(key)
	var other *Server
	for _, m := range c.Masters() {
		if m != owner {
			other = m
			break
		}
	}

	// Keyspace events are published only on the node that executed the write: subscribe on
	// the owner through the cluster client's per-node client (Nodes() is keyed by host:port).
	// This subscription lives through all the subtests.
	onOwner := subscribe(t, nodeClient(t, client, owner.Addr(), key), channel, marker)
	t.Run("events are node-local", func(t *testing.T) {
		onOther := subscribe(t, nodeClient(t, client, other.Addr(), key), channel, marker)
		set(t, "1")
		onOwner.expect(t, channel, "set")
		mark(t, owner, onOwner, onOther) // onOther got nothing before the marker
	})

	// A keyless command on a cluster client goes to one arbitrary node: CONFIG SET
	// notify-keyspace-events must be sent to every node (Nodes(), or a client per node).
	t.Run("CONFIG SET through the cluster client reaches one node", func(t *testing.T) {
		cmd := client.B().ConfigSet().ParameterValue().ParameterValue("maxmemory-samples", "7").Build()
		if err := client.Do(ctx, cmd).Error(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range c.Nodes() {
			if strings.Contains(c.NodeDo(s, "CONFIG", "GET", "maxmemory-samples"), ":7]") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("CONFIG SET reached %d nodes, want exactly 1", n)
		}
	})

	// Replicas publish keyspace events for the writes they replicate (an expiry arrives as
	// "del", not "expired"), so a subscription on a replica sees the key's changes too.
	t.Run("replicas publish events for replicated writes", func(t *testing.T) {
		onReplica := subscribe(t, c.NodeClient(c.Replicas(owner)[0]), channel, marker)
		set(t, "2")
		onReplica.expect(t, channel, "set")
		onOwner.expect(t, channel, "set")
	})

	// A node client from Nodes() is the cluster client's own connection to that node: when
	// the node restarts, the connection is re-dialled and Receive re-subscribes by itself
	// (a second subscribe confirmation) without returning.
	t.Run("restart of the owner: Receive resubscribes", func(t *testing.T) {
		c.RestartNode(owner)
		onOwner.awaitSubscribed(t)
		onOwner.awaitSubscribed(t) // both channels
		set(t, "3")
		onOwner.expect(t, channel, "set")
		onOwner.running(t)
	})

	// MIGRATE moves the key with DEL on the source and RESTORE on the target, each a keyspace
	// event; afterwards writes happen, and notify, only on the new owner. The old owner's
	// subscription stays up and silent: Receive does not return. A subscriber notices the
	// move from the "del", from a MOVED reply to a keyed command sent on the node client, or
	// by comparing CLUSTER SLOTS, and must subscribe on the new owner itself.
	t.Run("slot migration moves the events", func(t *testing.T) {
		onOther := subscribe(t, nodeClient(t, client, other.Addr(), key), channel, marker)
		c.MigrateSlot(c.KeySlot(key), other)
		onOwner.expect(t, channel, "del")
		onOther.expect(t, channel, "restore")
		set(t, "4")
		onOther.expect(t, channel, "set")
		mark(t, other, onOwner, onOther) // the old owner heard nothing of the write
		onOwner.running(t)
		err := nodeClient(t, client, owner.Addr(), key).Do(ctx, client.B().Exists().Key(key).Build()).Error()
		if err == nil || !strings.Contains(err.Error(), "MOVED") {
			t.Fatalf("EXISTS on the old owner's node client: %v, want MOVED", err)
		}
		c.MigrateSlot(c.KeySlot(key), owner)
		onOther.expect(t, channel, "del")
		onOwner.expect(t, channel, "restore")
	})

	// After a coordinated failover the old master is a replica and, as such, still publishes
	// the key's events: the old subscription keeps working with no action.
	var promoted *Server
	t.Run("coordinated failover: the old master keeps publishing as a replica", func(t *testing.T) {
		promoted = c.Failover(owner)
		set(t, "5")
		onOwner.expect(t, channel, "set")
		onOwner.running(t)
	})

	// When the owner dies and its replica takes over, rueidis drops the dead node from
	// Nodes() at its next topology refresh (here the first write, which fails with a
	// connection error and is not retried). A Receive on the dead node's client never
	// returns on its own: the per-node client retries the closed connection with backoff
	// forever. The subscriber must cancel it and subscribe on the new owner.
	t.Run("owner killed: Receive on its node client hangs until cancelled", func(t *testing.T) {
		onDead := subscribe(t, nodeClient(t, client, promoted.Addr(), key), channel, marker)
		promoted.Kill()
		newOwner := c.Failover(promoted)
		// Writes fail until rueidis refreshes its topology, which it does after a random
		// delay once a command failed; nothing signals it, so this retries in a bounded loop.
		var err error
		for deadline := time.Now().Add(studyWait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if err = client.Do(ctx, client.B().Set().Key(key).Value("6").Build()).Error(); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("SET after failover: %v", err)
		}
		_, listed := client.Nodes()[promoted.Addr()]
		t.Logf("after the first successful write, Nodes() lists the dead node: %v", listed)
		onNew := subscribe(t, nodeClient(t, client, newOwner.Addr(), key), channel, marker)
		set(t, "7")
		onNew.expect(t, channel, "set")
		onDead.running(t)
		onDead.cancel()
		select {
		case err := <-onDead.done:
			t.Logf("Receive on the dead node's client returned after cancel: %v", err)
			onDead.done <- err // for the cleanup
		case <-time.After(studyWait):
			t.Fatal("Receive on the dead node's client did not return after cancel")
		}
	})
}
