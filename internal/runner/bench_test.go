package runner

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/cputime"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

// BenchmarkRunKey is one key-mode event on the runner's side, against a real redis-server: a
// new input value is SET, Notify is called (as the trigger does on its keyspace event), and
// the iteration ends when the run has committed. It covers what eventrt adds between the
// notification and the output (read, decode, evaluate, commit), not the notification itself.
// Compare sub-benchmarks interleaved (-count) on a shared machine; cpu-ns/op varies less.
func BenchmarkRunKey(b *testing.B) {
	srv := redistest.Start(b)
	raw, err := os.ReadFile("../../examples/classic/metrics-sample.json")
	if err != nil {
		b.Fatal(err)
	}
	runs := 0 // b.Run calls a sub-benchmark more than once: each call gets keys of its own
	handlers := []struct{ name, src string }{
		{"classic", ""},
		{"stateful", `result({timestamp: input.timestamp}, {n: (env.n ?? 0) + 1})`},
		{"stateless", `{timestamp: input.timestamp}`},
	}
	for _, hc := range handlers {
		for _, fenced := range []bool{true, false} {
			name := hc.name + "/lease=" + strconv.FormatBool(fenced)
			b.Run(name, func(b *testing.B) {
				src := []byte(hc.src)
				if hc.src == "" {
					if src, err = os.ReadFile("../../examples/classic/handler_module.expr"); err != nil {
						b.Fatal(err)
					}
				}
				p, err := exprengine.Compile("bench.expr", src, exprengine.DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				runs++
				benchRunKey(b, srv, name+"/"+strconv.Itoa(runs), p, fenced, raw)
			})
		}
	}
}

func benchRunKey(b *testing.B, srv *redistest.Server, name string, h exec.Handler, fenced bool, raw []byte) {
	c := srv.Client()
	in, out, stateKey := "{"+name+"}:in", "{"+name+"}:out", "{"+name+"}:env"
	st, err := state.New(state.Options{Client: c, StateKey: stateKey, OutputKey: out})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ls *lease.Lease
	if fenced {
		if ls, err = lease.New(lease.Options{Client: c, Key: state.LeaseKey(stateKey), FenceKey: state.FenceKey(stateKey)}); err != nil {
			b.Fatal(err)
		}
		if ok, err := ls.Acquire(ctx); err != nil || !ok {
			b.Fatalf("acquire the lease: %v %v", ok, err)
		}
		leaseDone := make(chan error, 1)
		go func() { leaseDone <- ls.Run(ctx) }()
		defer func() { cancel(); <-leaseDone }()
	}
	outcomes := make(chan string, 1)
	r, err := New(Options{Name: name, Client: c, Store: st, InputKey: in, OutputKey: out, Lease: ls,
		Metrics: metrics.New().Function(name),
		Observe: func(_ trigger.Kind, o string) { outcomes <- o }}, exec.Version{Handler: h, Runtime: "expr"})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Load(ctx); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if fenced {
		// The lease was acquired before Run: its change signal starts with a catch-up run.
		if o := <-outcomes; o != "skipped:missing" {
			b.Fatalf("catch-up: %s", o)
		}
	}
	docs := make([][]byte, 64)
	for i := range docs {
		docs[i] = []byte(string(raw[:len(raw)-2]) + `, "n": ` + strconv.Itoa(i) + "}\n")
	}
	b.ReportAllocs()
	cpu0, redis0 := cpuTime(b), redisCPU(b, srv)
	i := 0
	for b.Loop() {
		i++
		// Consecutive values differ, so no run is skipped as unchanged.
		if err := c.Do(ctx, c.B().Set().Key(in).Value(string(docs[i%len(docs)])).Build()).Error(); err != nil {
			b.Fatal(err)
		}
		r.Notify(trigger.KindKeyspace)
		select {
		case o := <-outcomes:
			if o != metrics.OutcomeSuccess {
				b.Fatalf("run %d: %s", i, o)
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("run %d: no outcome", i)
		}
	}
	// CPU time varies far less than wall time on a shared machine: this process's (the
	// runner and the client SETting the input), and redis-server's.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(redisCPU(b, srv)-redis0)/float64(b.N), "redis-cpu-ns/op")
}

// redisCPU is the CPU time redis-server has used (INFO cpu: used_cpu_sys + used_cpu_user).
func redisCPU(b *testing.B, srv *redistest.Server) time.Duration {
	c := srv.Client()
	info, err := c.Do(context.Background(), c.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			s, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu %s: %v", k, err)
			}
			total += time.Duration(s * float64(time.Second))
		}
	}
	return total
}

func cpuTime(b *testing.B) time.Duration {
	d, err := cputime.Self()
	if err != nil {
		b.Fatal(err)
	}
	return d
}
