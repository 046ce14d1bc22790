package exprengine

import (
	"bytes"
	"encoding/json"
	"fmt"

	"math/rand/v2"
	"os"
	osexec "os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
)

const (
	classicPath   = "../../../examples/classic/handler_module.expr"
	statelessPath = "../../../examples/stateless/handler_module.expr"
)

func compileFile(t testing.TB, path string) *Program {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(path, src, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeOutput(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("output %s: %v", b, err)
	}
	return m
}

var sampleCPUs = []float64{32.4, 15.1, 65.1, 7.2, 53.6, 36.6, 5.8, 50.7, 3.7, 43.4, 7.0, 9.1, 42.5, 82.7, 12.4, 22.3}

// TestClassicByHand checks the classic handler on the sample document against values worked
// out by hand, over two runs.
func TestClassicByHand(t *testing.T) {
	p := compileFile(t, classicPath)
	if !p.UsesState() {
		t.Error("the classic handler keeps state")
	}
	raw := sampleInput(t)
	in := mustDecode(t, string(raw))

	// Run 1. egress = 183412077 / (183412077 + 912334501) * 100 = 16.7385...% -> 16.74;
	// caching = (4123456000 + 412345000) / 16766464000 * 100 = 27.0528...% -> 27.05;
	// each average starts at the sample itself, so rounds to it; executions = 1.
	res, err := p.Run(exec.Call{Input: in, Env: map[string]any{}, Context: exec.Context{Trigger: "keyspace"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"avg-util-cpu0-60sec":32.4,"avg-util-cpu1-60sec":15.1,"avg-util-cpu10-60sec":7,"avg-util-cpu11-60sec":9.1,` +
		`"avg-util-cpu12-60sec":42.5,"avg-util-cpu13-60sec":82.7,"avg-util-cpu14-60sec":12.4,"avg-util-cpu15-60sec":22.3,` +
		`"avg-util-cpu2-60sec":65.1,"avg-util-cpu3-60sec":7.2,"avg-util-cpu4-60sec":53.6,"avg-util-cpu5-60sec":36.6,` +
		`"avg-util-cpu6-60sec":5.8,"avg-util-cpu7-60sec":50.7,"avg-util-cpu8-60sec":3.7,"avg-util-cpu9-60sec":43.4,` +
		`"executions":1,"percent_memory_caching":27.05,"percent_network_egress":16.74,"timestamp":1764085200.123456}`
	if string(res.Output) != want {
		t.Errorf("run 1 output:\n got %s\nwant %s", res.Output, want)
	}
	if !res.StateSet || len(res.EnvFields) != 17 || string(res.EnvFields.Map()["executions"]) != "1" {
		t.Fatalf("run 1 state: %v", res.EnvFields)
	}
	for i, cur := range sampleCPUs {
		// The env keeps the unrounded average, computed like the Python version (an
		// integral one, 7.0, is stored as 7 and comes back as an int).
		key := fmt.Sprintf("avg-util-cpu%d-60sec", i)
		got := res.Env[key]
		if n, ok := got.(int); ok {
			got = float64(n)
		}
		if want := (cur*59 + cur) / 60; got != want {
			t.Errorf("env %s = %v, want %v", key, got, want)
		}
	}

	// Run 2: cpu0 goes to 92.4, cpu1 to 75.1. avg0 = (32.4 * 59 + 92.4) / 60 = 2004 / 60 =
	// 33.4; avg1 = (15.1 * 59 + 75.1) / 60 = 966 / 60 = 16.1; the rest stay; executions = 2.
	in2 := mustDecode(t, strings.Replace(strings.Replace(string(raw), `"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`, 1),
		`"cpu_percent-1": 15.1`, `"cpu_percent-1": 75.1`, 1))
	res2, err := p.Run(exec.Call{Input: in2, Env: res.Env})
	if err != nil {
		t.Fatal(err)
	}
	out := decodeOutput(t, res2.Output)
	for key, want := range map[string]any{
		"avg-util-cpu0-60sec": 33.4, "avg-util-cpu1-60sec": 16.1, "avg-util-cpu2-60sec": 65.1,
		"avg-util-cpu15-60sec": 22.3, "executions": 2.0, "percent_network_egress": 16.74,
	} {
		if out[key] != want {
			t.Errorf("run 2 %s = %v, want %v", key, out[key], want)
		}
	}
	if string(res2.EnvFields.Map()["executions"]) != "2" {
		t.Errorf("run 2 executions field = %s", res2.EnvFields.Map()["executions"])
	}
}

// TestClassicCPUCount: like the Python loop, the handler takes cpu_percent-0, -1, ... up to
// the first one missing, whatever their number.
func TestClassicCPUCount(t *testing.T) {
	p := compileFile(t, classicPath)
	base := `"timestamp": 1, "net_io_counters_eth0-bytes_sent": 0, "net_io_counters_eth0-bytes_recv": 0, ` +
		`"virtual_memory-total": 100, "virtual_memory-cached": 10, "virtual_memory-buffers": 5`
	for _, tc := range []struct {
		cpus string
		want int
	}{
		{``, 0},
		{`, "cpu_percent-0": 1`, 1},
		{`, "cpu_percent-0": 1, "cpu_percent-1": 2, "cpu_percent-3": 4`, 2},
		{`, "cpu_percent-1": 2`, 0},
		{func() string {
			var b strings.Builder
			for i := range 64 {
				fmt.Fprintf(&b, `, "cpu_percent-%d": %d.5`, i, i)
			}
			return b.String()
		}(), 64},
	} {
		res, err := p.Run(exec.Call{Input: mustDecode(t, "{"+base+tc.cpus+"}"), Env: map[string]any{}})
		if err != nil {
			t.Fatalf("%d CPUs: %v", tc.want, err)
		}
		out := decodeOutput(t, res.Output)
		if len(out) != 4+tc.want || len(res.EnvFields) != 1+tc.want {
			t.Errorf("%d CPUs: output %s, env %d fields", tc.want, res.Output, len(res.EnvFields))
		}
		// sent + recv = 0: the egress share is 0, as in Python.
		if out["percent_network_egress"] != 0.0 || out["percent_memory_caching"] != 15.0 {
			t.Errorf("%d CPUs: %s", tc.want, res.Output)
		}
		if tc.want == 64 && out["avg-util-cpu63-60sec"] != 63.5 {
			t.Errorf("cpu63: %v", out["avg-util-cpu63-60sec"])
		}
	}
}

func TestStateless(t *testing.T) {
	p := compileFile(t, statelessPath)
	if p.UsesState() {
		t.Error("the stateless mapping must not use state")
	}
	res, err := p.Run(exec.Call{Input: mustDecode(t, string(sampleInput(t))), Env: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	// mean = (32.4 + 15.1 + ... + 22.3) / 16 = 489.6 / 16 = 30.6.
	want := `{"mean_cpu_percent":30.6,"percent_memory_caching":27.05,"percent_network_egress":16.74,"timestamp":1764085200.123456}`
	if string(res.Output) != want || res.StateSet {
		t.Errorf("got %s (state set %v), want %s", res.Output, res.StateSet, want)
	}
}

// TestClassicAgainstPython runs the course's Python handler and the expr one over the same
// sequence of documents and compares every output and state, exactly. Every third run, the
// expr handler's env goes through its stored JSON fields, as after a restart.
func TestClassicAgainstPython(t *testing.T) {
	python, err := osexec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	// The course's classic handler, as the repository ships it.
	const module = "../../../examples/python/usermodule.py"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("the shipped Python handler: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs []map[string]any
	for i := range 40 {
		doc := map[string]any{
			"timestamp":                       1764085200.0 + float64(i)*5.25,
			"net_io_counters_eth0-bytes_sent": rng.IntN(1 << 40),
			"net_io_counters_eth0-bytes_recv": rng.IntN(1 << 40),
			"virtual_memory-total":            1 + rng.IntN(1<<36),
			"virtual_memory-cached":           rng.IntN(1 << 34),
			"virtual_memory-buffers":          rng.IntN(1 << 30),
		}
		if i%7 == 3 {
			doc["net_io_counters_eth0-bytes_sent"], doc["net_io_counters_eth0-bytes_recv"] = 0, 0
		}
		ncpu := []int{16, 16, 2, 0, 31}[i%5]
		for c := range ncpu {
			// Two decimals, and exact ties for round(x, 2) now and then.
			v := float64(rng.IntN(10001)) / 100
			if c%5 == 0 {
				v = float64(rng.IntN(100)) + 0.125
			}
			doc[fmt.Sprintf("cpu_percent-%d", c)] = v
		}
		inputs = append(inputs, doc)
	}
	docs, _ := json.Marshal(inputs)
	script := `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("usermodule", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
class Context: pass
ctx = Context(); ctx.env = {}
out = []
for doc in json.load(sys.stdin):
    out.append([m.handler(doc, ctx), dict(ctx.env)])
json.dump(out, sys.stdout)
`
	cmd := osexec.Command(python, "-c", script, module)
	cmd.Stdin = bytes.NewReader(docs)
	pyOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var want [][2]map[string]any
	if err := json.Unmarshal(pyOut, &want); err != nil {
		t.Fatal(err)
	}

	p := compileFile(t, classicPath)
	env := map[string]any{}
	for i, doc := range inputs {
		raw, _ := json.Marshal(doc)
		res, err := p.Run(exec.Call{Input: mustDecode(t, string(raw)), Env: env})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if got := decodeOutput(t, res.Output); !reflect.DeepEqual(got, want[i][0]) {
			t.Errorf("run %d output:\n got %v\nwant %v", i, got, want[i][0])
		}
		gotEnv := map[string]any{}
		for k, v := range res.EnvFields.All() {
			var x any
			if err := json.Unmarshal(v, &x); err != nil {
				t.Fatal(err)
			}
			gotEnv[k] = x
		}
		if !reflect.DeepEqual(gotEnv, want[i][1]) {
			t.Errorf("run %d env:\n got %v\nwant %v", i, gotEnv, want[i][1])
		}
		env = res.Env
		if i%3 == 2 {
			fields := map[string]string{}
			for k, v := range res.EnvFields.All() {
				fields[k] = string(v)
			}
			if env, err = exec.DecodeEnv(fields); err != nil {
				t.Fatal(err)
			}
		}
	}
}
