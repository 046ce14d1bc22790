package exprengine

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// handClassic is the classic handler written in Go: the same input, the same env and output
// maps, the same Python rounding.
func handClassic(input any, env map[string]any) (any, map[string]any) {
	in := input.(map[string]any)
	num := func(v any) float64 {
		switch x := v.(type) {
		case int:
			return float64(x)
		case float64:
			return x
		}
		return 0
	}
	sent, recv := num(in["net_io_counters_eth0-bytes_sent"]), num(in["net_io_counters_eth0-bytes_recv"])
	egress := 0.0
	if sent+recv != 0 {
		egress = roundDigits(sent/(sent+recv)*100, 2)
	}
	caching := roundDigits((num(in["virtual_memory-cached"])+num(in["virtual_memory-buffers"]))/num(in["virtual_memory-total"])*100, 2)
	ncpu := 0
	for ; ; ncpu++ {
		if _, ok := in["cpu_percent-"+strconv.Itoa(ncpu)]; !ok {
			break
		}
	}
	execs := 1
	if e, ok := env["executions"].(int); ok {
		execs = e + 1
	}
	out := map[string]any{"timestamp": in["timestamp"], "percent_network_egress": egress, "percent_memory_caching": caching, "executions": execs}
	nenv := make(map[string]any, ncpu+1)
	for k, v := range env {
		nenv[k] = v
	}
	for i := 0; i < ncpu; i++ {
		cur := num(in["cpu_percent-"+strconv.Itoa(i)])
		key := "avg-util-cpu" + strconv.Itoa(i) + "-60sec"
		prev := cur
		if p, ok := env[key]; ok && p != nil {
			prev = num(p)
		}
		avg := (prev*59 + cur) / 60
		out[key] = roundDigits(avg, 2)
		nenv[key] = avg
	}
	nenv["executions"] = execs
	return out, nenv
}

// TestHandWrittenLikeClassic: handClassic computes what the classic handler does, so that
// the benchmarks below compare like with like.
func TestHandWrittenLikeClassic(t *testing.T) {
	p := compileFile(t, classicPath)
	in, err := exec.DecodeInput(sampleInput(t))
	if err != nil {
		t.Fatal(err)
	}
	env, handEnv := map[string]any{}, map[string]any{}
	for range 3 {
		res, err := p.Run(exec.Call{Input: in, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		var out any
		out, handEnv = handClassic(in, handEnv)
		var e codec.Encoder
		e.Reset("output", 1<<20, false)
		if err := e.Encode(out); err != nil {
			t.Fatal(err)
		}
		if string(e.Bytes()) != string(res.Output) {
			t.Fatalf("by hand %s\nhandler %s", e.Bytes(), res.Output)
		}
		handFields, err := exec.EnvFields(handEnv)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(handFields.Map(), res.EnvFields.Map()) {
			t.Fatalf("env by hand %s\nhandler %s", handFields, res.EnvFields)
		}
		env = res.Env
	}
}

// BenchmarkClassicHandWritten is BenchmarkClassic with the handler written in Go instead of
// evaluated: the same decoder and encoder, the same maps in and out. No evaluator of this data
// model can do better; it shows how much of BenchmarkClassic is decoding and encoding.
func BenchmarkClassicHandWritten(b *testing.B) {
	raw := sampleInput(b)
	dec := codec.NewDecoder()
	env := map[string]any{}
	var e codec.Encoder
	b.ReportAllocs()
	for b.Loop() {
		in, err := dec.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		out, nenv := handClassic(in, env)
		e.Reset("output", 1<<20, false)
		if err := e.Encode(out); err != nil {
			b.Fatal(err)
		}
		e.Reset("env", 1<<20, false)
		if _, err := e.AppendFields(nenv, nil); err != nil {
			b.Fatal(err)
		}
		env = nenv
	}
}

// BenchmarkClassicHandWrittenEval is handClassic alone, to compare with BenchmarkClassicEval.
func BenchmarkClassicHandWrittenEval(b *testing.B) {
	in, _ := exec.DecodeInput(sampleInput(b))
	env := map[string]any{}
	b.ReportAllocs()
	for b.Loop() {
		_, nenv := handClassic(in, env)
		env = nenv
	}
}
