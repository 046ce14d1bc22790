package exprengine

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/eventrt/eventrt/internal/cputime"
)

func benchProgram(b *testing.B, path string) *Program {
	b.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(path, src, DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// reportCPU adds cpu-ns/op: the process's user+system CPU time per iteration, GC included.
// On a shared machine it varies far less than ns/op, which also counts time spent waiting
// for a core. Call it right before the loop.
func reportCPU(b *testing.B) {
	b.Helper()
	start := cpuTime(b)
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		}
	})
}

func sampleInput(tb testing.TB) []byte {
	tb.Helper()
	raw, err := os.ReadFile("testdata/metrics-sample.json")
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// BenchmarkClassic is one execution of the classic handler as the runner and the stream
// consumer perform it: the program gets the input JSON (InputFor) and decodes it, runs with
// the env of the previous run, encodes output and env.
func BenchmarkClassic(b *testing.B) { benchClassic(b, false) }

// BenchmarkClassicEnvOnly is BenchmarkClassic as a stream batch runs every entry but its
// last: Call.EnvOnly, so the env is checked but its fields are not returned.
func BenchmarkClassicEnvOnly(b *testing.B) { benchClassic(b, true) }

func benchClassic(b *testing.B, envOnly bool) {
	p := benchProgram(b, "../../../examples/classic/handler_module.expr")
	raw := sampleInput(b)
	dec := codec.NewDecoder()
	env := map[string]any{}
	var bufs *exec.Buffers
	if !envOnly {
		bufs = new(exec.Buffers)
	}
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		in, err := exec.InputFor(p, raw, dec)
		if err != nil {
			b.Fatal(err)
		}
		// As the key-mode runner calls it: handing each run its env, and its buffers once
		// the last result is committed. A stream batch keeps its env and its outputs.
		if bufs != nil {
			bufs.Reset()
		}
		res, err := p.Run(exec.Call{Input: in, Env: env, EnvOwned: !envOnly, Buffers: bufs, EnvOnly: envOnly})
		if err != nil {
			b.Fatal(err)
		}
		env = res.Env
	}
}

// BenchmarkStateless is the stateless mapping used by the stream benchmarks.
func BenchmarkStateless(b *testing.B) {
	p := benchProgram(b, "../../../examples/stateless/handler_module.expr")
	raw := sampleInput(b)
	dec := codec.NewDecoder()
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		in, err := exec.InputFor(p, raw, dec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Run(exec.Call{Input: in, Env: map[string]any{}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInput(b *testing.B) {
	raw := sampleInput(b)
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		if _, err := exec.DecodeInput(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	raw := sampleInput(b)
	dec := codec.NewDecoder()
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		if _, err := dec.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	src, err := os.ReadFile("../../../examples/classic/handler_module.expr")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		if _, err := Compile("handler_module.expr", src, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStdlib is encoding/json on the same document, for comparison with
// BenchmarkDecodeInput and BenchmarkDecoder.
func BenchmarkDecodeStdlib(b *testing.B) {
	raw := sampleInput(b)
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClassicRunOnly is the classic handler's run (evaluation, output and env encoding)
// on an already decoded input.
func BenchmarkClassicRunOnly(b *testing.B) {
	p := benchProgram(b, "../../../examples/classic/handler_module.expr")
	in, err := exec.DecodeInput(sampleInput(b))
	if err != nil {
		b.Fatal(err)
	}
	env := map[string]any{}
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		res, err := p.Run(exec.Call{Input: in, Env: env})
		if err != nil {
			b.Fatal(err)
		}
		env = res.Env
	}
}

// BenchmarkClassicPlainExpr evaluates the same program with expr as it comes (map
// environment, no limits, no rewriting) and encodes nothing: the baseline the limits and
// the encoding are measured against.
func BenchmarkClassicPlainExpr(b *testing.B) {
	src, err := os.ReadFile("../../../examples/classic/handler_module.expr")
	if err != nil {
		b.Fatal(err)
	}
	in, err := exec.DecodeInput(sampleInput(b))
	if err != nil {
		b.Fatal(err)
	}
	lib := newLibrary(DefaultLimits())
	env := map[string]any{"input": in, "env": map[string]any{}}
	prog, err := expr.Compile(string(src), expr.Env(env),
		expr.Function("merge", lib.merge),
		expr.Function("result", func(a ...any) (any, error) { return result(a[0], a[1]), nil }),
		expr.Function("round", func(a ...any) (any, error) { return roundTo(a[0], a[1]), nil }))
	if err != nil {
		b.Fatal(err)
	}
	var machine vm.VM
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		out, err := machine.Run(prog, env)
		if err != nil {
			b.Fatal(err)
		}
		env["env"] = out.(*resultValue).env
	}
}

func cpuTime(b *testing.B) time.Duration {
	d, err := cputime.Self()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkClassicEval is the classic handler's evaluation alone (no decoding, no encoding),
// on the fast path and on expr's VM, interleaved.
func BenchmarkClassicEval(b *testing.B) {
	for _, mode := range []string{"fast", "vm", "fast", "vm"} {
		b.Run(mode, func(b *testing.B) {
			p := benchProgram(b, "../../../examples/classic/handler_module.expr")
			if mode == "vm" {
				p.fast = nil
			}
			in, _ := exec.DecodeInput(sampleInput(b))
			env := map[string]any{}
			b.ReportAllocs()
			for b.Loop() {
				st := p.pool.Get().(*runState)
				st.vars.Input, st.vars.Env, st.vars.Context = in, env, &st.ctx
				out, err := p.eval(st)
				if err != nil {
					b.Fatal(err)
				}
				_ = out
				p.pool.Put(st)
			}
		})
	}
}

// BenchmarkDecodeDocument is decoding the metrics document as a program given its input as
// JSON does (document.go), to compare with BenchmarkDecoder's map.
func BenchmarkDecodeDocument(b *testing.B) {
	raw := sampleInput(b)
	var in inputDecoder
	b.ReportAllocs()
	reportCPU(b)
	for b.Loop() {
		if _, err := in.decode(raw, true); err != nil {
			b.Fatal(err)
		}
	}
}
