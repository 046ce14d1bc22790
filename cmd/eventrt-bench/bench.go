package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
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
	if s.tpl, err = loadTemplate(s.repoPath(samplePath)); err != nil {
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
	const pkg, pattern = exprBenchPkg, "^Benchmark(Classic|Stateless)$"
	s.goBench(ctx, benchSection{
		Title:  "expr engine (" + pkgDir(pkg) + "): decode + evaluate + encode, one execution" + s.medianNote(),
		Target: &targetExprHandler,
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
		Title: "Python engine (" + pkgDir(pythonBenchPkg) + "): the classic handler through the worker; overhead = " +
			"time per execution minus the handler called directly in CPython" + s.medianNote(),
		Target: &targetPythonOverhead,
	}
	if err := needPython(); err != nil {
		py.Status = statusOf(err)
		s.rep.Benches = append(s.rep.Benches, py)
		return
	}
	s.goBench(ctx, py, pythonBenchPkg, "ClassicPython")
}

// pkgDir is a ./dir/ package path as the report names it.
func pkgDir(pkg string) string { return strings.Trim(pkg, "./") }

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
