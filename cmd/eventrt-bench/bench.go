package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/config"
)

// session is one run of the driver: the options, the shared Redis and what was measured.
type session struct {
	o    Options
	rep  *report
	srv  *redisServer
	rc   rueidis.Client
	tpl  docTemplate
	ts   *timestamps
	self string // this binary, which also runs the floor and the stream loop
	logw io.Writer
}

func (s *session) logf(format string, args ...any) {
	fmt.Fprintf(s.logw, "bench: "+format+"\n", args...)
}

// bench runs every section in an order that keeps them from disturbing each other: the
// CPU-heavy go test benchmarks first, then the latency rows (interleaved), the legacy runtime,
// and the stream rows, each on data of its own.
func bench(ctx context.Context, o Options, logw io.Writer) (*report, error) {
	rep := &report{Date: time.Now(), Opts: o}
	s := &session{o: o, rep: rep, ts: newTimestamps(), logw: logw}
	rep.Machine = readMachine(ctx, o)
	var err error
	if s.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}
	if s.tpl, err = loadTemplate(filepath.Join(o.Repo, "examples", "classic", "metrics-sample.json")); err != nil {
		return nil, err
	}
	switch {
	case o.LatencyOnly:
		rep.note("latency only (-latency-only): no go test benchmarks, legacy runtime or stream rows.")
	case o.StreamsOnly:
		rep.note("streams only (-streams-only): no go test benchmarks, latency rows or legacy runtime.")
	case o.SkipGoBench:
		rep.note("go test benchmarks skipped (-skip-gobench).")
	default:
		s.handlerCost(ctx)
	}
	if s.srv, err = startRedis(ctx); err != nil {
		return rep, err
	}
	defer s.srv.Stop()
	s.logf("redis-server on %s", s.srv.Addr)
	if s.rc, err = newClient(s.srv.Addr); err != nil {
		return rep, err
	}
	defer s.rc.Close()
	if !o.StreamsOnly {
		s.latency(ctx)
	}
	if !o.LatencyOnly && !o.StreamsOnly {
		s.legacy(ctx)
	}
	if !o.LatencyOnly {
		s.streams(ctx)
	}
	rep.Machine.LoadEnd = loadAvg()
	return rep, ctx.Err()
}

func (s *session) handlerCost(ctx context.Context) {
	const pkg, pattern = "./internal/exec/exprengine/", "^Benchmark(Classic|Stateless)$"
	s.goBench(ctx, benchSection{
		Title:        "expr engine (internal/exec/exprengine): decode + evaluate + encode, one execution" + s.medianNote(),
		TargetMetric: "ns/op", TargetNs: 10000,
	}, pkg, pattern)
	// The GC share of a run depends on how often the collector runs, which this back-to-back
	// loop over a tiny heap exaggerates at Go's default; eventrt runs a stream consumer at
	// GOGC=400 (DefaultGCPercent, cmd/eventrt), and in key mode runs come seconds apart.
	s.goBench(ctx, benchSection{
		Title: "the same at GOGC=400, the GC setting eventrt runs a stream consumer with" + s.medianNote(),
	}, pkg, pattern, "GOGC=400")
	s.goBench(ctx, benchSection{
		Title: "for scale: the classic handler written in Go by hand, with the same decoder, maps and " +
			"encoder (the best any evaluator of this data model can do)" + s.medianNote(),
	}, pkg, "^BenchmarkClassicHandWritten$")

	py := benchSection{
		Title: "Python engine (internal/exec/pyengine): the classic handler through the worker; overhead = time per " +
			"execution minus the handler called directly in CPython" + s.medianNote(),
		TargetMetric: "overhead-ns/op", TargetNs: 30000, TargetRows: pythonDefaultRows(),
	}
	if !hasBenchmark(filepath.Join(s.o.Repo, "internal", "pyengine"), "BenchmarkClassicPython") {
		py.Status = rowStatus{notAvailable, "no BenchmarkClassicPython in internal/exec/pyengine"}
		s.rep.Benches = append(s.rep.Benches, py)
		return
	}
	s.goBench(ctx, py, "./internal/exec/pyengine/", "ClassicPython")
}

// goBench runs the benchmarks of pkg that pattern matches, with env added to the environment,
// into sec (its command, rows and status), and adds sec to the report.
func (s *session) goBench(ctx context.Context, sec benchSection, pkg, pattern string, env ...string) {
	prefix := ""
	if len(env) > 0 {
		prefix = strings.Join(env, " ") + " "
	}
	sec.Command = fmt.Sprintf("%sgo test -run '^$' -bench '%s' -benchmem -count %d %s", prefix, pattern, s.o.GoBenchCount, pkg)
	s.logf("%sgo test -bench '%s' %s", prefix, pattern, pkg)
	rows, err := runGoBench(ctx, s.o.Repo, pkg, pattern, s.o.GoBenchCount, s.o.GoBenchTimeout, env...)
	if err != nil {
		sec.Status = statusOf(err)
	}
	sec.Rows = rows
	s.rep.Benches = append(s.rep.Benches, sec)
}

// medianNote says how a go test row was made from several runs.
func (s *session) medianNote() string {
	if s.o.GoBenchCount == 1 {
		return ""
	}
	return fmt.Sprintf(" (each figure the median of %d runs)", s.o.GoBenchCount)
}

// pythonDefaultRows names the BenchmarkClassicPython row that runs as eventrt does by default:
// an input decoded into a map (what the runner and the stream consumer pass), the
// shared-memory channel where the platform has it, the default PYTHON_SPIN_WAIT.
func pythonDefaultRows() string {
	transport := "pipes"
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		transport = "shm"
	}
	return "/map/" + transport + "/spin=" + config.DefaultPythonSpinWait.String()
}

// baseEnv is the environment every child starts from: only what finding programs needs, so
// a REDIS_URL or HANDLER_PATH in the caller's environment cannot redirect a row.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "USER"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (s *session) redisEnv() []string {
	_, port, _ := net.SplitHostPort(s.srv.Addr)
	return append(baseEnv(), "REDIS_HOST=127.0.0.1", "REDIS_PORT="+port)
}

// startEventrt starts the eventrt binary bin with the given settings on top of the Redis
// address, a free HTTP port and LOG_LEVEL=warn; ready says whether to wait for /readyz.
func (s *session) startEventrt(ctx context.Context, name, bin string, ready bool, settings ...string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	env := append(s.redisEnv(), "HTTP_ADDR="+addr, "LOG_LEVEL=warn")
	c, err := startChild(name, s.o.Repo, append(env, settings...), bin)
	if err != nil {
		return nil, err
	}
	if ready {
		if err := waitHTTP(ctx, c, "http://"+addr+"/readyz", 20*time.Second); err != nil {
			c.Stop(5 * time.Second)
			return nil, err
		}
	}
	return c, nil
}

// latTarget is one program under the latency test.
type latTarget struct {
	key     string
	row     latencyRow
	proc    *child
	probe   *probe
	samples []time.Duration
}

func (t *latTarget) fail(err error) {
	if t.row.Status.Outcome == measured {
		t.row.Status = statusOf(err)
	}
}

func (t *latTarget) ok() bool { return t.row.Status.Outcome == measured && t.probe != nil }

// basePrefix marks a latency row run with Options.BaseEventrt instead of Options.Eventrt.
const basePrefix = "base-"

// latencyRowSpec is one program the latency section can measure. Besides make bench's rows,
// the catalogue holds variants that attribute eventrt's latency to its parts: the lease (a
// fenced commit is a Lua script), state (a commit writes the env hash) and the handler itself.
type latencyRowSpec struct {
	name string
	kind int
	// handler is an expr program written to a file of its own ("" for a row that brings its
	// own HANDLER_PATH in settings, or is not eventrt).
	handler  string
	settings []string // eventrt settings besides the keys, relative to the repository
}

// Trivial handlers: the probe recognises a trial's output by its timestamp field.
const (
	trivialStateful  = `result({timestamp: input.timestamp}, {n: (env.n ?? 0) + 1})`
	trivialStateless = `{timestamp: input.timestamp}`
)

var latencyRowSpecs = map[string]latencyRowSpec{
	"floor": {name: "floor: minimal Go program, notification → GET → SET, no evaluation", kind: latFloor},
	"expr": {name: "eventrt, expr engine, examples/classic", kind: latEventrt,
		settings: []string{"HANDLER_PATH=examples/classic"}},
	"python": {name: "eventrt, Python engine, examples/python/usermodule.py", kind: latEventrt,
		settings: []string{"HANDLER_RUNTIME=python", "PYFILE_PATH=examples/python/usermodule.py", "HANDLER_PATH=examples/python/usermodule.py"}},
	"expr-nolease": {name: "eventrt, expr engine, examples/classic, LEASE=false", kind: latEventrt,
		settings: []string{"HANDLER_PATH=examples/classic", "LEASE=false"}},
	"stateful": {name: "eventrt, trivial stateful handler", kind: latEventrt, handler: trivialStateful},
	"stateful-nolease": {name: "eventrt, trivial stateful handler, LEASE=false", kind: latEventrt,
		handler: trivialStateful, settings: []string{"LEASE=false"}},
	"stateless": {name: "eventrt, trivial stateless handler", kind: latEventrt, handler: trivialStateless},
	"stateless-nolease": {name: "eventrt, trivial stateless handler, LEASE=false", kind: latEventrt,
		handler: trivialStateless, settings: []string{"LEASE=false"}},
}

func latencyRowNames() []string {
	names := make([]string, 0, len(latencyRowSpecs))
	for n := range latencyRowSpecs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// startLatencyRow starts the program of row name (see latencyRowSpecs) on in and out.
func (s *session) startLatencyRow(ctx context.Context, name, in, out, handlerDir string) (*child, error) {
	base, isBase := strings.CutPrefix(name, basePrefix)
	spec := latencyRowSpecs[base]
	if base == "floor" {
		return startChild("floor", s.o.Repo, baseEnv(), s.self, "floor", "-addr", s.srv.Addr, "-in", in, "-out", out)
	}
	settings := []string{"REDIS_INPUT_KEY=" + in, "REDIS_OUTPUT_KEY=" + out}
	for _, kv := range spec.settings {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(k, "_PATH") {
			v = filepath.Join(s.o.Repo, v)
		}
		settings = append(settings, k+"="+v)
	}
	if spec.handler != "" {
		file := filepath.Join(handlerDir, base+".expr")
		if err := os.WriteFile(file, []byte(spec.handler+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("handler of row %s: %w", name, err)
		}
		settings = append(settings, "HANDLER_PATH="+file)
	}
	bin := s.o.Eventrt
	if isBase {
		bin = s.o.BaseEventrt
	}
	c, err := s.startEventrt(ctx, "eventrt ("+name+")", bin, true, settings...)
	if err != nil && base == "python" {
		// A daemon that refuses HANDLER_RUNTIME=python at start has no Python engine yet.
		return nil, fmt.Errorf("%w: %w", errNotAvailable, err)
	}
	return c, err
}

// latency measures the rows of Options.LatencyRows (by default the floor and eventrt with the
// expr and the Python engine) in interleaved blocks, so a slow phase of the machine is shared
// by all rows.
func (s *session) latency(ctx context.Context) {
	handlerDir, err := os.MkdirTemp("", "eventrt-bench-handlers-")
	if err != nil {
		s.rep.note("latency: %v", err)
		return
	}
	defer os.RemoveAll(handlerDir)
	var targets []*latTarget
	for _, name := range s.o.LatencyRows {
		base, isBase := strings.CutPrefix(name, basePrefix)
		row := latencyRow{Name: latencyRowSpecs[base].name, Kind: latencyRowSpecs[base].kind}
		if isBase {
			row.Name += " (" + filepath.Base(s.o.BaseEventrt) + ")"
		}
		targets = append(targets, &latTarget{key: name, row: row})
	}
	defer func() {
		for _, t := range targets {
			if t.probe != nil {
				t.probe.Close()
			}
			if t.proc != nil {
				t.proc.Stop(5 * time.Second)
			}
			s.rep.Latency = append(s.rep.Latency, t.row)
		}
	}()
	for _, t := range targets {
		in, out := "bench:"+t.key+":metrics", "bench:"+t.key+":output"
		s.logf("starting %s", t.row.Name)
		proc, err := s.startLatencyRow(ctx, t.key, in, out, handlerDir)
		if err != nil {
			t.fail(err)
			continue
		}
		t.proc = proc
		if err := waitSubscribed(ctx, s.rc, proc, "__keyspace@0__:"+in, 10*time.Second); err != nil {
			t.fail(err)
			continue
		}
		if t.probe, err = newProbe(ctx, s.rc, in, out); err != nil {
			t.fail(err)
			continue
		}
		for range s.o.Warmup {
			ts := s.ts.Next()
			if _, err := t.probe.Trial(ctx, s.tpl.Doc(ts), ts, s.o.TrialTimeout); err != nil {
				t.fail(fmt.Errorf("warm-up: %w", err))
				break
			}
		}
	}
	blocks := min(s.o.Blocks, s.o.Trials)
	per := (s.o.Trials + blocks - 1) / blocks
	for range blocks {
		for _, t := range targets {
			if !t.ok() {
				continue
			}
			if per > 1 {
				s.logf("%s: trials %d-%d", t.row.Name, len(t.samples)+1, min(s.o.Trials, len(t.samples)+per))
			}
			for n := min(per, s.o.Trials-len(t.samples)); n > 0; n-- {
				ts := s.ts.Next()
				d, err := t.probe.Trial(ctx, s.tpl.Doc(ts), ts, s.o.TrialTimeout)
				if err != nil {
					t.fail(fmt.Errorf("trial %d: %w", len(t.samples)+1, err))
					break
				}
				t.samples = append(t.samples, d)
			}
		}
	}
	for _, t := range targets {
		if !t.ok() {
			continue
		}
		t.row.Stats = summarize(t.samples)
		if rss, hwm, err := t.proc.Memory(); err == nil {
			s.rep.Memory = append(s.rep.Memory, memRow{Process: t.proc.name + ", key mode",
				When: fmt.Sprintf("idle, after %d runs", s.o.Warmup+len(t.samples)), RSS: rss, HWM: hwm})
		}
	}
}

// legacy measures the course runtime stand-in. It polls every INTERVAL (5 s by default, kept
// here), so each trial waits for a random share of one period before its SET: the latency is
// then spread over the polling cycle as it is for a collector that writes at any moment,
// rather than always landing just after a poll (the worst case). The offsets are stratified
// over the period so that few trials still cover it evenly.
func (s *session) legacy(ctx context.Context) {
	row := latencyRow{Name: fmt.Sprintf("legacy runtime (../shared/peers, polls every %v)", s.o.LegacyInterval), Kind: latOther}
	defer func() { s.rep.Latency = append(s.rep.Latency, row) }()
	if s.o.LegacyTrials == 0 {
		row.Status = rowStatus{skipped, "-legacy-trials=0"}
		return
	}
	script := filepath.Join(s.o.Shared, "peers", "legacy_runtime.py")
	module := filepath.Join(s.o.Shared, "peers", "usermodule.py")
	for _, f := range []string{script, module} {
		if _, err := os.Stat(f); err != nil {
			row.Status = rowStatus{skipped, fmt.Sprintf("%s not found", f)}
			return
		}
	}
	if out, err := exec.CommandContext(ctx, s.o.Python, "-c", "import redis").CombinedOutput(); err != nil {
		row.Status = rowStatus{skipped, fmt.Sprintf("%s cannot import redis (apt-get install python3-redis): %s",
			s.o.Python, lastLines(out, 1))}
		return
	}
	in, out := "bench:legacy:metrics", "bench:legacy:output"
	env := append(s.redisEnv(), "REDIS_INPUT_KEY="+in, "REDIS_OUTPUT_KEY="+out, "USERMODULE="+module, "PYTHONUNBUFFERED=1")
	s.logf("starting the legacy runtime: %d trials, about %v", s.o.LegacyTrials, time.Duration(s.o.LegacyTrials+1)*s.o.LegacyInterval)
	proc, err := startChild("legacy runtime", filepath.Dir(script), env, s.o.Python, script)
	if err != nil {
		row.Status = statusOf(err)
		return
	}
	defer proc.Stop(5 * time.Second)
	p, err := newProbe(ctx, s.rc, in, out)
	if err != nil {
		row.Status = statusOf(err)
		return
	}
	defer p.Close()
	timeout := 2*s.o.LegacyInterval + 5*time.Second
	ts := s.ts.Next()
	if _, err := p.Trial(ctx, s.tpl.Doc(ts), ts, timeout); err != nil { // warm-up; sets the phase
		if proc.Exited() {
			err = errors.New(proc.ExitReason())
		}
		row.Status = statusOf(fmt.Errorf("warm-up: %w", err))
		return
	}
	n := s.o.LegacyTrials
	offsets := make([]time.Duration, n)
	for i := range offsets {
		offsets[i] = time.Duration((float64(i) + rand.Float64()) / float64(n) * float64(s.o.LegacyInterval))
	}
	rand.Shuffle(n, func(i, j int) { offsets[i], offsets[j] = offsets[j], offsets[i] })
	var samples []time.Duration
	for i, off := range offsets {
		if err := sleepCtx(ctx, off); err != nil {
			row.Status = statusOf(err)
			return
		}
		ts := s.ts.Next()
		d, err := p.Trial(ctx, s.tpl.Doc(ts), ts, timeout)
		if err != nil {
			row.Status = statusOf(fmt.Errorf("trial %d: %w", i+1, err))
			return
		}
		samples = append(samples, d)
	}
	row.Stats = summarize(samples)
	if rss, hwm, err := proc.Memory(); err == nil {
		s.rep.Memory = append(s.rep.Memory, memRow{Process: "legacy runtime (Python)",
			When: fmt.Sprintf("idle, after %d runs", n+1), RSS: rss, HWM: hwm})
	}
}

// streams measures throughput over pre-filled streams: the reference loop, then eventrt's
// stream mode with the stateless mapping, the stateful classic handler, and the classic handler
// in Python.
func (s *session) streams(ctx context.Context) {
	n := s.o.StreamEntries
	const group = "eventrt"
	eventrtStream := func(handler string, settings ...string) func(in, out string) (*child, error) {
		return func(in, out string) (*child, error) {
			return s.startEventrt(ctx, "eventrt ("+handler+", stream mode)", s.o.Eventrt, false, append([]string{
				"REDIS_INPUT_KEY=" + in, "REDIS_OUTPUT_KEY=" + out, "HANDLER_PATH=" + filepath.Join(s.o.Repo, "examples", handler),
				"INPUT_MODE=stream", "OUTPUT_MODE=xadd", "OUTPUT_MAXLEN=" + strconv.Itoa(s.o.StreamMaxLen),
				"STREAM_GROUP=" + group, "STREAM_CONSUMER=bench", "STREAM_START=0", "STREAM_DATA_FIELD=data"}, settings...)...)
		}
	}
	for _, c := range streamRowSpecs {
		if !slices.Contains(s.o.StreamRows, c.key) {
			continue
		}
		var start func(in, out string) (*child, error)
		if c.handler == "" {
			start = func(in, out string) (*child, error) {
				return startChild("stream loop", s.o.Repo, baseEnv(), s.self, "streamloop",
					"-addr", s.srv.Addr, "-in", in, "-out", out, "-group", group, "-maxlen", strconv.Itoa(s.o.StreamMaxLen))
			}
		} else {
			start = eventrtStream(c.handler, c.settings...)
		}
		row := streamRow{Name: c.name, Target: c.target}
		in, out := "{bench-"+c.key+"}:in", "{bench-"+c.key+"}:out"
		fillStart := time.Now()
		if err := fillStream(ctx, s.rc, in, s.tpl, s.ts, n); err != nil {
			row.Status = statusOf(err)
			s.rep.Streams = append(s.rep.Streams, row)
			continue
		}
		s.logf("%s: %d entries filled in %v", c.name, n, time.Since(fillStart).Round(time.Millisecond))
		started := time.Now()
		proc, err := start(in, out)
		if err != nil {
			row.Status = statusOf(err)
		} else {
			res, err := watchStream(ctx, s.rc, proc, in, out, group, n, started, s.o.StreamTimeout, s.o.StallTimeout)
			if err != nil {
				row.Status = statusOf(err)
			} else {
				row.Result = res
				if _, hwm, err := proc.Memory(); err == nil {
					row.PeakRSS = hwm
					s.rep.Memory = append(s.rep.Memory, memRow{Process: proc.name,
						When: fmt.Sprintf("peak over %d stream entries", n), HWM: hwm})
				}
			}
			proc.Stop(5 * time.Second)
		}
		s.logf("%s: %s", c.name, streamSummary(row))
		s.rep.Streams = append(s.rep.Streams, row)
		// Each row starts on an empty Redis; a synchronous flush keeps the freeing out of the
		// next row's time.
		if err := s.rc.Do(ctx, s.rc.B().Flushall().Sync().Build()).Error(); err != nil {
			s.rep.note("FLUSHALL SYNC after %s: %v", c.name, err)
		}
	}
}

// streamRowSpec is one stream throughput row: the reference loop (no handler) or eventrt
// running handler (under examples/) with settings.
type streamRowSpec struct {
	key, name string
	target    float64 // entries/s; 0: none
	handler   string
	settings  []string
}

// streamRowSpecs are the stream rows, in the order they run.
var streamRowSpecs = []streamRowSpec{
	{key: "loop", name: "minimal Go loop: XREADGROUP → XADD → XACK, 256 per batch, pipelined, no decoding"},
	{key: "stateless", name: "eventrt, stateless mapping (examples/stateless)", target: 100000, handler: "stateless"},
	{key: "classic", name: "eventrt, stateful classic handler (examples/classic)", target: 40000, handler: "classic"},
	{key: "python", name: "eventrt, Python engine, the course's classic handler (examples/python)",
		handler: "python/usermodule.py", settings: []string{"HANDLER_RUNTIME=python"}},
}

// streamRowNames are the keys of the stream rows, in the order they run.
func streamRowNames() []string {
	names := make([]string, len(streamRowSpecs))
	for i, r := range streamRowSpecs {
		names[i] = r.key
	}
	return names
}

func streamSummary(r streamRow) string {
	if r.Status.Outcome != measured {
		return r.Status.String()
	}
	return fmt.Sprintf("%s entries/s", count(r.Result.Rate))
}

// readMachine collects the facts printed above the tables. A fact that cannot be read says
// so instead of stopping the run.
func readMachine(ctx context.Context, o Options) machine {
	m := machine{LoadStart: loadAvg(), LoadEnd: "?", NProc: runtime.NumCPU(), Go: runtime.Version(), CPU: "unknown CPU", Mem: "?",
		OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				if kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64); err == nil {
					m.Mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += " (Linux " + strings.TrimSpace(string(b)) + ")"
	}
	cmdOut := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return "unknown (" + name + ": " + err.Error() + ")"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	m.Redis = cmdOut("redis-server", "--version")
	for _, f := range strings.Fields(m.Redis) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			m.Redis = v
		}
	}
	m.Eventrt = cmdOut(o.Eventrt, "version")
	m.Python = cmdOut(o.Python, "--version")
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
