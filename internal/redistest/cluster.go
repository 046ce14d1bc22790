package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/rediscluster"
)

// Cluster defaults.
const (
	// DefaultClusterMasters is the number of masters StartClusterWith uses when Masters is 0.
	DefaultClusterMasters = 3
	// DefaultClusterNodeTimeout is cluster-node-timeout. It only matters for automatic failure
	// detection, which no helper here relies on (Failover is explicit), so it is generous
	// enough that a loaded CI machine does not see false failures.
	DefaultClusterNodeTimeout = 3 * time.Second
	// ClusterWaitTimeout bounds every wait for the cluster to agree on its topology.
	ClusterWaitTimeout = 20 * time.Second
	// clusterSlots is the number of hash slots of every Redis Cluster.
	clusterSlots = rediscluster.Slots
)

// ClusterOptions configures StartClusterWith.
type ClusterOptions struct {
	// Masters is the number of masters sharing the slots evenly (DefaultClusterMasters if 0).
	Masters int
	// ReplicasPerMaster adds that many replicas to every master (needed by Failover).
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout (DefaultClusterNodeTimeout if 0).
	NodeTimeout time.Duration
	// Directives are extra redis.conf lines for every node, for example
	// `notify-keyspace-events KEA` (which, unlike CONFIG SET, survives RestartNode).
	Directives []string
}

// Cluster is a Redis Cluster of redis-server processes on loopback owned by a test.
//
// Its nodes are ordinary *Server values, but Server.Do, Server.Client, Server.Stop and
// Server.Restart go through a rueidis client that detects cluster mode and then routes
// keyless commands to an arbitrary node. Use NodeDo, NodeClient, RestartNode and StopNode
// for commands that must reach one particular node.
type Cluster struct {
	t     testing.TB
	nodes []*Server        // every node, masters first in start order
	admin []rueidis.Client // a client bound to each node (no cluster routing), as nodes

	mu   sync.Mutex
	topo rediscluster.Topology // what the nodes should agree on; nodes named by index in nodes
}

// StartCluster starts a cluster of masters (3 when masters is 0) with no replicas; every node
// gets the extra redis.conf directives. It returns once every node reports cluster_state:ok
// and agrees on which master owns each slot. Everything is stopped when the test ends.
//
// Starting takes about 2.2 s, nearly all of it Redis's fixed CLUSTER_WRITABLE_DELAY: a master
// reports cluster_state:ok no sooner than 2 s after it started (the same holds after
// RestartNode). Tests that can share a cluster should.
func StartCluster(t testing.TB, masters int, directives ...string) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: masters, Directives: directives})
}

// StartClusterWith starts a cluster as o describes; see StartCluster.
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server (skipped with -short)")
	}
	if o.Masters == 0 {
		o.Masters = DefaultClusterMasters
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = DefaultClusterNodeTimeout
	}
	if o.Masters < 1 || o.Masters > clusterSlots || o.ReplicasPerMaster < 0 || o.NodeTimeout < time.Millisecond {
		t.Fatalf("redistest: invalid ClusterOptions %+v", o)
	}
	Binary(t) // fail here, on the test goroutine, when redis-server is missing
	total := o.Masters * (1 + o.ReplicasPerMaster)
	c := &Cluster{t: t}
	// Cleanups run last-in first-out: admin clients close after the servers are killed.
	t.Cleanup(c.closeAdmin)
	c.nodes = make([]*Server, total)
	for i := range c.nodes {
		c.nodes[i] = &Server{t: t, Dir: t.TempDir()}
	}
	base := append([]string{
		"cluster-enabled yes",
		"cluster-config-file nodes.conf",
		fmt.Sprintf("cluster-node-timeout %d", o.NodeTimeout.Milliseconds()),
		// Keep the topology where the test put it.
		"cluster-allow-replica-migration no",
		// A replica's first sync would otherwise wait 5 s for more replicas to share it.
		"repl-diskless-sync-delay 0",
	}, o.Directives...)
	errs := make([]error, total)
	var wg sync.WaitGroup
	for i, s := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The bus port would default to port+10000, which may not be free or even valid.
			errs[i] = launch(s, base, func(int) ([]string, error) {
				bus, err := freePort()
				return []string{fmt.Sprintf("cluster-port %d", bus)}, err
			})
		}()
	}
	wg.Wait()
	for _, s := range c.nodes {
		t.Cleanup(s.Kill) // Kill is a no-op for a server that never started
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("redistest: start cluster node: %v", err)
	}
	for _, s := range c.nodes {
		opt := s.ClientOption()
		opt.ForceSingleClient = true
		cl, err := rueidis.NewClient(opt)
		if err != nil {
			t.Fatalf("redistest: client for node %s: %v", s.Addr(), err)
		}
		c.admin = append(c.admin, cl)
	}
	if err := c.form(o); err != nil {
		t.Fatalf("redistest: form cluster: %v", err)
	}
	return c
}

// launch starts s with the given directives on a free port, retrying with fresh ports when a
// port was taken in the meantime. extra, if set, returns directives that depend on the port
// (they come before base, so that base may override them). It returns errors rather than
// failing the test so that it may run on any goroutine.
func launch(s *Server, base []string, extra func(port int) ([]string, error)) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return err
		}
		var pre []string
		if extra != nil {
			if pre, err = extra(s.Port); err != nil {
				return err
			}
		}
		s.Directives = append(pre, base...)
		if err = s.start(); err == nil {
			return nil
		}
	}
	return fmt.Errorf("port %d: %w", s.Port, err)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// form assigns slots and epochs, introduces the nodes to each other, attaches replicas and
// waits until the whole cluster agrees (internal/rediscluster does all of it).
func (c *Cluster) form(o ClusterOptions) error {
	topo, err := rediscluster.Form(context.Background(), c.adminNodes(), o.Masters, ClusterWaitTimeout)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.topo = *topo
	c.mu.Unlock()
	return nil
}

// adminNodes describes every node for internal/rediscluster, with its admin client.
func (c *Cluster) adminNodes() []rediscluster.Node {
	ns := make([]rediscluster.Node, len(c.nodes))
	for i, s := range c.nodes {
		ns[i] = rediscluster.Node{Port: s.Port, BusPort: busPort(s), Client: c.admin[i]}
	}
	return ns
}

// waitConverged waits until every live node reports cluster_state:ok, sees the topology the
// Cluster expects and every live replica is in sync with its master (rediscluster.Wait).
func (c *Cluster) waitConverged() error {
	c.mu.Lock()
	snap := c.topo
	c.mu.Unlock()
	snap.Alive = make([]bool, len(c.nodes))
	for i, s := range c.nodes {
		snap.Alive[i] = alive(s)
	}
	return rediscluster.Wait(context.Background(), c.adminNodes(), &snap, ClusterWaitTimeout)
}

// busPort returns the cluster bus port launch gave s.
func busPort(s *Server) int {
	for _, d := range s.Directives {
		if p, ok := strings.CutPrefix(d, "cluster-port "); ok {
			if n, err := strconv.Atoi(p); err == nil {
				return n
			}
		}
	}
	return s.Port + 10000
}

func alive(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// index returns s's position in c.nodes, which names it in c.topo.
func (c *Cluster) index(s *Server) int {
	for i, n := range c.nodes {
		if n == s {
			return i
		}
	}
	c.t.Fatalf("redistest: %s is not a node of this cluster", s.Addr())
	return -1
}

// slotOwners returns, for each slot, the port of its master as node s sees it (0 if none).
func (c *Cluster) slotOwners(s *Server) ([clusterSlots]int, error) {
	var owners [clusterSlots]int
	client := c.adminClient(s)
	ctx, cancel := context.WithTimeout(context.Background(), rediscluster.AdminTimeout)
	defer cancel()
	ranges, err := client.Do(ctx, client.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return owners, fmt.Errorf("CLUSTER SLOTS on %s: %w", s.Addr(), err)
	}
	for _, r := range ranges {
		e, err := r.ToArray()
		if err != nil || len(e) < 3 {
			return owners, fmt.Errorf("CLUSTER SLOTS on %s: malformed range: %v", s.Addr(), err)
		}
		lo, err1 := e[0].AsInt64()
		hi, err2 := e[1].AsInt64()
		node, err3 := e[2].ToArray()
		if err := errors.Join(err1, err2, err3); err != nil || len(node) < 2 {
			return owners, fmt.Errorf("CLUSTER SLOTS on %s: malformed range: %v", s.Addr(), err)
		}
		port, err := node[1].AsInt64()
		if err != nil {
			return owners, fmt.Errorf("CLUSTER SLOTS on %s: malformed port: %w", s.Addr(), err)
		}
		for slot := lo; slot <= hi && slot < clusterSlots; slot++ {
			owners[slot] = int(port)
		}
	}
	return owners, nil
}

// adminClient returns a client bound to exactly node s (no cluster routing).
func (c *Cluster) adminClient(s *Server) rueidis.Client { return c.admin[c.index(s)] }

func (c *Cluster) closeAdmin() {
	for _, cl := range c.admin {
		cl.Close()
	}
}

// nodeDo runs one command on exactly node s and returns its decoded reply (nil for a nil reply).
func (c *Cluster) nodeDo(s *Server, args ...string) (any, error) {
	return rediscluster.Do(context.Background(), rediscluster.Node{Port: s.Port, Client: c.adminClient(s)}, args...)
}

// NodeDo runs one command on exactly node s, failing the test on error, and returns the
// reply formatted like Server.Do ("" for a nil reply).
func (c *Cluster) NodeDo(s *Server, args ...string) string {
	c.t.Helper()
	v, err := c.nodeDo(s, args...)
	if err != nil {
		c.t.Fatalf("redistest: %v", err)
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// NodeClient returns a client bound to exactly node s (rueidis ForceSingleClient), closed when
// the test ends. Unlike the per-node clients of a cluster client's Nodes(), it is independent of
// any topology refresh.
func (c *Cluster) NodeClient(s *Server) rueidis.Client {
	c.t.Helper()
	opt := s.ClientOption()
	opt.ForceSingleClient = true
	cl, err := rueidis.NewClient(opt)
	if err != nil {
		c.t.Fatalf("redistest: client for node %s: %v", s.Addr(), err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// Nodes returns every node, masters and replicas, in start order.
func (c *Cluster) Nodes() []*Server { return append([]*Server(nil), c.nodes...) }

// Masters returns the nodes that currently own slots, in start order.
func (c *Cluster) Masters() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []*Server
	for i, s := range c.nodes {
		if c.topo.ReplicaOf[i] < 0 {
			ms = append(ms, s)
		}
	}
	return ms
}

// Replicas returns the replicas of master, in start order.
func (c *Cluster) Replicas(master *Server) []*Server {
	m := c.index(master)
	c.mu.Lock()
	defer c.mu.Unlock()
	var rs []*Server
	for i, s := range c.nodes {
		if c.topo.ReplicaOf[i] == m {
			rs = append(rs, s)
		}
	}
	return rs
}

// NodeID returns the cluster node id of s.
func (c *Cluster) NodeID(s *Server) string {
	i := c.index(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.topo.IDs[i]
}

// Addrs returns the addresses of every node, masters first.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// ClientOption returns rueidis options seeded with every node, with client-side caching off.
func (c *Cluster) ClientOption() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: c.Addrs(), DisableCache: true}
}

// Client returns a new cluster client, closed when the test ends.
func (c *Cluster) Client() rueidis.Client {
	c.t.Helper()
	cl, err := rueidis.NewClient(c.ClientOption())
	if err != nil {
		c.t.Fatalf("redistest: cluster client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// liveMaster returns a master that is running, to ask about the topology.
func (c *Cluster) liveMaster() *Server {
	c.t.Helper()
	for _, s := range c.Masters() {
		if alive(s) {
			return s
		}
	}
	c.t.Fatalf("redistest: no live master in the cluster")
	return nil
}

// KeySlot returns the hash slot of key (CLUSTER KEYSLOT).
func (c *Cluster) KeySlot(key string) int {
	c.t.Helper()
	v, err := c.nodeDo(c.liveMaster(), "CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.t.Fatalf("redistest: %v", err)
	}
	return int(v.(int64))
}

// NodeForKey returns the master that owns key's slot, as a live master reports it.
func (c *Cluster) NodeForKey(key string) *Server {
	c.t.Helper()
	return c.NodeForSlot(c.KeySlot(key))
}

// NodeForSlot returns the master that owns slot, as a live master reports it (CLUSTER SLOTS).
func (c *Cluster) NodeForSlot(slot int) *Server {
	c.t.Helper()
	if slot < 0 || slot >= clusterSlots {
		c.t.Fatalf("redistest: slot %d out of range 0..%d", slot, clusterSlots-1)
	}
	owners, err := c.slotOwners(c.liveMaster())
	if err != nil {
		c.t.Fatalf("redistest: %v", err)
	}
	for _, s := range c.nodes {
		if s.Port == owners[slot] {
			return s
		}
	}
	c.t.Fatalf("redistest: slot %d owned by unknown port %d", slot, owners[slot])
	return nil
}

// MigrateSlot moves slot, with its keys, to master to, the way redis-cli --cluster reshard
// does (SETSLOT IMPORTING/MIGRATING, MIGRATE of every key, SETSLOT NODE on every master), and
// waits until every live node agrees on the new owner.
func (c *Cluster) MigrateSlot(slot int, to *Server) {
	c.t.Helper()
	from := c.NodeForSlot(slot)
	if from == to {
		return
	}
	fi, ti := c.index(from), c.index(to)
	c.mu.Lock()
	toIsReplica := c.topo.ReplicaOf[ti] >= 0
	fromID, toID := c.topo.IDs[fi], c.topo.IDs[ti]
	c.mu.Unlock()
	if toIsReplica || toID == "" {
		c.t.Fatalf("redistest: migrate slot %d: %s is not a master of this cluster", slot, to.Addr())
	}
	sl := strconv.Itoa(slot)
	c.NodeDo(to, "CLUSTER", "SETSLOT", sl, "IMPORTING", fromID)
	c.NodeDo(from, "CLUSTER", "SETSLOT", sl, "MIGRATING", toID)
	for {
		v, err := c.nodeDo(from, "CLUSTER", "GETKEYSINSLOT", sl, "100")
		if err != nil {
			c.t.Fatalf("redistest: migrate slot %d: %v", slot, err)
		}
		keys, _ := v.([]any)
		if len(keys) == 0 {
			break
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.Port), "", "0", "5000", "KEYS"}
		for _, k := range keys {
			args = append(args, fmt.Sprint(k))
		}
		c.NodeDo(from, args...)
	}
	// The target first, so that it never refuses a key it already holds; then the source,
	// which thereby stops serving the slot; then the rest, to spare them a round of gossip.
	c.NodeDo(to, "CLUSTER", "SETSLOT", sl, "NODE", toID)
	c.NodeDo(from, "CLUSTER", "SETSLOT", sl, "NODE", toID)
	c.mu.Lock()
	c.topo.Owner[slot] = ti
	c.mu.Unlock()
	for _, m := range c.Masters() {
		if m != to && m != from && alive(m) {
			c.NodeDo(m, "CLUSTER", "SETSLOT", sl, "NODE", toID)
		}
	}
	if err := c.waitConverged(); err != nil {
		c.t.Fatalf("redistest: migrate slot %d: %v", slot, err)
	}
}

// Failover promotes a replica of master and waits until every live node agrees; it returns the
// new master. If master is running, the failover is coordinated (CLUSTER FAILOVER: no writes
// lost, the old master becomes a replica of the new one). If the test killed it, the replica
// takes over at once (CLUSTER FAILOVER TAKEOVER, no election) instead of after the node
// timeout, which is what clients see of an automatic failover. StartNodeAgain on the old master
// later brings it back as a replica.
func (c *Cluster) Failover(master *Server) *Server {
	c.t.Helper()
	replicas := c.Replicas(master)
	if len(replicas) == 0 {
		c.t.Fatalf("redistest: failover of %s: it has no replica (use ClusterOptions.ReplicasPerMaster)", master.Addr())
	}
	promoted := replicas[0]
	args := []string{"CLUSTER", "FAILOVER"}
	if !alive(master) {
		args = append(args, "TAKEOVER")
	}
	c.NodeDo(promoted, args...)
	mi, pi := c.index(master), c.index(promoted)
	c.mu.Lock()
	for slot, owner := range c.topo.Owner {
		if owner == mi {
			c.topo.Owner[slot] = pi
		}
	}
	c.topo.ReplicaOf[pi] = -1
	for r, m := range c.topo.ReplicaOf {
		if m == mi {
			c.topo.ReplicaOf[r] = pi
		}
	}
	c.topo.ReplicaOf[mi] = pi
	c.mu.Unlock()
	if err := c.waitConverged(); err != nil {
		c.t.Fatalf("redistest: failover of %s to %s: %v", master.Addr(), promoted.Addr(), err)
	}
	return promoted
}

// StopNode saves node s's dataset and cluster configuration and shuts it down, waiting for it
// to exit. (Server.Stop would send SHUTDOWN through a cluster client, to an arbitrary node.)
func (c *Cluster) StopNode(s *Server) {
	c.t.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	// SHUTDOWN closes the connection; its error is expected.
	_, _ = c.nodeDo(s, "SHUTDOWN", "SAVE")
	<-done
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// RestartNode stops node s (StopNode), starts it again on the same ports with its data and
// nodes.conf, and waits until the cluster agrees again. CONFIG SET is forgotten, as in
// Server.Restart; put such settings in the cluster's Directives.
func (c *Cluster) RestartNode(s *Server) {
	c.t.Helper()
	c.StopNode(s)
	c.StartNodeAgain(s)
}

// StartNodeAgain starts a stopped or killed node and waits until the cluster agrees again.
// A master that lost its slots to a Failover meanwhile rejoins as a replica of the new master.
func (c *Cluster) StartNodeAgain(s *Server) {
	c.t.Helper()
	s.StartAgain()
	if err := c.waitConverged(); err != nil {
		c.t.Fatalf("redistest: restart node %s: %v", s.Addr(), err)
	}
}
