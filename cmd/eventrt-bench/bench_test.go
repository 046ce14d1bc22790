package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redistest"
)

// repoRoot is the repository root seen from this package's directory, where go test runs.
const repoRoot = "../.."

var testSample = filepath.Join(repoRoot, samplePath)

// TestRepoPaths: everything the driver reads is in the repository, and there.
func TestRepoPaths(t *testing.T) {
	for _, p := range []string{samplePath, classicExprPath, statelessExprPath, classicPythonPath, legacyRuntimePath,
		exprBenchPkg, pythonBenchPkg} {
		if filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
			t.Errorf("%s is outside the repository", p)
		}
		if _, err := os.Stat(filepath.Join(repoRoot, p)); err != nil {
			t.Errorf("%v", err)
		}
	}
	for _, pkg := range []string{exprBenchPkg, pythonBenchPkg} {
		files, _ := filepath.Glob(filepath.Join(repoRoot, pkg, "*_test.go"))
		if len(files) == 0 {
			t.Errorf("no tests (benchmarks) in %s", pkg)
		}
	}
}

// TestTargetsTable: every target is in the printed table, once, with its bound.
func TestTargetsTable(t *testing.T) {
	table := targetTable()
	if n := strings.Count(table, "\n"); n != len(targets)+2 {
		t.Errorf("%d lines for %d targets:\n%s", n, len(targets), table)
	}
	for _, want := range []string{"p50 ≤ 1.15× floor", "p99 ≤ 1.5× floor", "≥ 100,000/s", "≥ 40,000/s",
		"ns/op ≤ 10 µs", "overhead-ns/op ≤ 30 µs"} {
		if strings.Count(table, want) != 1 {
			t.Errorf("table has %q %d times, want once:\n%s", want, strings.Count(table, want), table)
		}
	}
	if !targetStreamClassic.met(40000) || targetStreamClassic.met(39999) || !targetExprHandler.met(10000) || targetExprHandler.met(10001) {
		t.Error("a target's bound is not where its text says")
	}
}

// TestMissingPeerIsSkippedWithReason: a missing peer skips its row and says what is missing;
// anything else fails the row with its reason.
func TestMissingPeerIsSkippedWithReason(t *testing.T) {
	st := statusOf(missingf("python3 not found on PATH"))
	if st.Outcome != skipped || st.String() != "skipped: python3 not found on PATH" {
		t.Errorf("missing peer: %+v %q", st, st)
	}
	st = statusOf(fmt.Errorf("warm-up: %w", errTrialTimeout))
	if st.Outcome != failed || st.String() != "FAILED: warm-up: no output in time" {
		t.Errorf("failure: %+v %q", st, st)
	}
	t.Setenv("PATH", t.TempDir())
	if st := statusOf(needPython()); st.Outcome != skipped || !strings.Contains(st.Msg, "python3 not found on PATH") {
		t.Errorf("Python rows without python3: %+v", st)
	}
	s := &session{o: Options{Repo: t.TempDir(), Python: "/usr/bin/python3"}}
	err := s.needLegacy(context.Background())
	if st := statusOf(err); st.Outcome != skipped || !strings.Contains(st.Msg, legacyRuntimePath) {
		t.Errorf("legacy runtime without its script: %v", err)
	}
	s = &session{o: Options{Repo: repoRoot, Python: "/nonexistent/python3"}}
	err = s.needLegacy(context.Background())
	if st := statusOf(err); st.Outcome != skipped || !strings.Contains(st.Msg, "/nonexistent/python3") {
		t.Errorf("legacy runtime without its interpreter: %v", err)
	}
}

func TestSummarizeNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	want := latencyStats{N: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Fatalf("summarize(1..100 ms) = %+v, want %+v", got, want)
	}
	if d[0] != 100*time.Millisecond {
		t.Fatal("summarize sorted its argument in place")
	}
	// With 20 trials the 99th percentile is the largest one.
	if s := summarize(d[:20]); s.P99 != s.Max || s.P50 != 90*time.Millisecond {
		t.Fatalf("summarize(81..100 ms) = %+v, want p99 = max and p50 = 90ms", s)
	}
	if s := summarize(nil); s != (latencyStats{}) {
		t.Fatalf("summarize(nil) = %+v", s)
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/eventrt/eventrt/internal/exec/pyengine
cpu: AMD EPYC
BenchmarkClassic-2            	  120000	      9876 ns/op	    4096 B/op	     123 allocs/op
BenchmarkClassicPython/map/spin=0s-2 	   50000	     25000 ns/op	     11000 direct-ns/op	     3300 overhead-ns/op	     812 B/op	      17 allocs/op
BenchmarkStateless logs something here
PASS
ok  	github.com/eventrt/eventrt/internal/exec/pyengine	3.2s
`
	got, err := parseGoBench([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parsed %d benchmarks, want 2: %+v", len(got), got)
	}
	if got[0].Name != "BenchmarkClassic" || got[0].N != 120000 || got[0].Metrics["ns/op"] != 9876 ||
		got[0].Metrics["allocs/op"] != 123 || got[0].Metrics["B/op"] != 4096 {
		t.Errorf("first = %+v", got[0])
	}
	if got[1].Name != "BenchmarkClassicPython/map/spin=0s" || got[1].Metrics["overhead-ns/op"] != 3300 {
		t.Errorf("second = %+v", got[1])
	}
	failedOut := "BenchmarkClassic-2 10 5 ns/op\n--- FAIL: BenchmarkVar\n    var_test.go:11: x:32:46: unexpected token EOF\nFAIL\nexit status 1\n"
	if got := failureLines([]byte(failedOut)); got != "--- FAIL: BenchmarkVar | var_test.go:11: x:32:46: unexpected token EOF" {
		t.Errorf("failureLines = %q", got)
	}
	if _, err := parseGoBench([]byte("BenchmarkX-2 10 abc ns/op\n")); err == nil {
		t.Error("a malformed value parsed without error")
	}
}

func TestMedianRuns(t *testing.T) {
	lines, err := parseGoBench([]byte(`BenchmarkA-2 100 30 ns/op 7 allocs/op
BenchmarkB-2 10 5 ns/op
BenchmarkA-2 100 10 ns/op 7 allocs/op
BenchmarkB-2 10 9 ns/op
BenchmarkA-2 100 20 ns/op 8 allocs/op
`))
	if err != nil {
		t.Fatal(err)
	}
	got := medianRuns(lines)
	if len(got) != 2 || got[0].Name != "BenchmarkA" || got[1].Name != "BenchmarkB" {
		t.Fatalf("merged %+v, want A then B", got)
	}
	if a := got[0]; a.Runs != 3 || a.N != 300 || a.Metrics["ns/op"] != 20 || a.Metrics["allocs/op"] != 7 {
		t.Errorf("A = %+v, want 3 runs, 300 iterations, median 20 ns/op and 7 allocs/op", a)
	}
	if b := got[1]; b.Runs != 2 || b.Metrics["ns/op"] != 7 {
		t.Errorf("B = %+v, want 2 runs and the mean of the middle two, 7 ns/op", b)
	}
}

func TestTemplateCarriesTimestamp(t *testing.T) {
	tpl, err := loadTemplate(testSample)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(testSample)
	if err != nil {
		t.Fatal(err)
	}
	var sample map[string]any
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	ts := newTimestamps()
	seen := map[float64]bool{}
	for range 1000 {
		v := ts.Next()
		if seen[v] {
			t.Fatalf("timestamp %v handed out twice", v)
		}
		seen[v] = true
		var doc map[string]any
		if err := json.Unmarshal(tpl.Doc(v), &doc); err != nil {
			t.Fatalf("Doc(%v) is not JSON: %v", v, err)
		}
		if doc["timestamp"] != v {
			t.Fatalf("Doc(%v) has timestamp %v", v, doc["timestamp"])
		}
		if len(doc) != len(sample) || doc["cpu_percent-15"] != sample["cpu_percent-15"] {
			t.Fatalf("Doc(%v) differs from the sample beyond the timestamp", v)
		}
	}
	if _, err := loadTemplate("testdata-missing.json"); err == nil {
		t.Error("loadTemplate of a missing file succeeded")
	}
}

// startRedis starts a test server with the notifications the probe and the floor need.
func startTestRedis(t *testing.T) (*redistest.Server, rueidis.Client) {
	t.Helper()
	srv := redistest.Start(t, "notify-keyspace-events K$")
	c, err := newClient(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return srv, c
}

func TestProbeMeasuresFloor(t *testing.T) {
	srv, c := startTestRedis(t)
	tpl, err := loadTemplate(testSample)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := newClient(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	floorDone := make(chan error, 1)
	go func() { floorDone <- floorLoop(ctx, fc, "m:in", "m:out") }()
	defer func() {
		cancel()
		if err := <-floorDone; !errors.Is(err, context.Canceled) {
			t.Errorf("floorLoop ended with %v, want context.Canceled", err)
		}
	}()
	if err := waitSubscribed(ctx, c, nil, "__keyspace@0__:m:in", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p, err := newProbe(ctx, c, "m:in", "m:out")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ts := newTimestamps()
	for i := range 20 {
		v := ts.Next()
		d, err := p.Trial(ctx, tpl.Doc(v), v, 5*time.Second)
		if err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
		if d <= 0 {
			t.Fatalf("trial %d: latency %v", i, d)
		}
		got, err := c.Do(ctx, c.B().Get().Key("m:out").Build()).ToString()
		if err != nil || got != string(tpl.Doc(v)) {
			t.Fatalf("trial %d: output %q (%v), want the input copied", i, got, err)
		}
	}
}

func TestProbeRejectsOtherRunsOutput(t *testing.T) {
	_, c := startTestRedis(t)
	ctx := context.Background()
	p, err := newProbe(ctx, c, "w:in", "w:out")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A runner that answers every input with an older run's output: its notification
	// arrives, but the probe must not count it.
	ctx, cancel := context.WithCancel(ctx)
	wake := make(chan struct{}, 1)
	subDone := make(chan error, 1)
	go func() {
		subDone <- c.Receive(ctx, c.B().Subscribe().Channel("__keyspace@0__:w:in").Build(), func(rueidis.PubSubMessage) {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
	}()
	answered := make(chan error, 1)
	go func() {
		select {
		case <-wake:
			answered <- c.Do(ctx, c.B().Set().Key("w:out").Value(`{"timestamp": 1.5}`).Build()).Error()
		case <-ctx.Done():
			answered <- ctx.Err()
		}
	}()
	if err := waitSubscribed(ctx, c, nil, "__keyspace@0__:w:in", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = p.Trial(ctx, []byte(`{"timestamp": 2.5}`), 2.5, 300*time.Millisecond)
	if aerr := <-answered; aerr != nil {
		t.Fatalf("the stale runner did not answer: %v", aerr)
	}
	cancel()
	<-subDone
	if !errors.Is(err, errTrialTimeout) {
		t.Fatalf("Trial with only stale outputs = %v, want errTrialTimeout", err)
	}
	if !strings.Contains(err.Error(), "w:out") || !strings.Contains(err.Error(), "2.5") {
		t.Errorf("timeout error %q does not name the key and the timestamp", err)
	}
}

type fakeProc struct{ exited bool }

func (f fakeProc) Exited() bool { return f.exited }
func (f fakeProc) ExitReason() string {
	return "fake exited (exit status 1): stream input is not supported"
}

// watchLoop fills {tag}:in with n entries, consumes them with the reference loop (output
// capped at maxLen) and returns what watchStream measured.
func watchLoop(t *testing.T, c rueidis.Client, tag string, n int, maxLen int64) streamResult {
	t.Helper()
	tpl, err := loadTemplate(testSample)
	if err != nil {
		t.Fatal(err)
	}
	in, out := "{"+tag+"}:in", "{"+tag+"}:out"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := fillStream(ctx, c, in, tpl, newTimestamps(), n); err != nil {
		t.Fatal(err)
	}
	loopDone := make(chan error, 1)
	l := &streamLoop{c: c, in: in, out: out, group: "eventrt", consumer: "t", count: 256, maxLen: maxLen}
	go func() { loopDone <- l.run(ctx) }()
	res, err := watchStream(ctx, c, fakeProc{}, in, out, "eventrt", n, time.Now(), time.Minute, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-loopDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("streamLoop: %v", err)
	}
	return res
}

func TestStreamLoopThroughWatch(t *testing.T) {
	_, c := startTestRedis(t)
	const n = 3000
	if res := watchLoop(t, c, "s", n, 2*n); res.Entries != n || res.Rate <= 0 || res.Wall <= 0 || !res.ByIDs {
		t.Fatalf("result %+v, want a rate from the output's IDs", res)
	}
	bg := context.Background()
	if l, err := c.Do(bg, c.B().Xlen().Key("{s}:out").Build()).AsInt64(); err != nil || l != n {
		t.Fatalf("XLEN out = %d (%v), want %d", l, err, n)
	}
	// Outputs in input order, each naming its entry: the pipelined read skips nothing.
	ins, err := c.Do(bg, c.B().Xrange().Key("{s}:in").Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	outs, err := c.Do(bg, c.B().Xrange().Key("{s}:out").Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	for i := range outs {
		if outs[i].FieldValues["source"] != ins[i].ID || outs[i].FieldValues["data"] != loopOutput {
			t.Fatalf("output %d = %v, want source %s and the fixed output", i, outs[i].FieldValues, ins[i].ID)
		}
	}
	g, err := readGroup(bg, c, "{s}:in", "eventrt")
	if err != nil {
		t.Fatal(err)
	}
	if !g.Exists || g.Pending != 0 || g.EntriesRead != n || g.Lag != 0 {
		t.Fatalf("group after the loop: %+v, want all %d read and acked", g, n)
	}
}

// TestWatchTrimmedOutput: an output capped far below the entries consumed still shows every
// entry added, and the rate comes from Redis' IDs.
func TestWatchTrimmedOutput(t *testing.T) {
	_, c := startTestRedis(t)
	const n = 5000
	if res := watchLoop(t, c, "t", n, 300); res.Entries != n || res.Rate <= 0 {
		t.Fatalf("result %+v, want all %d entries and a rate", res, n)
	}
	o, err := readOutput(context.Background(), c, "{t}:out")
	if err != nil || !o.Exists || o.Added != n || o.LastMs <= 0 {
		t.Fatalf("output info %+v (%v), want %d added", o, err, n)
	}
	if xlen, err := c.Do(context.Background(), c.B().Xlen().Key("{t}:out").Build()).AsInt64(); err != nil || xlen >= n {
		t.Fatalf("XLEN out = %d (%v): the output was not trimmed, the test proves nothing", xlen, err)
	}
}

func TestWatchStreamFailuresSayWhy(t *testing.T) {
	_, c := startTestRedis(t)
	tpl, err := loadTemplate(testSample)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := fillStream(ctx, c, "{n}:in", tpl, newTimestamps(), 10); err != nil {
		t.Fatal(err)
	}
	// The daemon exits at once: the row fails with its last log line.
	_, err = watchStream(ctx, c, fakeProc{exited: true}, "{n}:in", "{n}:out", "eventrt", 10, time.Now(), time.Minute, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "after 0 of 10 entries") || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("exited consumer: %v, want a failure with its reason", err)
	}
	// The daemon runs but never creates the group (it treats the stream as a key).
	_, err = watchStream(ctx, c, fakeProc{}, "{n}:in", "{n}:out", "eventrt", 10, time.Now(), time.Minute, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `no consumer group "eventrt" on {n}:in`) {
		t.Fatalf("consumer without a group: %v, want a failure naming the group", err)
	}
	// A group that exists but makes no progress is a stall.
	if err := c.Do(ctx, c.B().XgroupCreate().Key("{n}:in").Group("eventrt").Id("0").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err = watchStream(ctx, c, fakeProc{}, "{n}:in", "{n}:out", "eventrt", 10, time.Now(), time.Minute, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stalled at 0 of 10") {
		t.Fatalf("stalled group: %v, want a stall failure", err)
	}
}

func TestChildMemoryAndStop(t *testing.T) {
	c, err := startChild("sleeper", t.TempDir(), baseEnv(), "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	rss, hwm, err := c.Memory()
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Fatalf("rss %d, hwm %d", rss, hwm)
	}
	c.Stop(5 * time.Second)
	if !c.Exited() || !strings.Contains(c.ExitReason(), "signal: terminated") {
		t.Fatalf("after Stop: exited %v, reason %q", c.Exited(), c.ExitReason())
	}
	if _, err := startChild("missing", t.TempDir(), nil, "/nonexistent/program"); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Fatalf("starting a missing program: %v", err)
	}
}

func TestMarkdownVerdicts(t *testing.T) {
	r := &report{Date: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Opts: defaultOptions(),
		Machine: machine{NProc: 2, CPU: "Test CPU", Go: "go1.26", Redis: "7.0.15"}}
	r.Latency = []latencyRow{
		{Name: "floor", Kind: latFloor, Stats: latencyStats{N: 500, P50: 500 * time.Microsecond, P99: time.Millisecond, Max: 2 * time.Millisecond}},
		{Name: "eventrt", Kind: latEventrt, Stats: latencyStats{N: 500, P50: 550 * time.Microsecond, P99: 1600 * time.Microsecond, Max: 3 * time.Millisecond}},
		{Name: "python", Kind: latEventrt, Status: statusOf(missingf("python3 not found on PATH"))},
	}
	r.Streams = []streamRow{{Name: "stateless", Target: &targetStreamStateless, Result: streamResult{Entries: 200000, Rate: 123456, Wall: 2 * time.Second, ByIDs: true}}}
	r.Benches = []benchSection{{Title: "expr", Command: "go test", Target: &targetExprHandler,
		Rows: []goBench{{Name: "BenchmarkClassic", Metrics: map[string]float64{"ns/op": 12000, "allocs/op": 300}}}},
		{Title: "python", Command: "go test", Target: &targetPythonOverhead,
			Rows: []goBench{
				{Name: targetPythonOverhead.bench, Metrics: map[string]float64{"ns/op": 31000, "overhead-ns/op": 21000}},
				{Name: "BenchmarkClassicPython/map/pipes/spin=0s", Metrics: map[string]float64{"ns/op": 67000, "overhead-ns/op": 57000}},
			}}}
	md := r.Markdown()
	for _, want := range []string{
		"2026-11-25 12:00 UTC", "Test CPU", "redis-server 7.0.15",
		"| eventrt | 500 | 0.550 ms | 1.600 ms |", "p50 1.10× (met), p99 1.60× (missed)",
		"skipped: python3 not found on PATH", "| 123,456 |", "≥ 100,000/s", "| 12,000 |", "ns/op ≤ 10 µs | missed",
		"21,000 overhead-ns/op | overhead-ns/op ≤ 30 µs | met |", "57,000 overhead-ns/op |  |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if r.Failed() {
		t.Error("a report without failed rows says it failed")
	}
	r.Streams[0].Status = statusOf(errors.New("stalled"))
	if !r.Failed() || !strings.Contains(r.Markdown(), "FAILED: stalled") {
		t.Error("a failed stream row does not fail the report")
	}
}

func TestOptionsValidate(t *testing.T) {
	dir := t.TempDir()
	bin := dir + "/eventrt"
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	o.Repo, o.Eventrt = dir, "eventrt"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Out != dir+"/bench/results.md" || o.Eventrt != bin {
		t.Errorf("paths not resolved against the repo: out %s, eventrt %s", o.Out, o.Eventrt)
	}
	o = defaultOptions()
	o.Repo, o.Eventrt = dir, "missing"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("missing binary: %v", err)
	}
	o = defaultOptions()
	o.Repo, o.Eventrt, o.Trials = dir, "eventrt", 0
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "-trials=0") {
		t.Errorf("zero trials: %v", err)
	}
	if got := count(1234567.4); got != "1,234,567" {
		t.Errorf("count = %s", got)
	}
	if got := dur(2500 * time.Millisecond); got != "2500 ms" {
		t.Errorf("dur = %s", got)
	}
}

func TestOptionsValidateLatencyRows(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/eventrt", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rows       []string
		base       string
		blocks     int
		wantErrSub string
	}{
		{rows: DefaultLatencyRows, blocks: DefaultBlocks},
		{rows: []string{"floor", "expr", "expr-nolease", "stateful", "stateless-nolease"}, blocks: 1000},
		{rows: []string{"floor", "base-expr", "expr"}, base: "eventrt", blocks: 4},
		{rows: []string{"floor", "exp"}, blocks: 4, wantErrSub: `unknown row "exp"`},
		{rows: []string{"base-floor"}, base: "eventrt", blocks: 4, wantErrSub: `unknown row "base-floor"`},
		{rows: []string{"base-expr"}, blocks: 4, wantErrSub: "needs -eventrt-base"},
		{rows: []string{"expr"}, base: "missing", blocks: 4, wantErrSub: "-eventrt-base"},
		{rows: nil, blocks: 4, wantErrSub: "-latency-rows: empty"},
		{rows: []string{"expr"}, blocks: 0, wantErrSub: "-blocks=0"},
	} {
		o := defaultOptions()
		o.Repo, o.Eventrt, o.LatencyRows, o.BaseEventrt, o.Blocks = dir, "eventrt", c.rows, c.base, c.blocks
		err := o.Validate()
		if c.wantErrSub == "" && err != nil || c.wantErrSub != "" && (err == nil || !strings.Contains(err.Error(), c.wantErrSub)) {
			t.Errorf("rows %q base %q blocks %d: err = %v, want %q", c.rows, c.base, c.blocks, err, c.wantErrSub)
		}
	}
	// Every row of the catalogue names an eventrt setting or program the driver can start.
	for _, name := range latencyRowNames() {
		spec := latencyRowSpecs[name]
		if spec.name == "" || (name != "floor") != (spec.kind == latEventrt) {
			t.Errorf("row %s: %+v", name, spec)
		}
	}
}

func TestOptionsValidateStreamRows(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/eventrt", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rows                     []string
		latencyOnly, streamsOnly bool
		wantErrSub               string
	}{
		{rows: DefaultStreamRows},
		{rows: []string{"classic", "loop"}, streamsOnly: true},
		{rows: []string{"loop", "stateful"}, wantErrSub: `unknown row "stateful"`},
		{rows: nil, wantErrSub: "-stream-rows: empty"},
		{rows: DefaultStreamRows, latencyOnly: true, streamsOnly: true, wantErrSub: "exclude each other"},
	} {
		o := defaultOptions()
		o.Repo, o.Eventrt, o.StreamRows, o.LatencyOnly, o.StreamsOnly = dir, "eventrt", c.rows, c.latencyOnly, c.streamsOnly
		err := o.Validate()
		if c.wantErrSub == "" && err != nil || c.wantErrSub != "" && (err == nil || !strings.Contains(err.Error(), c.wantErrSub)) {
			t.Errorf("rows %q: err = %v, want %q", c.rows, err, c.wantErrSub)
		}
	}
}

// TestRunGoBenchEnv: the environment given to runGoBench reaches the benchmark (GOGC=400 for
// the handler rows), and none is added when none is given; a section says so in its command.
func TestRunGoBenchEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a benchmark")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module benchenv\n\ngo 1.23\n",
		"env_test.go": `package benchenv

import (
	"os"
	"testing"
)

func BenchmarkEnv(b *testing.B) {
	for b.Loop() {
	}
	b.ReportMetric(float64(len(os.Getenv("EVENTRT_BENCH_PROBE"))), "probe")
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		env  []string
		want float64
	}{{nil, 0}, {[]string{"EVENTRT_BENCH_PROBE=abcd"}, 4}} {
		rows, err := runGoBench(context.Background(), dir, ".", "^BenchmarkEnv$", 1, time.Minute, tc.env...)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Metrics["probe"] != tc.want {
			t.Errorf("env %v: rows %+v, want probe %v", tc.env, rows, tc.want)
		}
	}
	s := &session{o: Options{Repo: dir, GoBenchCount: 1, GoBenchTimeout: time.Minute}, rep: &report{}, logw: io.Discard}
	s.goBench(context.Background(), benchSection{Title: "probe"}, ".", "^BenchmarkEnv$", "EVENTRT_BENCH_PROBE=ab")
	if len(s.rep.Benches) != 1 {
		t.Fatalf("%d sections", len(s.rep.Benches))
	}
	sec := s.rep.Benches[0]
	want := "EVENTRT_BENCH_PROBE=ab go test -run '^$' -bench '^BenchmarkEnv$' -benchmem -count 1 ."
	if sec.Command != want || len(sec.Rows) != 1 || sec.Rows[0].Metrics["probe"] != 2 || sec.Status != (rowStatus{}) {
		t.Errorf("section %+v, want the command %q and probe 2", sec, want)
	}
}
