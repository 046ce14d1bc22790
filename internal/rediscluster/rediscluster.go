// Package rediscluster forms a Redis Cluster out of running, empty redis-server processes
// started with `cluster-enabled yes`, and tells whether the nodes agree on the topology they
// were given. It owns the cluster's administrative protocol only, not the processes: the test
// helpers (internal/redistest) and make bench (cmd/eventrt-bench) start and stop the servers,
// each their own way, and share this.
package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

const (
	// Slots is the number of hash slots of every Redis Cluster.
	Slots = 16384
	// AdminTimeout bounds one administrative command on one node.
	AdminTimeout = 5 * time.Second
	// pollEvery is how often Wait asks the nodes again.
	pollEvery = 20 * time.Millisecond
)

// Node is one redis-server of a cluster, on 127.0.0.1.
type Node struct {
	Port    int            // client port
	BusPort int            // cluster bus port (the cluster-port directive)
	Client  rueidis.Client // bound to this node alone (rueidis ForceSingleClient)
}

// Addr is the node's host:port.
func (n Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// Topology is what the nodes of a cluster should agree on. Nodes are named by their index in
// the []Node the functions of this package are given.
type Topology struct {
	IDs       []string   // each node's CLUSTER MYID
	Owner     [Slots]int // the index of the master serving each slot
	ReplicaOf []int      // the index of each node's master; -1 for a master
	Alive     []bool     // whether each node runs: a stopped node is not asked, nor its role checked
}

// Do runs one command on node n and returns its decoded reply (nil for a nil reply).
func Do(ctx context.Context, n Node, args ...string) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, AdminTimeout)
	defer cancel()
	r := n.Client.Do(ctx, n.Client.B().Arbitrary(args...).Build())
	if rueidis.IsRedisNil(r.Error()) {
		return nil, nil
	}
	v, err := r.ToAny()
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", strings.Join(args, " "), n.Addr(), err)
	}
	return v, nil
}

// Form makes a cluster of nodes: the first masters nodes share the slots evenly, every other
// node i replicates master (i-masters) % masters. It returns once every node reports
// cluster_state:ok and agrees on the topology, or when timeout passes.
func Form(ctx context.Context, nodes []Node, masters int, timeout time.Duration) (*Topology, error) {
	if masters < 1 || masters > len(nodes) || masters > Slots {
		return nil, fmt.Errorf("rediscluster: %d masters among %d nodes", masters, len(nodes))
	}
	t := &Topology{IDs: make([]string, len(nodes)), ReplicaOf: make([]int, len(nodes)), Alive: make([]bool, len(nodes))}
	for i, n := range nodes {
		id, err := Do(ctx, n, "CLUSTER", "MYID")
		if err != nil {
			return nil, err
		}
		t.IDs[i], _ = id.(string)
		t.ReplicaOf[i], t.Alive[i] = -1, true
		// Distinct epochs up front spare the cluster its collision-resolution rounds, as
		// `redis-cli --cluster create` does.
		if _, err := Do(ctx, n, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return nil, err
		}
	}
	for i := range masters {
		lo, hi := i*Slots/masters, (i+1)*Slots/masters-1
		if _, err := Do(ctx, nodes[i], "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return nil, err
		}
		for slot := lo; slot <= hi; slot++ {
			t.Owner[slot] = i
		}
	}
	// Every pair meets directly: learning of each other by gossip alone takes seconds.
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if _, err := Do(ctx, a, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(b.Port), strconv.Itoa(b.BusPort)); err != nil {
				return nil, err
			}
		}
	}
	if len(nodes) > masters {
		// CLUSTER REPLICATE needs the replica to know its master already.
		if err := WaitFor(ctx, "every node to know every other", nodes, t, timeout, knowsAll); err != nil {
			return nil, err
		}
		for i := masters; i < len(nodes); i++ {
			m := (i - masters) % masters
			if _, err := Do(ctx, nodes[i], "CLUSTER", "REPLICATE", t.IDs[m]); err != nil {
				return nil, err
			}
			t.ReplicaOf[i] = m
		}
	}
	return t, Wait(ctx, nodes, t, timeout)
}

// Wait waits until every live node reports cluster_state:ok and sees topology t (which master
// serves each slot, which node replicates which, no node failing or in handshake), and every
// live replica is in sync with its master. Masters vote in failovers only for replicas they
// know as such, so the replicas' roles must have spread by gossip too, not only be set. Redis
// offers no notification for gossip convergence, so this polls CLUSTER INFO, CLUSTER NODES
// and INFO replication until timeout passes.
func Wait(ctx context.Context, nodes []Node, t *Topology, timeout time.Duration) error {
	return WaitFor(ctx, "cluster to converge", nodes, t, timeout, converged)
}

// WaitFor polls check on every live node until all pass, timeout passes or ctx ends.
func WaitFor(ctx context.Context, what string, nodes []Node, t *Topology, timeout time.Duration,
	check func(ctx context.Context, nodes []Node, i int, t *Topology) error) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		for i := range nodes {
			if !t.Alive[i] {
				continue
			}
			if e := check(ctx, nodes, i, t); e != nil {
				err = fmt.Errorf("node %s: %w", nodes[i].Addr(), e)
				break
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		time.Sleep(pollEvery)
	}
}

// converged checks what node i reports against t.
func converged(ctx context.Context, nodes []Node, i int, t *Topology) error {
	info, err := Do(ctx, nodes[i], "CLUSTER", "INFO")
	if err != nil {
		return err
	}
	if st := InfoField(fmt.Sprint(info), "cluster_state"); st != "ok" {
		return fmt.Errorf("cluster_state:%s", st)
	}
	if err := checkView(ctx, nodes, i, t); err != nil {
		return err
	}
	m := t.ReplicaOf[i]
	if m < 0 {
		return nil
	}
	repl, err := Do(ctx, nodes[i], "INFO", "replication")
	if err != nil {
		return err
	}
	r := fmt.Sprint(repl)
	if InfoField(r, "role") != "slave" || InfoField(r, "master_port") != strconv.Itoa(nodes[m].Port) ||
		InfoField(r, "master_link_status") != "up" {
		return fmt.Errorf("replica of %d not in sync: role:%s master_port:%s link:%s", nodes[m].Port,
			InfoField(r, "role"), InfoField(r, "master_port"), InfoField(r, "master_link_status"))
	}
	return nil
}

// knowsAll checks that node i knows every node by its id, past the handshake.
func knowsAll(ctx context.Context, nodes []Node, i int, t *Topology) error {
	v, err := Do(ctx, nodes[i], "CLUSTER", "NODES")
	if err != nil {
		return err
	}
	view := strings.TrimPrefix(fmt.Sprint(v), "txt:")
	for j, n := range nodes {
		if !strings.Contains(view, t.IDs[j]) {
			return fmt.Errorf("does not know node %s yet", n.Addr())
		}
	}
	if strings.Contains(view, "handshake") {
		return errors.New("still in handshake")
	}
	return nil
}

// checkView compares node i's CLUSTER NODES with t. Roles of dead nodes are not checked: the
// cluster learns them only when they come back.
func checkView(ctx context.Context, nodes []Node, i int, t *Topology) error {
	v, err := Do(ctx, nodes[i], "CLUSTER", "NODES")
	if err != nil {
		return err
	}
	type entry struct{ flags, master string }
	view := map[string]entry{}
	var owners [Slots]string
	for _, line := range strings.Split(strings.TrimPrefix(fmt.Sprint(v), "txt:"), "\n") {
		// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		view[f[0]] = entry{flags: f[2], master: f[3]}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") { // a slot being imported or migrated
				continue
			}
			lo, hi, _ := strings.Cut(r, "-")
			if hi == "" {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || l < 0 || h >= Slots {
				return fmt.Errorf("CLUSTER NODES: bad slot range %q", r)
			}
			for slot := l; slot <= h; slot++ {
				owners[slot] = f[0]
			}
		}
	}
	if len(view) != len(nodes) {
		return fmt.Errorf("knows %d nodes, want %d", len(view), len(nodes))
	}
	for j, n := range nodes {
		e, ok := view[t.IDs[j]]
		m := t.ReplicaOf[j]
		switch {
		case !ok:
			return fmt.Errorf("does not know node %s", n.Addr())
		case !t.Alive[j]:
		case strings.Contains(e.flags, "fail") || strings.Contains(e.flags, "handshake"):
			return fmt.Errorf("sees node %s as %s", n.Addr(), e.flags)
		case m >= 0 && (!strings.Contains(e.flags, "slave") || e.master != t.IDs[m]):
			return fmt.Errorf("sees node %s as %s of %s, want replica of %s", n.Addr(), e.flags, e.master, nodes[m].Addr())
		case m < 0 && !strings.Contains(e.flags, "master"):
			return fmt.Errorf("sees node %s as %s, want master", n.Addr(), e.flags)
		}
	}
	for slot, id := range owners {
		if want := t.IDs[t.Owner[slot]]; id != want {
			return fmt.Errorf("sees slot %d owned by %q, want %q (%s)", slot, id, want, nodes[t.Owner[slot]].Addr())
		}
	}
	return nil
}

// InfoField returns one field of an INFO-style reply. RESP3 sends these as verbatim strings,
// which rueidis returns with their "txt:" format prefix.
func InfoField(info, name string) string {
	info = strings.TrimPrefix(info, "txt:")
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
