package main

// The pattern-function rows (eventrt-bench patterns): updates absorbed per second by one
// eventrt process running the classic handler over 10,000 keys, beside a minimal Go loop doing
// notification -> GET -> SET over the same keys (batched like eventrt: what is pending is read
// in one round trip and written in one), the RSS of an idle single-key function and of a
// pattern function holding 100,000 keys, and the scale-out rows on a 3-master cluster
// (scaleout.go). A separate subcommand so that it stays apart from the main table's
// restructuring; it prints markdown rows.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/state"
)

// Defaults of the pattern rows.
const (
	DefaultPatternKeys   = 10000
	DefaultPatternRounds = 20
	DefaultMemoryKeys    = 100000
	// Targets.
	targetAbsorbed = 50000.0
	targetIdleMiB  = 15.0
	targetKeysMiB  = 100.0
)

func patternsMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("patterns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", ".", "repository root")
	bin := fs.String("eventrt", DefaultEventrt, "eventrt binary (relative to -repo)")
	keys := fs.Int("keys", DefaultPatternKeys, "keys updated")
	rounds := fs.Int("rounds", DefaultPatternRounds, "values written per key")
	memKeys := fs.Int("memory-keys", DefaultMemoryKeys, "keys of the memory row")
	only := fs.String("rows", "absorb,idle,keys,scale", "rows to measure (comma-separated: absorb, idle, keys, scale)")
	scaleKeys := fs.Int("scale-keys", DefaultScaleKeys, "keys of the scale-out rows")
	leaseTTL := fs.Duration("lease-ttl", DefaultScaleLeaseTTL, "LEASE_TTL of the scale-out rows' replicas")
	repeat := fs.Int("repeat", 3, "runs of each throughput row (interleaved) and of each hand-over (alternating); the medians are reported")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	p := &patternBench{repo: *repo, bin: filepath.Join(*repo, *bin), self: self, log: stderr}
	if p.tpl, err = loadTemplate(filepath.Join(*repo, "examples", "classic", "metrics-sample.json")); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv, err := startRedis(ctx)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Stop()
	p.addr = srv.Addr
	if p.c, err = newClient(srv.Addr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer p.c.Close()
	fmt.Fprintf(stdout, "| pattern row | result | target | verdict |\n|---|---|---|---|\n")
	rows := map[string]bool{}
	for _, r := range strings.Split(*only, ",") {
		rows[strings.TrimSpace(r)] = true
	}
	if rows["absorb"] {
		// Interleaved runs, medians: one slow moment of a shared machine does not make a row.
		var floors, evs []float64
		var ferr, eerr error
		for range max(*repeat, 1) {
			f, err := p.absorb(ctx, "floor", *keys, *rounds)
			if err != nil {
				ferr = err
			}
			floors = append(floors, f)
			e, err := p.absorb(ctx, "eventrt", *keys, *rounds)
			if err != nil {
				eerr = err
			}
			evs = append(evs, e)
		}
		floor, ev := median(floors), median(evs)
		row(stdout, "Go loop notification→GET→SET, updates absorbed/s", floor, ferr, "", "reference")
		row(stdout, fmt.Sprintf("eventrt pattern, classic handler, %d keys: updates absorbed/s", *keys), ev, eerr,
			fmt.Sprintf(">= %.0f", targetAbsorbed), verdict(eerr == nil && ev >= targetAbsorbed))
		if ferr == nil && eerr == nil {
			fmt.Fprintf(stdout, "| eventrt ÷ Go loop | %.2f | | |\n", ev/floor)
		}
	}
	if rows["idle"] {
		idle, ierr := p.idleRSS(ctx)
		row(stdout, "idle RSS, single-key function (MiB)", idle, ierr, fmt.Sprintf("<= %.0f", targetIdleMiB), verdict(ierr == nil && idle <= targetIdleMiB))
	}
	if rows["keys"] {
		many, merr := p.keysRSS(ctx, *memKeys)
		row(stdout, fmt.Sprintf("RSS with %d keys known (MiB)", *memKeys), many, merr, fmt.Sprintf("<= %.0f", targetKeysMiB), verdict(merr == nil && many <= targetKeysMiB))
	}
	if rows["scale"] {
		p.scaleOut(ctx, stdout, *scaleKeys, *repeat, *leaseTTL)
	}
	return 0
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func row(w io.Writer, name string, v float64, err error, target, verdict string) {
	if err != nil {
		fmt.Fprintf(w, "| %s | failed: %s | %s | missed |\n", name, strings.ReplaceAll(err.Error(), "|", "/"), target)
		return
	}
	fmt.Fprintf(w, "| %s | %.1f | %s | %s |\n", name, v, target, verdict)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

type patternBench struct {
	repo, bin, self, addr string
	c                     rueidis.Client
	metricsURL            string // of the last eventrt started
	tpl                   docTemplate
	log                   io.Writer
}

func (p *patternBench) logf(format string, args ...any) {
	fmt.Fprintf(p.log, "bench: "+format+"\n", args...)
}

// start starts an eventrt child on the bench's redis-server with settings and waits until it
// is ready.
func (p *patternBench) start(ctx context.Context, name string, settings ...string) (*child, error) {
	c, metrics, err := p.startAt(ctx, p.addr, name, settings...)
	if err == nil {
		p.metricsURL = metrics
	}
	return c, err
}

// startAt starts an eventrt child connecting to addr (host:port) with settings, waits until it
// is ready, and returns it with the URL of its metrics.
func (p *patternBench) startAt(ctx context.Context, addr, name string, settings ...string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	host, rport, _ := strings.Cut(addr, ":")
	env := append(os.Environ(), "REDIS_HOST="+host, "REDIS_PORT="+rport, fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", port),
		"HANDLER_PATH="+filepath.Join(p.repo, "examples", "classic"), "LOG_LEVEL=warn", "RELOAD=false")
	env = append(env, settings...)
	c, err := startChild(name, p.repo, env, p.bin)
	if err != nil {
		return nil, "", err
	}
	if err := waitHTTP(ctx, c, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), 30*time.Second); err != nil {
		c.Stop(5 * time.Second)
		return nil, "", err
	}
	return c, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil
}

// absorb writes rounds values to each of keys keys as fast as one pipelining client can, and
// returns values written ÷ time until every key's last value was executed, checked per key.
func (p *patternBench) absorb(ctx context.Context, which string, keys, rounds int) (float64, error) {
	prefix := "bench:" + which + ":"
	var c *child
	var err error
	if which == "floor" {
		c, err = startChild("pattern floor", p.repo, os.Environ(), p.self, "patternfloor", "-addr", p.addr, "-in", prefix+"in:", "-out", prefix+"out:")
		if err == nil {
			err = waitSubscribedPattern(ctx, p.c, c)
		}
	} else {
		c, err = p.start(ctx, "eventrt pattern", "REDIS_INPUT_KEY="+prefix+"in:*", "REDIS_OUTPUT_KEY="+prefix+"out:*", "LEASE=false",
			"MONITORING_PERIOD=1h")
	}
	if err != nil {
		return 0, err
	}
	defer c.Stop(5 * time.Second)
	ts := newTimestamps()
	last := make([][]byte, keys)
	start := time.Now()
	const chunk = 1000
	b := p.c.B()
	cmds := make(rueidis.Commands, 0, chunk)
	for r := range rounds {
		for k := 0; k < keys; k += chunk {
			cmds = cmds[:0]
			for i := k; i < min(k+chunk, keys); i++ {
				doc := p.tpl.Doc(ts.Next())
				last[i] = doc
				cmds = append(cmds, b.Set().Key(fmt.Sprintf("%sin:%d", prefix, i)).Value(rueidis.BinaryString(doc)).Build())
			}
			for _, res := range p.c.DoMulti(ctx, cmds...) {
				if err := res.Error(); err != nil {
					return 0, fmt.Errorf("write round %d: %w", r, err)
				}
			}
		}
	}
	written := time.Since(start)
	// Done when every key's last value ran: eventrt's meta says so per key, the floor's output
	// holds the input.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left, err := p.left(ctx, which, prefix, last)
		if err != nil {
			return 0, err
		}
		if left == 0 {
			break
		}
		if c.Exited() {
			return 0, fmt.Errorf("%s", c.ExitReason())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d keys never ran their last value", left)
		}
		time.Sleep(20 * time.Millisecond) // nothing signals "every key done": poll
	}
	took := time.Since(start)
	p.logf("%s: %d values over %d keys written in %v, all executed after %v", which, keys*rounds, keys, written, took)
	return float64(keys*rounds) / took.Seconds(), nil
}

// left counts the keys whose last value has not run yet.
func (p *patternBench) left(ctx context.Context, which, prefix string, last [][]byte) (int, error) {
	b := p.c.B()
	cmds := make(rueidis.Commands, 0, len(last))
	for i := range last {
		if which == "floor" {
			cmds = append(cmds, b.Get().Key(fmt.Sprintf("%sout:%d", prefix, i)).Build())
		} else {
			cmds = append(cmds, b.Hget().Key(fmt.Sprintf("{%sout:%d}:env:meta", prefix, i)).Field(state.FieldLastInput).Build())
		}
	}
	n := 0
	for i, res := range p.c.DoMulti(ctx, cmds...) {
		v, err := res.ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return 0, err
		}
		want := string(last[i])
		if which != "floor" {
			want = state.InputID(last[i])
		}
		if v != want {
			n++
		}
	}
	return n, nil
}

// idleRSS is the RSS of a single-key function two seconds after it became ready.
func (p *patternBench) idleRSS(ctx context.Context) (float64, error) {
	c, err := p.start(ctx, "eventrt idle", "REDIS_INPUT_KEY=bench:idle:in", "REDIS_OUTPUT_KEY=bench:idle:out")
	if err != nil {
		return 0, err
	}
	defer c.Stop(5 * time.Second)
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return 0, err
	}
	rss, _, err := c.Memory()
	return float64(rss) / (1 << 20), err
}

// keysRSS is the RSS of a pattern function after it ran n keys and holds them all.
func (p *patternBench) keysRSS(ctx context.Context, n int) (float64, error) {
	// The default PATTERN_CACHE_KEYS: the process holds the state of that many keys and reads
	// the others' back on a miss.
	settings := []string{"REDIS_INPUT_KEY=bench:mem:in:*", "REDIS_OUTPUT_KEY=bench:mem:out:*", "LEASE=false", "MONITORING_PERIOD=1h"}
	if v := os.Getenv("PATTERN_CACHE_KEYS"); v != "" {
		settings = append(settings, "PATTERN_CACHE_KEYS="+v)
	}
	c, err := p.start(ctx, "eventrt keys", settings...)
	if err != nil {
		return 0, err
	}
	defer c.Stop(5 * time.Second)
	ts := newTimestamps()
	b := p.c.B()
	last := make([][]byte, n)
	for k := 0; k < n; k += 1000 {
		cmds := make(rueidis.Commands, 0, 1000)
		for i := k; i < min(k+1000, n); i++ {
			last[i] = p.tpl.Doc(ts.Next())
			cmds = append(cmds, b.Set().Key(fmt.Sprintf("bench:mem:in:%d", i)).Value(rueidis.BinaryString(last[i])).Build())
		}
		for _, res := range p.c.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return 0, err
			}
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		left, err := p.left(ctx, "eventrt", "bench:mem:", last)
		if err != nil {
			return 0, err
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) || c.Exited() {
			return 0, fmt.Errorf("%d of %d keys never ran", left, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rss, _, err := c.Memory()
	p.logf("keys row: %s", p.heap(ctx))
	return float64(rss) / (1 << 20), err
}

// heap reads the Go heap figures of the last eventrt started from its metrics, for the log.
func (p *patternBench) heap(ctx context.Context) string {
	body, err := metricsPage(ctx, p.metricsURL)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, m := range []string{"go_memstats_heap_inuse_bytes ", "go_memstats_heap_alloc_bytes ", "go_memstats_heap_sys_bytes ", "go_memstats_next_gc_bytes ", "eventrt_pattern_keys{"} {
			if strings.HasPrefix(l, m) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "; ")
}

// waitSubscribedPattern waits until the floor program has PSUBSCRIBEd.
func waitSubscribedPattern(ctx context.Context, rc rueidis.Client, c *child) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rc.Do(ctx, rc.B().PubsubNumpat().Build()).AsInt64()
		if err == nil && n > 0 {
			return nil
		}
		if c.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("pattern floor never subscribed: %s", c.out.LastLine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// patternFloorMain is the reference loop: PSUBSCRIBE to the input keys' notifications, and
// for the keys pending, GET them all in one round trip and SET each output in another.
func patternFloorMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("patternfloor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "redis host:port")
	in := fs.String("in", "", "input key prefix")
	out := fs.String("out", "", "output key prefix")
	if err := fs.Parse(args); err != nil || *addr == "" || *in == "" || *out == "" {
		return 2
	}
	c, err := newClient(*addr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer c.Close()
	var mu sync.Mutex
	pending := map[string]bool{}
	wake := make(chan struct{}, 1)
	chPrefix := "__keyspace@0__:"
	go func() {
		_ = c.Receive(ctx, c.B().Psubscribe().Pattern(chPrefix+*in+"*").Build(), func(m rueidis.PubSubMessage) {
			mu.Lock()
			pending[m.Channel[len(chPrefix):]] = true
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
		})
	}()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-wake:
		}
		for {
			mu.Lock()
			keys := make([]string, 0, len(pending))
			for k := range pending {
				keys = append(keys, k)
				delete(pending, k)
				if len(keys) == 512 {
					break
				}
			}
			mu.Unlock()
			if len(keys) == 0 {
				break
			}
			gets := make(rueidis.Commands, len(keys))
			for i, k := range keys {
				gets[i] = c.B().Get().Key(k).Build()
			}
			sets := make(rueidis.Commands, 0, len(keys))
			for i, res := range c.DoMulti(ctx, gets...) {
				if v, err := res.AsBytes(); err == nil {
					sets = append(sets, c.B().Set().Key(*out+keys[i][len(*in):]).Value(rueidis.BinaryString(v)).Build())
				}
			}
			c.DoMulti(ctx, sets...)
		}
	}
}
