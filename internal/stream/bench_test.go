package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/cputime"
	"github.com/eventrt/eventrt/internal/exec/pyengine"
	"github.com/eventrt/eventrt/internal/redistest"
)

// benchEntries is how many entries one benchmark iteration consumes; EVENTRT_BENCH_ENTRIES
// overrides the 200,000.
func benchEntries(b *testing.B) int {
	if v := os.Getenv("EVENTRT_BENCH_ENTRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("EVENTRT_BENCH_ENTRIES=%q: want a positive integer", v)
		}
		return n
	}
	return 200000
}

// BenchmarkStreamStateless consumes entries in the metrics shape with the stateless mapping
// (egress %, caching %, mean CPU), which runs on Workers goroutines.
func BenchmarkStreamStateless(b *testing.B) {
	benchStream(b, "../../examples/stateless/handler_module.expr", Options{})
}

// BenchmarkStreamStateful consumes them with the classic handler (moving averages in env),
// one entry at a time with versioned commits.
func BenchmarkStreamStateful(b *testing.B) {
	benchStream(b, "../../examples/classic/handler_module.expr", Options{})
}

// BenchmarkStreamPython consumes them with the course's classic handler in Python (the
// Python engine, its worker started once).
func BenchmarkStreamPython(b *testing.B) {
	python, err := osexec.LookPath("python3")
	if err != nil {
		b.Skip("no python3")
	}
	e, err := pyengine.Start(context.Background(), pyengine.Options{
		Python: python, File: "../../examples/python/usermodule.py", SpinWait: config.DefaultPythonSpinWait,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	benchStreamWith(b, exec.Version{Handler: e, File: "usermodule.py", ModTime: time.Unix(1764085200, 0), Runtime: "python"}, Options{})
}

func benchStream(b *testing.B, file string, base Options) {
	src, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	benchStreamWith(b, compile(b, string(src)), base)
}

func benchStreamWith(b *testing.B, v exec.Version, base Options) {
	sample, err := os.ReadFile("../../examples/classic/metrics-sample.json")
	if err != nil {
		b.Fatal(err)
	}
	var doc bytes.Buffer
	if err := json.Compact(&doc, sample); err != nil {
		b.Fatal(err)
	}
	srv := redistest.Start(b)
	client := srv.Client()
	n := benchEntries(b)
	b.ResetTimer()
	b.StopTimer()
	var elapsed, goCPU, redisCPU time.Duration
	for i := 0; i < b.N; i++ {
		tag := "{bench" + strconv.Itoa(i) + "}"
		fill(b, client, tag+":in", doc.String(), n)
		var done atomic.Int64
		finished := make(chan struct{})
		o := base
		o.Name, o.Client, o.Stream, o.Output, o.Consumer = "bench", client, tag+":in", tag+":out", "b1"
		o.Observe = func(r Report) {
			if done.Add(int64(r.Acked)) == int64(n) {
				close(finished)
			}
		}
		c, err := New(o, v)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		cpu0, rcpu0 := processCPU(b), serverCPU(b, client)
		start := time.Now()
		b.StartTimer()
		go func() { stopped <- c.Run(ctx) }()
		select {
		case <-finished:
		case <-time.After(10 * time.Minute):
			b.Fatalf("only %d of %d entries done", done.Load(), n)
		}
		b.StopTimer()
		elapsed += time.Since(start)
		goCPU += processCPU(b) - cpu0
		redisCPU += serverCPU(b, client) - rcpu0
		cancel()
		if err := <-stopped; err != nil {
			b.Fatal(err)
		}
		if err := client.Do(context.Background(), client.B().Del().Key(tag+":in", tag+":out", tag+":dead").Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
	reportStream(b, n*b.N, elapsed, goCPU, redisCPU)
}

// reportStream reports throughput and, because a shared machine makes wall-clock figures
// noisy, the CPU time per entry spent by this process and by redis-server.
func reportStream(b *testing.B, entries int, elapsed, goCPU, redisCPU time.Duration) {
	b.ReportMetric(float64(entries)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(entries), "ns/entry")
	b.ReportMetric(float64(goCPU.Nanoseconds())/1e3/float64(entries), "go-cpu-us/entry")
	b.ReportMetric(float64(redisCPU.Nanoseconds())/1e3/float64(entries), "redis-cpu-us/entry")
}

// processCPU is this process' user+system CPU time.
func processCPU(b *testing.B) time.Duration {
	d, err := cputime.Self()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// serverCPU is redis-server's used_cpu_user + used_cpu_sys.
func serverCPU(b *testing.B, c rueidis.Client) time.Duration {
	info, err := c.Do(context.Background(), c.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu %s: %v", k, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkStreamFloor is the floor the issue compares against: a minimal XREADGROUP ->
// XADD -> XACK loop over the same entries that evaluates nothing.
func BenchmarkStreamFloor(b *testing.B) {
	sample, err := os.ReadFile("../../examples/classic/metrics-sample.json")
	if err != nil {
		b.Fatal(err)
	}
	var doc bytes.Buffer
	if err := json.Compact(&doc, sample); err != nil {
		b.Fatal(err)
	}
	srv := redistest.Start(b)
	cl := srv.Client()
	ctx := context.Background()
	n := benchEntries(b)
	b.ResetTimer()
	b.StopTimer()
	var elapsed, goCPU, redisCPU time.Duration
	for i := 0; i < b.N; i++ {
		in, out := "{floor"+strconv.Itoa(i)+"}:in", "{floor"+strconv.Itoa(i)+"}:out"
		fill(b, cl, in, doc.String(), n)
		if err := cl.Do(ctx, cl.B().XgroupCreate().Key(in).Group("g").Id("0").Build()).Error(); err != nil {
			b.Fatal(err)
		}
		cpu0, rcpu0 := processCPU(b), serverCPU(b, cl)
		start := time.Now()
		b.StartTimer()
		for done := 0; done < n; {
			res, err := cl.Do(ctx, cl.B().Xreadgroup().Group("g", "c").Count(DefaultBatch).Block(1000).Streams().Key(in).Id(">").Build()).AsXRead()
			if err != nil {
				b.Fatal(err)
			}
			es := res[in]
			ids := make([]string, len(es))
			cmds := make(rueidis.Commands, 0, len(es)+1)
			for k, e := range es {
				ids[k] = e.ID
				cmds = append(cmds, cl.B().Xadd().Key(out).Maxlen().Almost().Threshold("10000").Id("*").FieldValue().
					FieldValue("data", e.FieldValues["data"][:40]).FieldValue("source", e.ID).Build())
			}
			cmds = append(cmds, cl.B().Xack().Key(in).Group("g").Id(ids...).Build())
			for _, r := range cl.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					b.Fatal(err)
				}
			}
			done += len(es)
		}
		b.StopTimer()
		elapsed += time.Since(start)
		goCPU += processCPU(b) - cpu0
		redisCPU += serverCPU(b, cl) - rcpu0
		if err := cl.Do(ctx, cl.B().Del().Key(in, out).Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
	reportStream(b, n*b.N, elapsed, goCPU, redisCPU)
}

// fill appends n entries with data = doc, pipelined.
func fill(b *testing.B, c rueidis.Client, stream, doc string, n int) {
	const chunk = 1000
	cmds := make(rueidis.Commands, 0, chunk)
	for left := n; left > 0; left -= len(cmds) {
		cmds = cmds[:0]
		for range min(chunk, left) {
			cmds = append(cmds, c.B().Xadd().Key(stream).Id("*").FieldValue().FieldValue("data", doc).Build())
		}
		for _, r := range c.DoMulti(context.Background(), cmds...) {
			if err := r.Error(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
