//go:build linux

package pyengine

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/exec"
)

const classicFile = "../../../examples/python/usermodule.py"

// sampleInputs returns the metrics sample and a second sample with cpu0 and cpu3 moved, as raw
// JSON documents.
func sampleInputs(t testing.TB) (json.RawMessage, json.RawMessage) {
	t.Helper()
	raw, err := os.ReadFile("testdata/metrics-sample.json") // a copy of shared/testdata's
	if err != nil {
		t.Fatalf("metrics sample: %v", err)
	}
	second := strings.NewReplacer(
		`"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`,
		`"cpu_percent-3": 7.2`, `"cpu_percent-3": 67.2`,
		`"timestamp": 1764085200.123456`, `"timestamp": 1764085205.5`,
	).Replace(string(raw))
	if second == string(raw) {
		t.Fatal("the sample changed shape: the second input could not be derived")
	}
	return raw, json.RawMessage(second)
}

// decodeMap decodes a JSON object as the runner does (exec.DecodeInput: ints stay ints).
func decodeMap(t testing.TB, raw []byte) map[string]any {
	t.Helper()
	m, ok := decodeInput(t, raw).(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object", raw)
	}
	return m
}

func decodeInput(t testing.TB, raw []byte) any {
	t.Helper()
	v, err := exec.DecodeInput(raw)
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// TestClassicHandler runs the course handler, unchanged, over two inputs and checks its outputs
// against values worked out by hand, and its bytes against the course runtime's json.dumps
// (with compact separators, as the engine writes).
func TestClassicHandler(t *testing.T) {
	first, second := sampleInputs(t)
	for _, form := range []string{"map", "raw"} {
		t.Run(form, func(t *testing.T) {
			e, _ := startEngine(t, "", Options{File: classicFile})
			in1, in2 := any(first), any(second)
			if form == "map" { // what the runner passes: exec.DecodeInput's value
				in1, in2 = decodeInput(t, first), decodeInput(t, second)
			}
			r1 := mustRun(t, e, in1, nil)
			r2 := mustRun(t, e, in2, r1.Env)

			out1, out2 := decodeMap(t, r1.Output), decodeMap(t, r2.Output)
			// By hand: 183412077/(183412077+912334501) = 16.7385%; (4123456000+412345000)/
			// 16766464000 = 27.0528%; run 2: cpu0 (32.4*59+92.4)/60 = 33.4, cpu3 (7.2*59+67.2)/60 = 8.2.
			want1 := map[string]float64{"timestamp": 1764085200.123456, "percent_network_egress": 16.74,
				"percent_memory_caching": 27.05, "avg-util-cpu0-60sec": 32.4, "avg-util-cpu3-60sec": 7.2,
				"avg-util-cpu10-60sec": 7.0, "avg-util-cpu15-60sec": 22.3, "executions": 1}
			want2 := map[string]float64{"timestamp": 1764085205.5, "percent_network_egress": 16.74,
				"percent_memory_caching": 27.05, "avg-util-cpu0-60sec": 33.4, "avg-util-cpu3-60sec": 8.2,
				"avg-util-cpu10-60sec": 7.0, "avg-util-cpu15-60sec": 22.3, "executions": 2}
			for _, c := range []struct {
				got  map[string]any
				want map[string]float64
			}{{out1, want1}, {out2, want2}} {
				if len(c.got) != 3+16+1 {
					t.Errorf("output has %d keys, want 20: %v", len(c.got), c.got)
				}
				for k, v := range c.want {
					got := c.got[k]
					if i, ok := got.(int); ok && k == "executions" { // an int, as in Python
						got = float64(i)
					}
					if got != v {
						t.Errorf("output[%q] = %#v, want %v", k, c.got[k], v)
					}
				}
			}
			if !r1.StateSet || !r2.StateSet {
				t.Fatal("the handler changed context.env but StateSet is false")
			}
			// What the runner exports as output metrics.
			if top := maps.Collect(exec.TopLevel(r2.Value)); len(top) != 20 || top["percent_network_egress"] != 16.74 {
				t.Errorf("the output's top-level fields: %v", top)
			}
			if got := r2.Env["avg-util-cpu0-60sec"].(float64); math.Abs(got-33.4) > 1e-9 {
				t.Errorf("env cpu0 average = %v, want 33.4", got)
			}
			if got := string(r2.EnvFields.Map()["executions"]); got != "2" {
				t.Errorf("EnvFields.Map()[executions] = %q, want 2", got)
			}
			if len(r2.Env) != 17 || len(r2.EnvFields) != 17 {
				t.Errorf("env has %d values and %d fields, want 17", len(r2.Env), len(r2.EnvFields))
			}
			fields := map[string]string{}
			for k, v := range r2.EnvFields.All() {
				fields[k] = string(v)
			}
			if env, err := exec.DecodeEnv(fields); err != nil || !reflect.DeepEqual(env, r2.Env) {
				t.Errorf("EnvFields %v do not decode to Env %v: %v", fields, r2.Env, err)
			}
			if r2.Env["executions"] != 2 {
				t.Errorf("Env[executions] = %#v, want the int 2", r2.Env["executions"])
			}

			// The course runtime: the same handler, json.loads of each input, json.dumps of each
			// output, context.env kept in memory.
			legacy := pythonOutput(t, `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("usermodule", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
class C: pass
c = C(); c.env = {}
for line in sys.stdin:
    print(json.dumps(m.handler(json.loads(line), c), separators=(",", ":")))
`, []byte(compact(t, first)+"\n"+compact(t, second)+"\n"), classicFile)
			want := strings.Split(strings.TrimSpace(string(legacy)), "\n")
			if string(r1.Output) != want[0] || string(r2.Output) != want[1] {
				t.Errorf("outputs differ from the course runtime's:\n got %s\n     %s\nwant %s\n     %s", r1.Output, r2.Output, want[0], want[1])
			}
		})
	}
}

// compact puts a JSON document on one line, keeping its key order.
func compact(t testing.TB, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestStateSurvivesEngineRestart: env is the only state that matters between runs: a new engine
// given the env the runner stored (as the Redis hash fields) carries on where the old one stopped.
func TestStateSurvivesEngineRestart(t *testing.T) {
	first, second := sampleInputs(t)
	e1, _ := startEngine(t, "", Options{File: classicFile})
	r1 := mustRun(t, e1, first, nil)
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{} // what a restarted eventrt loads: HGETALL, json per field
	for k, v := range r1.EnvFields.All() {
		fields[k] = string(v)
	}
	stored, err := exec.DecodeEnv(fields)
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := startEngine(t, "", Options{File: classicFile})
	r2 := mustRun(t, e2, second, stored)
	out := decodeMap(t, r2.Output)
	if out["executions"] != 2 || out["avg-util-cpu0-60sec"] != 33.4 {
		t.Errorf("after a restart: executions %v, cpu0 %v; want 2 and 33.4", out["executions"], out["avg-util-cpu0-60sec"])
	}
}

const modesHandler = `
import datetime, enum, os, signal, sys, time

class F(float):
    pass

class Level(enum.IntEnum):
    HIGH = 3

def handler(input, context):
    mode = input.get("mode")
    if mode == "raise":
        return 1 / 0
    if mode == "loop":
        while True:
            pass
    if mode == "exit":
        sys.exit(3)
    if mode == "_exit":
        os._exit(7)
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(5)
    if mode == "set":
        return {"s": {1, 2}}
    if mode == "nan":
        return {"cpu": [1.0, float("nan")]}
    if mode == "object":
        return object()
    if mode == "bytes":
        return {"b": b"x"}
    if mode == "env-datetime":
        context.env["when"] = datetime.datetime.now()
        return {"ok": 1}
    if mode == "env-nan":
        context.env["n"] = float("inf")
        return {"ok": 1}
    if mode == "env-key":
        context.env[1] = 2
        return {"ok": 1}
    if mode == "env-list":
        context.env = [1]
        return {"ok": 1}
    if mode == "subclass":
        context.env["lvl"] = Level.HIGH
        return {"f": F(1.5), "level": Level.HIGH}
    if mode == "big":
        return "x" * 4096
    if mode == "memory":
        return len(bytearray(3 << 30))
    if mode == "print":
        print("hello from", input["n"])
        print("to stderr", file=sys.stderr)
        return {"printed": True}
    context.env["runs"] = context.env.get("runs", 0) + 1
    return {"pid": os.getpid(), "runs": context.env["runs"]}
`

func pidOf(t testing.TB, res exec.Result) int {
	t.Helper()
	var out struct{ Pid int }
	if err := json.Unmarshal(res.Output, &out); err != nil || out.Pid == 0 {
		t.Fatalf("no pid in output %s: %v", res.Output, err)
	}
	return out.Pid
}

func TestHandlerRaises(t *testing.T) {
	e, rs := startEngine(t, modesHandler, Options{})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	_, err := run(t, e, map[string]any{"mode": "raise"}, nil)
	line := slices.Index(strings.Split(modesHandler, "\n"), "        return 1 / 0") + 1
	wantKind(t, err, exec.KindHandler, "ZeroDivisionError: division by zero", fmt.Sprintf("(handler.py:%d in handler)", line))
	if IsWorker(err) {
		t.Errorf("an exception is not a worker failure: %v", err)
	}
	if got := pidOf(t, mustRun(t, e, map[string]any{}, nil)); got != pid {
		t.Errorf("the worker was replaced (pid %d -> %d) after a plain exception", pid, got)
	}
	if r := rs.get(); len(r) != 0 {
		t.Errorf("restarts %v after an exception, want none", r)
	}
}

func TestTimeoutKillsAndRestarts(t *testing.T) {
	e, rs := startEngine(t, modesHandler, Options{Timeout: 300 * time.Millisecond})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	_, err := e.Run(exec.Call{Input: map[string]any{"mode": "loop"}, Env: map[string]any{}})
	wantKind(t, err, exec.KindTimeout, "handler.handler")
	if !exec.IsTimeout(err) {
		t.Errorf("IsTimeout(%v) = false", err)
	}
	waitGone(t, pid)
	res := mustRun(t, e, map[string]any{}, map[string]any{"runs": 41})
	if got := pidOf(t, res); got == pid {
		t.Error("the looping worker was not replaced")
	}
	if string(res.EnvFields.Map()["runs"]) != "42" {
		t.Errorf("after the restart env runs = %s, want 42 (env comes from the call)", res.EnvFields.Map()["runs"])
	}
	if r := rs.get(); !slices.Equal(r, []string{ReasonTimeout}) {
		t.Errorf("restarts %v, want [timeout]", r)
	}
}

// TestSlowRestart: the time a run waits for a replacement worker to start (here, an import that
// takes longer than the timeout) does not count against its deadline.
func TestSlowRestart(t *testing.T) {
	e, rs := startEngine(t, `
import time
time.sleep(0.6)
def handler(input, context):
    while input.get("loop"):
        pass
    return {"ok": True}
`, Options{Timeout: 300 * time.Millisecond})
	_, err := e.Run(exec.Call{Input: map[string]any{"loop": true}, Env: map[string]any{}})
	wantKind(t, err, exec.KindTimeout)
	res, err := e.Run(exec.Call{Input: map[string]any{}, Env: map[string]any{}})
	if err != nil || string(res.Output) != `{"ok":true}` {
		t.Fatalf("the run after a timeout: %s, %v; want it to wait for the new worker", res.Output, err)
	}
	if r := rs.get(); !slices.Equal(r, []string{ReasonTimeout}) {
		t.Errorf("restarts %v, want [timeout]", r)
	}
}

// TestTimeoutKillsChildren: a timeout kills the worker's whole process group, so a process the
// handler started does not outlive it.
func TestTimeoutKillsChildren(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	e, _ := startEngine(t, fmt.Sprintf(`
import subprocess
def handler(input, context):
    p = subprocess.Popen(["sleep", "1000"])
    with open(%q, "w") as f:
        f.write(str(p.pid))
    while True:
        pass
`, pidFile), Options{Timeout: 1500 * time.Millisecond}) // room to start the child on a busy machine
	_, err := e.Run(exec.Call{Input: map[string]any{}, Env: map[string]any{}}) // Options.Timeout applies
	wantKind(t, err, exec.KindTimeout)
	raw, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatalf("the handler did not record its child: %v", rerr)
	}
	child, _ := strconv.Atoi(string(raw))
	waitGone(t, child)
}

func TestExitAndCrash(t *testing.T) {
	logs := newLogRecorder()
	e, rs := startEngine(t, modesHandler, Options{Logger: slog.New(logs)})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))

	_, err := run(t, e, map[string]any{"mode": "exit"}, nil)
	wantKind(t, err, exec.KindHandler, "SystemExit: 3")
	if got := pidOf(t, mustRun(t, e, map[string]any{}, nil)); got != pid {
		t.Errorf("sys.exit replaced the worker (pid %d -> %d): SystemExit is an exception like any other", pid, got)
	}

	_, err = run(t, e, map[string]any{"mode": "_exit"}, nil)
	wantKind(t, err, exec.KindHandler, "exit status 7")
	if !IsWorker(err) {
		t.Errorf("IsWorker(%v) = false for os._exit", err)
	}
	pid2 := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	if pid2 == pid {
		t.Error("os._exit: the worker was not replaced")
	}

	_, err = run(t, e, map[string]any{"mode": "segv"}, nil)
	wantKind(t, err, exec.KindHandler, "segmentation fault")
	logs.waitRecord(t, "Fatal Python error: Segmentation fault") // faulthandler, on stderr
	if pid3 := pidOf(t, mustRun(t, e, map[string]any{}, nil)); pid3 == pid2 {
		t.Error("SIGSEGV: the worker was not replaced")
	}
	if r := rs.get(); !slices.Equal(r, []string{ReasonCrash, ReasonCrash}) {
		t.Errorf("restarts %v, want [crash crash]", r)
	}
}

func TestNonJSONValues(t *testing.T) {
	e, _ := startEngine(t, modesHandler, Options{MaxOutputBytes: 1000})
	for _, c := range []struct {
		mode  string
		kind  exec.Kind
		parts []string
	}{
		{"set", exec.KindOutput, []string{`output["s"]: set is not JSON serializable`}},
		{"nan", exec.KindOutput, []string{`output["cpu"][1]: nan is not JSON compliant`}},
		{"object", exec.KindOutput, []string{"output: object is not JSON serializable"}},
		{"bytes", exec.KindOutput, []string{`output["b"]: bytes is not JSON serializable`}},
		{"env-datetime", exec.KindOutput, []string{`context.env["when"]: datetime is not JSON serializable`}},
		{"env-nan", exec.KindOutput, []string{`context.env["n"]: inf is not JSON compliant`}},
		{"env-key", exec.KindOutput, []string{"context.env key 1 is a int: state keys must be strings"}},
		{"env-list", exec.KindOutput, []string{"context.env must be a dict, not list"}},
		{"big", exec.KindOutput, []string{"4098 bytes", "limit of 1000"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			_, err := run(t, e, map[string]any{"mode": c.mode}, map[string]any{"runs": 1})
			wantKind(t, err, c.kind, c.parts...)
			res := mustRun(t, e, map[string]any{}, map[string]any{"runs": 1})
			if string(res.EnvFields.Map()["runs"]) != "2" {
				t.Errorf("the next run saw env runs=%s, want 2: a failed run must not leak its env", res.EnvFields.Map()["runs"])
			}
		})
	}
	// json.dumps accepts float and int subclasses (numpy.float64, IntEnum): so does the engine.
	res := mustRun(t, e, map[string]any{"mode": "subclass"}, map[string]any{"runs": 1})
	if string(res.Output) != `{"f":1.5,"level":3}` {
		t.Errorf("subclass output = %s, want json.dumps' {\"f\":1.5,\"level\":3}", res.Output)
	}
	if !res.StateSet || res.Env["lvl"] != 3 || string(res.EnvFields.Map()["lvl"]) != "3" || res.Env["runs"] != 1 {
		t.Errorf("subclass env: %v %q; want lvl the int 3 (json fallback keeps ints)", res.Env, res.EnvFields)
	}
}

func TestPrintIsLogged(t *testing.T) {
	logs := newLogRecorder()
	e, _ := startEngine(t, modesHandler, Options{Logger: slog.New(logs), Name: "metrics.classic"})
	res := mustRun(t, e, map[string]any{"mode": "print", "n": 1}, nil)
	if string(res.Output) != `{"printed":true}` {
		t.Errorf("output %s: print() output leaked into the protocol?", res.Output)
	}
	r := logs.waitRecord(t, "hello from 1")
	if a := attrs(r); a["function"] != "metrics.classic" || a["stream"] != "stdout" || r.Level.String() != "INFO" {
		t.Errorf("stdout record: level %v attrs %v", r.Level, a)
	}
	r = logs.waitRecord(t, "to stderr")
	if a := attrs(r); a["function"] != "metrics.classic" || a["stream"] != "stderr" || r.Level.String() != "WARN" {
		t.Errorf("stderr record: level %v attrs %v", r.Level, a)
	}
}

func TestMemoryLimit(t *testing.T) {
	e, rs := startEngine(t, modesHandler, Options{MemoryLimit: 1 << 30})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	_, err := run(t, e, map[string]any{"mode": "memory"}, nil)
	wantKind(t, err, exec.KindHandler, "MemoryError", "limit 1073741824 bytes")
	if got := pidOf(t, mustRun(t, e, map[string]any{}, nil)); got == pid {
		t.Error("the worker that ran out of memory was not replaced")
	}
	if r := rs.get(); !slices.Equal(r, []string{ReasonMemory}) {
		t.Errorf("restarts %v, want [memory]", r)
	}
}

// TestFalsyOutputKeepsEnv: a falsy return writes nothing, but env changes are kept, as the
// course runtime kept them in memory.
func TestFalsyOutputKeepsEnv(t *testing.T) {
	e, _ := startEngine(t, `
def handler(input, context):
    if input.get("count"):
        context.env["n"] = context.env.get("n", 0) + 1
    return input.get("ret")
`, Options{})
	for _, ret := range []any{nil, false, 0, 0.0, "", []any{}, map[string]any{}} {
		res := mustRun(t, e, map[string]any{"count": true, "ret": ret}, map[string]any{"n": 4})
		if res.Output != nil || !res.StateSet || res.Env["n"] != 5 || string(res.EnvFields.Map()["n"]) != "5" {
			t.Errorf("return %#v: output %s, StateSet %v, env %v; want no output and n=5", ret, res.Output, res.StateSet, res.Env)
		}
		res = mustRun(t, e, map[string]any{"ret": ret}, map[string]any{"n": 4})
		if res.Output != nil || res.StateSet || res.Env != nil || res.EnvFields != nil {
			t.Errorf("return %#v, env untouched: %+v; want an empty result", ret, res)
		}
	}
}

// TestEnvUnchanged: an env the handler only reads is not reported as set, whatever it holds.
func TestEnvUnchanged(t *testing.T) {
	e, _ := startEngine(t, `
def handler(input, context):
    return {"keys": sorted(context.env), "i": context.env["i"], "big": context.env["big"],
            "fi": context.env["fi"]}
`, Options{})
	env := map[string]any{
		"f": 45.6, "i": 3, "big": int64(1e18), "neg": -5e10, "huge": 1e300, "tiny": 5e-324, "fi": 45.0,
		"s": "héllo \u2028 \U0001F600", "l": []any{1.0, "x", nil, true, false}, "m": map[string]any{"k": 2.5, "z": map[string]any{}},
		"n": json.Number("12345678901234567890123"), "nf": json.Number("1.0"),
	}
	res := mustRun(t, e, map[string]any{}, env)
	if res.StateSet {
		t.Errorf("StateSet with an untouched env: %v", res.Env)
	}
	if want := `{"keys":["big","f","fi","huge","i","l","m","n","neg","nf","s","tiny"],"i":3,"big":1000000000000000000,"fi":45.0}`; string(res.Output) != want {
		t.Errorf("output %s, want %s", res.Output, want)
	}
}

func TestContext(t *testing.T) {
	e, _ := startEngine(t, `
def handler(input, context):
    seen = getattr(context, "seen", 0)
    context.seen = seen + 1
    le = context.last_execution
    return {"host": context.host, "port": context.port, "input_key": context.input_key,
            "output_key": context.output_key, "function_getmtime": context.function_getmtime,
            "last_execution": le.isoformat() if le else le, "trigger": context.trigger,
            "entry_id": context.entry_id, "function": context.function, "seen": seen,
            "env": context.env}
`, Options{})
	last := time.Date(2026, 11, 1, 12, 30, 15, 250000000, time.UTC)
	ctx := exec.Context{Host: "redis", Port: 6380, InputKey: "metrics", OutputKey: "out",
		FunctionGetmtime: "2026-11-01 10:00:00", LastExecution: &last, Trigger: "stream",
		EntryID: "1-2", Function: "usermodule.handler"}
	res, err := e.Run(exec.Call{Input: map[string]any{}, Env: map[string]any{"a": 1, "b": 1.0}, Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"host":"redis","port":6380,"input_key":"metrics","output_key":"out",`+
		`"function_getmtime":"2026-11-01 10:00:00","last_execution":%q,"trigger":"stream",`+
		`"entry_id":"1-2","function":"usermodule.handler","seen":0,"env":{"a":1,"b":1.0}}`,
		last.Local().Format("2006-01-02T15:04:05.000000"))
	if string(res.Output) != want {
		t.Errorf("context\n got %s\nwant %s", res.Output, want)
	}
	// The context object lives as long as the worker, as in the course runtime; last_execution
	// is None on a first run.
	res = mustRun(t, e, map[string]any{}, nil)
	out := decodeMap(t, res.Output)
	if out["seen"] != 1 || out["last_execution"] != nil {
		t.Errorf("second run: seen %v, last_execution %v; want 1 and null", out["seen"], out["last_execution"])
	}
}

func TestImportErrors(t *testing.T) {
	py := pythonPath(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name, src, function string
		want                ImportError
	}{
		{"syntax", "def handler(input, context)\n    return 1\n", "",
			ImportError{File: "syntax.py", Line: 1, Column: 28, Message: "SyntaxError: expected ':'", Snippet: "def handler(input, context)"}},
		{"raises", "import os\nx = 1\nraise ValueError('bad config')\n", "",
			ImportError{File: "raises.py", Line: 3, Message: "ValueError: bad config", Snippet: "raise ValueError('bad config')"}},
		{"missing", "def other(input, context):\n    pass\n", "usermodule.handler",
			ImportError{File: "missing.py", Message: "LookupError: missing.py has no function handler (it defines: other)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeFile(t, dir, c.name+".py", c.src)
			_, err := Start(context.Background(), Options{Python: py, File: file, Function: c.function})
			var ie *ImportError
			if !errors.As(err, &ie) || !IsImport(err) {
				t.Fatalf("want an *ImportError, got %v", err)
			}
			ie.Traceback = ""
			if *ie != c.want {
				t.Errorf("\n got %+v\nwant %+v", *ie, c.want)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d", c.want.File, c.want.Line)) && c.want.Line > 0 {
				t.Errorf("message %q does not start with file:line", err)
			}
		})
	}
	t.Run("bundle module", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, root, "pkg/__init__.py", "")
		_, err := Start(context.Background(), Options{Python: py, File: root, Function: "pkg.nope.handler"})
		if !IsImport(err) || !strings.Contains(err.Error(), "No module named 'pkg.nope'") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no python", func(t *testing.T) {
		_, err := Start(context.Background(), Options{Python: "/nonexistent/python3", File: classicFile})
		if !IsNoPython(err) || !strings.Contains(err.Error(), "/nonexistent/python3") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("not python", func(t *testing.T) {
		_, err := Start(context.Background(), Options{Python: "false", File: classicFile})
		if !IsWorker(err) || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no file", func(t *testing.T) {
		_, err := Start(context.Background(), Options{Python: py, File: filepath.Join(dir, "absent.py")})
		if err == nil || !strings.Contains(err.Error(), "absent.py") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad function", func(t *testing.T) {
		_, err := Start(context.Background(), Options{Python: py, File: dir, Function: "handler"})
		if err == nil || !strings.Contains(err.Error(), "want module.function") {
			t.Errorf("got %v", err)
		}
	})
}

// bundleFiles is a small bundle: a package with a relative import and a top-level module, as
// the course runtime's successor shipped them in a zip.
var bundleFiles = map[string]string{
	"handler_module.py":   "from metrics.egress import egress\n\ndef handler(input, context):\n    return {\"egress\": egress(input)}\n",
	"metrics/__init__.py": "",
	"metrics/egress.py":   "from .util import pct\n\ndef egress(i):\n    return pct(i['sent'], i['sent'] + i['recv'])\n",
	"metrics/util.py":     "def pct(a, b):\n    return round(a / b * 100, 2)\n",
	"metrics/cpu.py":      "def mean(input, context):\n    return {\"mean\": sum(input['cpus']) / len(input['cpus'])}\n",
}

func TestBundleDirectory(t *testing.T) {
	root := t.TempDir()
	for name, src := range bundleFiles {
		writeFile(t, root, name, src)
	}
	e, _ := startEngine(t, "", Options{File: root}) // default handler_module.handler
	if got := mustRun(t, e, map[string]any{"sent": 1, "recv": 3}, nil); string(got.Output) != `{"egress":25.0}` {
		t.Errorf("handler_module.handler: %s", got.Output)
	}
	e2, _ := startEngine(t, "", Options{File: root, Function: "metrics.cpu.mean"})
	if got := mustRun(t, e2, map[string]any{"cpus": []any{1, 2}}, nil); string(got.Output) != `{"mean":1.5}` {
		t.Errorf("metrics.cpu.mean: %s", got.Output)
	}
	if e.Hash() == e2.Hash() {
		t.Error("two functions of one bundle have the same hash")
	}
}

func TestBundleZip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, src := range bundleFiles {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(src)); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	e, _ := startEngine(t, "", Options{File: path, Function: "metrics.cpu.mean"})
	if got := mustRun(t, e, map[string]any{"cpus": []any{2, 4}}, nil); string(got.Output) != `{"mean":3.0}` {
		t.Errorf("zip bundle: %s", got.Output)
	}
}

func TestHash(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.py", "def handler(i, c):\n    return 1\n")
	b := writeFile(t, dir, "b.py", "def handler(i, c):\n    return 1\n")
	c := writeFile(t, dir, "c.py", "def handler(i, c):\n    return 2\n")
	hash := func(file, fn string) string {
		o, s, err := resolve(Options{File: file, Function: fn})
		if err != nil {
			t.Fatal(err)
		}
		h, err := hashHandler(s, o.Function)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if ha := hash(a, ""); len(ha) != 16 || ha != hash(b, "handler") || ha == hash(c, "") || ha == hash(a, "other") {
		t.Errorf("hashes: a %s b %s c %s a.other %s", ha, hash(b, ""), hash(c, ""), hash(a, "other"))
	}
}

// TestSingleFileIsSnapshot: a restarted worker runs the version that was hashed at Start, not
// whatever the file holds by then (reloading is the caller's decision).
func TestSingleFileIsSnapshot(t *testing.T) {
	file := writeFile(t, t.TempDir(), "h.py", "import os\ndef handler(i, c):\n    if i.get('die'):\n        os._exit(1)\n    return {'v': 1}\n")
	e, _ := startEngine(t, "", Options{File: file})
	if err := os.WriteFile(file, []byte("def handler(i, c):\n    return {'v': 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, e, map[string]any{"die": true}, nil)
	wantKind(t, err, exec.KindHandler)
	if res := mustRun(t, e, map[string]any{}, nil); string(res.Output) != `{"v":1}` {
		t.Errorf("after a restart the worker runs %s, want the original version's {\"v\":1}", res.Output)
	}
}

// TestRestartBackoff: consecutive crashes delay the next restart (on the engine's clock); a
// completed run resets the delay.
func TestRestartBackoff(t *testing.T) {
	fake := clock.NewFake(time.Unix(0, 0))
	e, rs := startEngine(t, modesHandler, Options{Clock: fake, RestartBackoff: time.Second, MaxRestartBackoff: 4 * time.Second})
	crash := func() {
		t.Helper()
		_, err := run(t, e, map[string]any{"mode": "_exit"}, nil)
		wantKind(t, err, exec.KindHandler, "exit status 7")
	}
	crash()
	crash() // the first restart is immediate: this run reached a fresh worker
	select {
	case <-fake.Registered: // the second restart waits a second on the clock
	case <-time.After(10 * time.Second):
		t.Fatal("the second restart did not wait on the clock")
	}
	_, err := e.Run(exec.Call{Input: map[string]any{}, Env: map[string]any{}, Deadline: time.Now().Add(200 * time.Millisecond)})
	wantKind(t, err, exec.KindHandler, "not ready before the deadline", "restarting after crash")
	done := make(chan error, 1)
	go func() {
		_, err := run(t, e, map[string]any{}, nil)
		done <- err
	}()
	fake.Advance(time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after the backoff: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no run completed after the backoff elapsed")
	}
	crash() // after a good run, the next restart is immediate again
	mustRun(t, e, map[string]any{}, nil)
	if r := rs.get(); !slices.Equal(r, []string{ReasonCrash, ReasonCrash, ReasonCrash}) {
		t.Errorf("restarts %v, want three crashes", r)
	}
}

// TestIdleWorkerDeath: a worker killed between runs is replaced, and the next run succeeds:
// the request goes to the new worker, whether the dead one was asleep or still polling for
// the next request (a long SpinWait makes sure of the latter).
func TestIdleWorkerDeath(t *testing.T) {
	for _, spin := range []time.Duration{0, 5 * time.Second} {
		t.Run(fmt.Sprintf("spin=%v", spin), func(t *testing.T) {
			e, rs := startEngine(t, modesHandler, Options{SpinWait: spin})
			pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			if got := pidOf(t, mustRun(t, e, map[string]any{}, nil)); got == pid {
				t.Error("the dead worker was not replaced")
			}
			if r := rs.get(); !slices.Equal(r, []string{ReasonCrash}) {
				t.Errorf("restarts %v, want [crash]", r)
			}
		})
	}
}

func TestClose(t *testing.T) {
	e, _ := startEngine(t, modesHandler, Options{})
	pid := pidOf(t, mustRun(t, e, map[string]any{}, nil))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("worker %d still exists after Close: kill(0) = %v", pid, err)
	}
	_, err := run(t, e, map[string]any{}, nil)
	if !errors.Is(err, ErrClosed) || exec.KindOf(err) != exec.KindHandler {
		t.Errorf("Run after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMeasureDirect(t *testing.T) {
	first, _ := sampleInputs(t)
	e, _ := startEngine(t, "", Options{File: classicFile, workerExtension: benchRequests(t)})
	d, err := e.MeasureDirect(exec.Call{Input: first, Env: map[string]any{}}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if d.Handler <= 0 || d.WithJSON <= 0 {
		t.Errorf("direct costs %+v: want both measured", d)
	}
	// The handler really ran 2*100 times on the worker's copy of env; a run afterwards still
	// starts from the env it is given.
	res := mustRun(t, e, first, nil)
	if out := decodeMap(t, res.Output); out["executions"] != 1 {
		t.Errorf("after MeasureDirect, executions = %v, want 1", out["executions"])
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{File: classicFile, Timeout: -1},
		{File: classicFile, MaxOutputBytes: -1},
		{File: classicFile, Function: "bad name"},
		{File: classicFile, RestartBackoff: -time.Second},
	} {
		if _, err := Start(context.Background(), o); err == nil {
			t.Errorf("Start(%+v) accepted invalid options", o)
		}
	}
}

func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Start(ctx, Options{Python: pythonPath(t), File: classicFile})
	if !IsWorker(err) || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Start with a cancelled context: %v", err)
	}
}

// TestUnencodableInput: an input or env Python cannot be given fails as a decode error, and
// the worker is not disturbed.
func TestUnencodableInput(t *testing.T) {
	e, rs := startEngine(t, modesHandler, Options{})
	_, err := run(t, e, map[string]any{"x": math.NaN()}, nil)
	wantKind(t, err, exec.KindDecode, `input["x"]: NaN is not a JSON number`)
	_, err = run(t, e, map[string]any{}, map[string]any{"c": make(chan int)})
	wantKind(t, err, exec.KindDecode, `context.env["c"]`, "unsupported type")
	_, err = run(t, e, json.RawMessage(`{"a": [1, }`), nil)
	wantKind(t, err, exec.KindDecode, "input: invalid JSON at offset 10")
	mustRun(t, e, map[string]any{}, nil)
	if r := rs.get(); len(r) != 0 {
		t.Errorf("restarts %v, want none", r)
	}
}

// TestTransports: over the shared-memory channel (where there is one) and over the pipes alone,
// with and without polling: replies that come before the spin ends, ones that come after it
// (both ends then sleep), messages larger than a shared-memory slot and than one pipe read
// (which take the pipes), and a timeout all behave the same.
func TestTransports(t *testing.T) {
	for _, c := range []struct {
		name      string
		spin      time.Duration
		pipesOnly bool
	}{
		{"shm/spin", 200 * time.Microsecond, false},
		{"shm/nospin", 0, false},
		{"pipes/spin", 200 * time.Microsecond, true},
		{"pipes/nospin", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !c.pipesOnly && !shmSupported() {
				t.Skip("no shared-memory channel on this platform")
			}
			testTransport(t, Options{SpinWait: c.spin, pipesOnly: c.pipesOnly, Timeout: 2 * time.Second})
		})
	}
}

func testTransport(t *testing.T, o Options) {
	e, rs := startEngine(t, `
import os, time
def handler(input, context):
    if input.get("exit"):
        os._exit(7)
    if input.get("sleep"):
        time.sleep(input["sleep"])
    context.env["runs"] = context.env.get("runs", 0) + 1
    if input.get("loop"):
        while True:
            pass
    return {"echo": input.get("pad", ""), "runs": context.env["runs"]}
`, o)
	big := strings.Repeat("x", 300<<10) // over a shared-memory slot, and several pipe buffers, each way
	env := map[string]any{}
	for i, in := range []map[string]any{
		{}, {"sleep": 0.005}, {"pad": big}, {}, {"sleep": 0.002, "pad": big}, {},
	} {
		res := mustRun(t, e, in, env)
		var out struct {
			Echo string `json:"echo"`
			Runs int    `json:"runs"`
		}
		if err := json.Unmarshal(res.Output, &out); err != nil {
			t.Fatalf("run %d: output %.80q: %v", i, res.Output, err)
		}
		if out.Runs != i+1 || out.Echo != in["pad"] && !(in["pad"] == nil && out.Echo == "") {
			t.Fatalf("run %d: runs %d, echo of %d bytes; want runs %d, echo of the pad", i, out.Runs, len(out.Echo), i+1)
		}
		env = res.Env
	}
	_, err := run(t, e, map[string]any{"exit": true}, env) // dies while eventrt waits for it
	wantKind(t, err, exec.KindHandler, "exit status 7")
	_, err = e.Run(exec.Call{Input: map[string]any{"loop": true}, Env: env, Deadline: time.Now().Add(300 * time.Millisecond)})
	wantKind(t, err, exec.KindTimeout)
	if res := mustRun(t, e, map[string]any{}, env); !strings.Contains(string(res.Output), `"runs":7`) {
		t.Errorf("after the timeout: output %s, want runs 7 (env from the call)", res.Output)
	}
	if r := rs.get(); !slices.Equal(r, []string{ReasonCrash, ReasonTimeout}) {
		t.Errorf("restarts %v, want [crash timeout]", r)
	}
}

// TestWorkerCommandLine: ps shows the worker as a short line naming its function, not the
// worker's source; a single file is loaded as the module its function names.
func TestWorkerCommandLine(t *testing.T) {
	e, _ := startEngine(t, "def handler(input, context):\n    return {'module': __name__}\n",
		Options{Function: "handler_module.handler", Name: "handler_module.handler"})
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", e.w.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc on this platform: %v", err)
	}
	line := strings.ReplaceAll(string(cmdline), "\x00", " ")
	if len(line) > 200 || !strings.Contains(line, "eventrt-worker handler_module.handler") {
		t.Errorf("worker command line (%d bytes): %.300q", len(line), line)
	}
	r, err := run(t, e, map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.Output); got != `{"module":"handler_module"}` {
		t.Errorf("output %s, want the file loaded as handler_module", got)
	}
}
