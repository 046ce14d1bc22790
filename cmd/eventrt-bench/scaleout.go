package main

// The scale-out rows (eventrt-bench patterns -rows scale): 1, 2 and 4 replicas of one pattern
// function (the classic handler over bench:scale:in:*) on a private 3-master Redis Cluster,
// each replica's share of the executions of one round of values, and the hand-over times
// after SIGTERM and after SIGKILL of one of four replicas while updates flow.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/rediscluster"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/state"
)

// Settings of the scale-out rows.
const (
	DefaultScaleKeys     = 10000
	DefaultScaleLeaseTTL = 2 * time.Second
	scaleMasters         = 3
	// scalePartitions is PATTERN_PARTITIONS of every replica (eventrt's default).
	scalePartitions = 64
	// scaleRoundEvery paces the rounds of values that flow during a hand-over: one new value
	// for every key each period, about 20,000 updates/s with 10,000 keys.
	scaleRoundEvery = 500 * time.Millisecond
	// scalePoll is how often the driver looks for partitions re-owned and values executed;
	// it bounds the resolution of the hand-over times.
	scalePoll = 25 * time.Millisecond
	// scaleWait bounds every wait of these rows that does not involve a lease expiring.
	scaleWait = 60 * time.Second
)

// scaleReplicas are the replica counts whose shares are measured.
var scaleReplicas = []int{1, 2, 4}

// benchCluster is the private Redis Cluster of the scale-out rows.
type benchCluster struct {
	nodes  []*redisServer
	admin  []rueidis.Client
	topo   *rediscluster.Topology
	client rueidis.Client // a cluster client for the driver's writes and reads
}

// startCluster starts masters redis-servers on free loopback ports and forms a cluster of
// them (internal/rediscluster), the slots shared evenly.
func startCluster(ctx context.Context, masters int) (*benchCluster, error) {
	c := &benchCluster{}
	var nodes []rediscluster.Node
	for range masters {
		bus, err := freePort()
		if err != nil {
			c.Stop()
			return nil, err
		}
		s, err := startRedis(ctx, "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 3000",
			fmt.Sprintf("cluster-port %d", bus), "cluster-allow-replica-migration no")
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.nodes = append(c.nodes, s)
		_, p, _ := net.SplitHostPort(s.Addr)
		port, _ := strconv.Atoi(p)
		admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true, ForceSingleClient: true})
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("connect %s: %w", s.Addr, err)
		}
		c.admin = append(c.admin, admin)
		nodes = append(nodes, rediscluster.Node{Port: port, BusPort: bus, Client: admin})
	}
	var err error
	if c.topo, err = rediscluster.Form(ctx, nodes, masters, 30*time.Second); err != nil {
		c.Stop()
		return nil, fmt.Errorf("form a %d-master cluster: %w", masters, err)
	}
	if c.client, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs(), DisableCache: true}); err != nil {
		c.Stop()
		return nil, fmt.Errorf("cluster client: %w", err)
	}
	return c, nil
}

// Addrs are the masters' host:port.
func (c *benchCluster) Addrs() []string {
	var addrs []string
	for _, s := range c.nodes {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}

// Stop closes the clients and stops every node.
func (c *benchCluster) Stop() {
	if c.client != nil {
		c.client.Close()
	}
	for _, a := range c.admin {
		a.Close()
	}
	for _, s := range c.nodes {
		s.Stop()
	}
}

// replica is one eventrt process of the scale-out rows.
type replica struct {
	*child
	metrics string // its /metrics URL
}

// scaleRun is the state of one run of the scale-out rows.
type scaleRun struct {
	p       *patternBench
	cl      *benchCluster
	keys    int
	ttl     time.Duration
	reps    []*replica
	started int // replicas started so far, for their names and seeds
	ts      *timestamps
	last    [][]byte // each key's last value written
	rounds  int      // values written to every key so far
	// superseded is how many values were written and never executed, a newer one having come
	// first (coalescing), as last counted.
	superseded int
}

// scaleOut measures the scale-out rows and prints them.
func (p *patternBench) scaleOut(ctx context.Context, w io.Writer, keys, repeat int, ttl time.Duration) {
	shareName := func(n int) string {
		return fmt.Sprintf("scale-out, %d replica%s on %d masters, %s keys: each replica's share of the executions", n,
			map[bool]string{true: "s"}[n > 1], scaleMasters, count(float64(keys)))
	}
	totalName := fmt.Sprintf("scale-out: executions ÷ values written (%d rounds of one value per key)", len(scaleReplicas))
	termName := "hand-over, SIGTERM of 1 of 4 replicas while updates flow: signal → every key's value written after it executed"
	killName := fmt.Sprintf("hand-over, SIGKILL of 1 of 4 replicas while updates flow (LEASE_TTL %v): signal → every key's value written after it executed", ttl)
	names := []string{}
	for _, n := range scaleReplicas {
		names = append(names, shareName(n))
	}
	names = append(names, totalName, termName, killName)
	// A row that fails says why; the rows after it, which need it, say which.
	fail := func(from int, err error) {
		fmt.Fprintf(w, "| %s | failed: %s | | missed |\n", names[from], cell(err))
		for _, n := range names[from+1:] {
			fmt.Fprintf(w, "| %s | not measured: the row %q failed | | |\n", n, names[from])
		}
	}
	cl, err := startCluster(ctx, scaleMasters)
	if err != nil {
		// Without the cluster (a redis-server built without cluster support, say) no row runs.
		for _, n := range names {
			fmt.Fprintf(w, "| %s | not measured: %s | | |\n", n, cell(err))
		}
		return
	}
	defer cl.Stop()
	r := &scaleRun{p: p, cl: cl, keys: keys, ttl: ttl, ts: newTimestamps(), last: make([][]byte, keys)}
	defer r.stopAll()
	fmt.Fprintf(w, "| scale-out cluster: keys per master (by the slot of each key's output and state) | %s | | |\n", r.spread())
	for i, n := range scaleReplicas {
		shares, err := r.shares(ctx, n)
		if err != nil {
			fail(i, err)
			return
		}
		var s []string
		ok := true
		for _, sh := range shares {
			s = append(s, fmt.Sprintf("%.3f", sh))
			ok = ok && targetScaleShare.met(sh*float64(n))
		}
		fmt.Fprintf(w, "| %s | %s (1/N = %.3f) | %s | %s |\n", shareName(n), strings.Join(s, " / "), 1/float64(n),
			&targetScaleShare, verdict(ok))
	}
	total, err := r.totalExecutions(ctx)
	if err != nil {
		fail(len(scaleReplicas), err)
		return
	}
	written := float64(r.rounds * keys)
	fmt.Fprintf(w, "| %s | %s ÷ %s; each key's executions (state meta) = its %d values | equal: no value ran twice, none lost | %s |\n",
		totalName, count(total), count(written), r.rounds, verdict(total == written))
	// The hand-overs alternate, SIGTERM then SIGKILL, repeat times; each row has medians.
	sigs := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}
	results := make([][]handoverResult, len(sigs))
	errs := make([]error, len(sigs))
	for range max(repeat, 1) {
		for i, sig := range sigs {
			if errs[i] != nil {
				continue
			}
			res, err := r.handOver(ctx, sig)
			if err != nil {
				errs[i] = err
				continue
			}
			results[i] = append(results[i], res)
		}
	}
	for i, name := range []string{termName, killName} {
		if errs[i] != nil {
			fmt.Fprintf(w, "| %s | failed: %s | reported | missed |\n", name, cell(errs[i]))
			continue
		}
		var done, owned, wrote, superseded []float64
		for _, res := range results[i] {
			done = append(done, res.done.Seconds())
			owned = append(owned, res.owned.Seconds())
			wrote = append(wrote, res.wrote.Seconds())
			superseded = append(superseded, float64(res.superseded))
		}
		fmt.Fprintf(w, "| %s | %.2f s, median of %d (%.2f–%.2f s); partitions re-owned after %.2f s; the last round written %.2f s after the signal; %s values superseded before they ran | reported | |\n",
			name, median(done), len(done), slices.Min(done), slices.Max(done), median(owned), median(wrote), count(median(superseded)))
	}
}

// cell makes an error fit one markdown table cell.
func cell(err error) string {
	return strings.ReplaceAll(strings.ReplaceAll(err.Error(), "|", "/"), "\n", " ")
}

// spread counts the keys whose output (and state) slot each master serves.
func (r *scaleRun) spread() string {
	per := make([]int, len(r.cl.nodes))
	for i := range r.keys {
		per[r.cl.topo.Owner[redisconn.KeySlot(outKey(i))]]++
	}
	var s []string
	for _, n := range per {
		s = append(s, count(float64(n)))
	}
	return strings.Join(s, " / ")
}

func inKey(i int) string  { return "bench:scale:in:" + strconv.Itoa(i) }
func outKey(i int) string { return "bench:scale:out:" + strconv.Itoa(i) }

// startReplica starts one more replica, connected to the next master in turn.
func (r *scaleRun) startReplica(ctx context.Context) error {
	seed := r.cl.nodes[r.started%len(r.cl.nodes)].Addr
	r.started++
	c, metrics, err := r.p.startAt(ctx, seed, fmt.Sprintf("eventrt replica %d", r.started),
		"REDIS_INPUT_KEY=bench:scale:in:*", "REDIS_OUTPUT_KEY=bench:scale:out:*", "LEASE=true",
		"LEASE_TTL="+r.ttl.String(), "PATTERN_PARTITIONS="+strconv.Itoa(scalePartitions), "MONITORING_PERIOD=1h")
	if err != nil {
		return err
	}
	r.reps = append(r.reps, &replica{child: c, metrics: metrics})
	return nil
}

func (r *scaleRun) stopAll() {
	var wg sync.WaitGroup
	for _, rep := range r.reps {
		wg.Go(func() { rep.Stop(5 * time.Second) })
	}
	wg.Wait()
}

// shares brings the replicas to n, waits until the partitions are balanced among them, writes
// one new value to every key and returns each replica's executions of that round ÷ keys.
func (r *scaleRun) shares(ctx context.Context, n int) ([]float64, error) {
	for len(r.reps) < n {
		if err := r.startReplica(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := r.awaitBalanced(ctx, r.reps, time.Now().Add(scaleWait)); err != nil {
		return nil, err
	}
	before, err := r.executions(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.writeRound(ctx); err != nil {
		return nil, err
	}
	if _, err := r.awaitExecuted(ctx, time.Now().Add(scaleWait), true); err != nil {
		return nil, err
	}
	// The counters are incremented right after the commit the state shows: wait for them.
	var after []float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		if after, err = r.executions(ctx); err != nil {
			return nil, err
		}
		var sum float64
		for i := range after {
			sum += after[i] - before[i]
		}
		if sum > float64(r.keys) {
			return nil, fmt.Errorf("%s executions of %d values: a value ran twice", count(sum), r.keys)
		}
		if sum == float64(r.keys) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("executions counted %s, want %d", count(sum), r.keys)
		}
		if err := sleepCtx(ctx, scalePoll); err != nil {
			return nil, err
		}
	}
	shares := make([]float64, len(after))
	for i := range after {
		shares[i] = (after[i] - before[i]) / float64(r.keys)
	}
	r.p.logf("%d replicas: executions %v of %d values", n, after, r.keys)
	return shares, nil
}

// writeRound writes one new value to every key, pipelined.
func (r *scaleRun) writeRound(ctx context.Context) error {
	const chunk = 1000
	c := r.cl.client
	cmds := make(rueidis.Commands, 0, chunk)
	for k := 0; k < r.keys; k += chunk {
		cmds = cmds[:0]
		for i := k; i < min(k+chunk, r.keys); i++ {
			r.last[i] = r.p.tpl.Doc(r.ts.Next())
			cmds = append(cmds, c.B().Set().Key(inKey(i)).Value(rueidis.BinaryString(r.last[i])).Build())
		}
		for _, res := range c.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return fmt.Errorf("write round %d: %w", r.rounds+1, err)
			}
		}
	}
	r.rounds++
	return nil
}

// check reads every key's state meta: how many keys have not executed their last value yet,
// and how many values were superseded (written, never executed). A key that executed more
// values than were written to it ran one twice; with exact, one that executed fewer lost one.
func (r *scaleRun) check(ctx context.Context, exact bool) (left, coalesced int, err error) {
	c := r.cl.client
	cmds := make(rueidis.Commands, r.keys)
	for i := range cmds {
		cmds[i] = c.B().Hmget().Key("{"+outKey(i)+"}:env:meta").Field(state.FieldLastInput, state.FieldExecutions).Build()
	}
	for i, res := range c.DoMulti(ctx, cmds...) {
		v, err := res.ToArray()
		if err != nil {
			return 0, 0, fmt.Errorf("state of %s: %w", outKey(i), err)
		}
		in, _ := v[0].ToString()
		n, _ := v[1].AsInt64()
		if in != state.InputID(r.last[i]) {
			left++
			continue
		}
		switch {
		case n > int64(r.rounds):
			return 0, 0, fmt.Errorf("%s executed %d values of the %d written: a value ran twice", inKey(i), n, r.rounds)
		case exact && n < int64(r.rounds):
			return 0, 0, fmt.Errorf("%s executed %d values of the %d written, one value at a time", inKey(i), n, r.rounds)
		}
		coalesced += r.rounds - int(n)
	}
	return left, coalesced, nil
}

// awaitExecuted waits until every key's last value was executed, and returns the values
// superseded meanwhile.
func (r *scaleRun) awaitExecuted(ctx context.Context, deadline time.Time, exact bool) (int, error) {
	for {
		left, coalesced, err := r.check(ctx, exact)
		if err != nil {
			return 0, err
		}
		if left == 0 {
			return coalesced, nil
		}
		for _, rep := range r.reps {
			if rep.Exited() {
				return 0, errors.New(rep.ExitReason())
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d keys never executed their last value", left, r.keys)
		}
		if err := sleepCtx(ctx, scalePoll); err != nil {
			return 0, err
		}
	}
}

// awaitBalanced waits until reps own every partition between them, each its share of the
// assignment (P/N, some one more), and returns when that was first seen.
func (r *scaleRun) awaitBalanced(ctx context.Context, reps []*replica, deadline time.Time) (time.Time, error) {
	lo := scalePartitions / len(reps)
	hi := lo
	if scalePartitions%len(reps) != 0 {
		hi++
	}
	for {
		sum, ok := 0, true
		var each []int
		for _, rep := range reps {
			v, err := metricSum(ctx, rep.metrics, "eventrt_pattern_partitions_owned{", "")
			if err != nil {
				return time.Time{}, err
			}
			n := int(v)
			each = append(each, n)
			sum += n
			ok = ok && n >= lo && n <= hi
		}
		if ok && sum == scalePartitions {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("partitions owned %v, want %d in all, %d to %d each", each, scalePartitions, lo, hi)
		}
		if err := sleepCtx(ctx, scalePoll); err != nil {
			return time.Time{}, err
		}
	}
}

// executions are the successful executions each replica counted.
func (r *scaleRun) executions(ctx context.Context) ([]float64, error) {
	out := make([]float64, len(r.reps))
	for i, rep := range r.reps {
		v, err := metricSum(ctx, rep.metrics, "eventrt_executions_total{", `outcome="success"`)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// totalExecutions sums the executions of every replica.
func (r *scaleRun) totalExecutions(ctx context.Context) (float64, error) {
	each, err := r.executions(ctx)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, v := range each {
		sum += v
	}
	return sum, nil
}

// handoverResult is what one hand-over took, each from the signal.
type handoverResult struct {
	owned      time.Duration // until the replicas left own every partition, balanced
	wrote      time.Duration // until the first round of values begun after the signal was written
	done       time.Duration // until every key had executed that round's value
	superseded int           // values never executed because a newer one came first
}

// handOver brings the replicas to four, balanced; then, while rounds of values flow (one
// value per key every scaleRoundEvery), it sends sig to one replica after two rounds. The
// writer stops after the first round that began after the signal; the hand-over is done when
// every key has executed that round's value.
func (r *scaleRun) handOver(ctx context.Context, sig syscall.Signal) (handoverResult, error) {
	var res handoverResult
	for len(r.reps) < 4 {
		if err := r.startReplica(ctx); err != nil {
			return res, err
		}
	}
	if _, err := r.awaitBalanced(ctx, r.reps, time.Now().Add(scaleWait)); err != nil {
		return res, err
	}
	victim, rest := r.reps[0], r.reps[1:]
	signalled := make(chan time.Time, 1)
	flowing := make(chan struct{})
	wrote := make(chan error, 1)
	var lastWritten time.Time
	go func() {
		var sent time.Time
		for n := 0; ; n++ {
			start := time.Now()
			if err := r.writeRound(ctx); err != nil {
				wrote <- err
				return
			}
			if !sent.IsZero() && start.After(sent) {
				lastWritten = time.Now()
				wrote <- nil
				return
			}
			if n == 1 {
				close(flowing)
			}
			select {
			case sent = <-signalled:
			default:
			}
			if err := sleepCtx(ctx, time.Until(start.Add(scaleRoundEvery))); err != nil {
				wrote <- err
				return
			}
			select {
			case sent = <-signalled:
			default:
			}
		}
	}()
	select {
	case <-flowing:
	case err := <-wrote:
		return res, err
	}
	t0 := time.Now()
	if err := victim.cmd.Process.Signal(sig); err != nil {
		return res, fmt.Errorf("signal %v: %w", sig, err)
	}
	signalled <- t0
	r.reps = rest
	deadline := time.Now().Add(scaleWait + 3*r.ttl)
	ownedAt, err := r.awaitBalanced(ctx, rest, deadline)
	if err != nil {
		return res, err
	}
	res.owned = ownedAt.Sub(t0)
	if err := <-wrote; err != nil {
		return res, err
	}
	res.wrote = lastWritten.Sub(t0)
	total, err := r.awaitExecuted(ctx, deadline, false)
	if err != nil {
		return res, err
	}
	res.superseded, r.superseded = total-r.superseded, total
	res.done = time.Since(t0)
	victim.Stop(5 * time.Second)
	r.p.logf("%v hand-over: partitions re-owned after %v, last round written after %v, executed after %v",
		sig, res.owned, res.wrote, res.done)
	return res, nil
}

// metricSum adds up the samples of the metrics whose line starts with prefix and contains
// label (any, if empty) on the /metrics page at url.
func metricSum(ctx context.Context, url, prefix, label string) (float64, error) {
	body, err := metricsPage(ctx, url)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, prefix) || !strings.Contains(l, label) {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics from %s: %q: %w", url, l, err)
		}
		sum += v
	}
	return sum, nil
}

// metricsPage reads the /metrics page at url.
func metricsPage(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("metrics from %s: %w", url, err)
	}
	return string(body), nil
}
