package cli

import (
	"encoding/json"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/bundle"
)

// pythonExample is the classic course handler in Python; its cases mirror exprClassic's.
const (
	pythonExample = "../../examples/python/usermodule.py"
	exprClassic   = "metrics.classic"
)

// pythonPath returns the interpreter the tests use, failing with a hint when there is none.
// Debian's /usr/bin/python3 comes first: a version manager's shim found in PATH (pyenv) can
// take a second or more to start each worker.
func pythonPath(t testing.TB) string {
	t.Helper()
	if p, err := osexec.LookPath("/usr/bin/python3"); err == nil {
		return p
	}
	p, err := osexec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found in PATH (%v): the Python handler tests run real handlers; install it (Debian: apt-get install -y python3)", err)
	}
	return p
}

// py runs cmd with --python set to the test interpreter.
func py(t *testing.T, cmd func([]string, io.Writer, io.Writer) int, args ...string) result {
	t.Helper()
	return runCmd(cmd, append([]string{"--python", pythonPath(t)}, args...)...)
}

// sameJSON fails unless want and got are the same JSON values (numbers compare exactly, 7 and
// 7.0 being one number).
func sameJSON(t *testing.T, what string, want, got []byte) {
	t.Helper()
	lines, err := diffJSON(what, want, got, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) > 0 {
		t.Errorf("%s differs:\n%s", what, strings.Join(lines, "\n"))
	}
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClassicPythonMatchesExpr holds the Python classic handler's cases equal to those of its
// expr twin, runs both suites through `eventrt test`, and plays the same runs through
// `eventrt eval` on both engines, chaining the env, to compare what each would store.
func TestClassicPythonMatchesExpr(t *testing.T) {
	t.Parallel()
	b, err := bundle.Load(t.Context(), bundle.Source{Path: exampleBundle})
	if err != nil {
		t.Fatal(err)
	}
	fn, err := b.Function(exprClassic)
	if err != nil {
		t.Fatal(err)
	}
	exprSuite, err := b.Tests(fn)
	if err != nil {
		t.Fatal(err)
	}
	c := newCommand("test", "", io.Discard, io.Discard)
	h, err := c.openPython(pythonExample, "")
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	pySuite, err := h.tests()
	if err != nil || pySuite == nil {
		t.Fatalf("the Python example has no usable cases: %v", err)
	}
	if len(pySuite.Cases) != len(exprSuite.Cases) {
		t.Fatalf("%d Python cases, %d expr cases", len(pySuite.Cases), len(exprSuite.Cases))
	}
	for i, e := range exprSuite.Cases {
		p := pySuite.Cases[i]
		if p.Name != e.Name || p.Error != e.Error || p.Context != e.Context || (p.InputRaw == nil) != (e.InputRaw == nil) {
			t.Fatalf("case %d: Python %+v\nexpr %+v", i, p, e)
		}
		if e.InputRaw != nil {
			if *p.InputRaw != *e.InputRaw {
				t.Errorf("case %q: input_raw %q, expr %q", e.Name, *p.InputRaw, *e.InputRaw)
			}
			continue
		}
		sameJSON(t, e.Name+": input", e.Input, p.Input)
		pe, _ := json.Marshal(p.Env)
		ee, _ := json.Marshal(e.Env)
		sameJSON(t, e.Name+": env", ee, pe)
		sameJSON(t, e.Name+": output", e.Output, p.Output)
		sameJSON(t, e.Name+": env_after", e.EnvAfter, p.EnvAfter)
	}

	if r := py(t, Test, "-v", pythonExample); r.code != ExitOK || !strings.Contains(r.stdout, "PASS  3 case(s)") {
		t.Fatalf("eventrt test of the Python example:\n%s", r)
	}
	if r := runCmd(Test, "--function", exprClassic, exampleBundle); r.code != ExitOK || !strings.Contains(r.stdout, "PASS  3 case(s)") {
		t.Fatalf("eventrt test of the expr twin:\n%s", r)
	}

	// The same two runs on each engine, the second fed the env the first left.
	dir := t.TempDir()
	pyEnv, exprEnv := "{}", "{}"
	for i, e := range exprSuite.Cases[:2] {
		input := filepath.Join(dir, "input.json")
		if err := os.WriteFile(input, e.Input, 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--input", input, "--compact"}
		if e.Context.LastExecution != "" {
			args = append(args, "--last-execution", e.Context.LastExecution)
		}
		pyEnvFile := filepath.Join(dir, "py-env.json")
		exprEnvFile := filepath.Join(dir, "expr-env.json")
		if err := os.WriteFile(pyEnvFile, []byte(pyEnv), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exprEnvFile, []byte(exprEnv), 0o644); err != nil {
			t.Fatal(err)
		}
		po := decodeEval(t, py(t, Eval, append(args, "--env", pyEnvFile, pythonExample)...))
		eo := decodeEval(t, runCmd(Eval, append(args, "--env", exprEnvFile, "--function", exprClassic, exampleBundle)...))
		sameJSON(t, "run "+string(rune('1'+i))+": output", eo.Output, po.Output)
		pe, _ := json.Marshal(po.Env)
		ee, _ := json.Marshal(eo.Env)
		sameJSON(t, "run "+string(rune('1'+i))+": env", ee, pe)
		sameJSON(t, "run "+string(rune('1'+i))+": output against the case", e.Output, po.Output)
		pyEnv, exprEnv = string(pe), string(ee)
	}
	if !strings.Contains(pyEnv, `"executions":2`) {
		t.Fatalf("the env did not carry into the second run: %s", pyEnv)
	}
}

func TestPythonCheck(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"good.py":            "def handler(input, context):\n    return input\n",
		"good.test.yaml":     "cases:\n  - {name: a, input: 1, output: 1}\n",
		"syntax.py":          "def handler(input, context):\n    x = (1 +\n    return x\n",
		"raises.py":          "import json\nLIMIT = 1 / 0\n\ndef handler(input, context):\n    return 1\n",
		"nofunc.py":          "def other(input, context):\n    return 1\n",
		"badtests.py":        "def handler(input, context):\n    return 1\n",
		"badtests.test.yaml": "cases:\n  - {name: a, input: 1}\n",
	})
	r := py(t, Check, filepath.Join(dir, "good.py"))
	if r.code != ExitOK || !strings.Contains(r.stdout, "ok    good.handler") || !strings.Contains(r.stdout, "1 function(s) imported") {
		t.Fatalf("good handler:\n%s", r)
	}
	for name, tc := range map[string]struct{ file, stderr, snippet string }{
		"syntax error":  {"syntax.py", filepath.Join(dir, "syntax.py") + ":2:9: SyntaxError: '(' was never closed", "\n | x = (1 +"},
		"raises":        {"raises.py", filepath.Join(dir, "raises.py") + ":2: ZeroDivisionError: division by zero", "\n | LIMIT = 1 / 0\n    Traceback"},
		"no function":   {"nofunc.py", "has no function handler (it defines: other)", ""},
		"bad test file": {"badtests.py", `case "a": nothing to check`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := py(t, Check, filepath.Join(dir, tc.file))
			if r.code != ExitFail {
				t.Fatalf("want exit 1:\n%s", r)
			}
			wantContains(t, r, "stderr", tc.stderr)
			wantContains(t, r, "stderr", tc.snippet)
		})
	}
	r = runCmd(Check, "--python", filepath.Join(dir, "no-such-python"), filepath.Join(dir, "good.py"))
	if r.code != ExitFail || !strings.Contains(r.stderr, "python interpreter not found") || !strings.Contains(r.stderr, "--python PATH") {
		t.Fatalf("missing interpreter:\n%s", r)
	}
	// --runtime expr reads a .py file as an expr program, which it is not.
	if r := runCmd(Check, "--runtime", "expr", filepath.Join(dir, "good.py")); r.code != ExitFail {
		t.Fatalf("--runtime expr on a .py file:\n%s", r)
	}
	if r := runCmd(Check, "--runtime", "ruby", filepath.Join(dir, "good.py")); r.code != ExitUsage || !strings.Contains(r.stderr, "want expr or python") {
		t.Fatalf("--runtime ruby:\n%s", r)
	}
	if r := runCmd(Check, "--runtime", "python", "https://example.com/h.zip"); r.code != ExitFail || !strings.Contains(r.stderr, "give a local file") {
		t.Fatalf("python from a URL:\n%s", r)
	}
}

func TestPythonEval(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"ctx.py": `def handler(input, context):
    print("seen", input["a"])
    context.env["runs"] = context.env.get("runs", 0) + 1
    return {"trigger": context.trigger, "in": context.input_key, "out": context.output_key,
            "fn": context.function, "last": context.last_execution is not None,
            "mtime": len(context.function_getmtime), "entry": context.entry_id,
            "host": context.host, "port": context.port}
`,
		"falsy.py":  "def handler(input, context):\n    context.env['kept'] = True\n    return None\n",
		"raises.py": "def handler(input, context):\n    return input['a'] / input['b']\n",
		"loops.py":  "def handler(input, context):\n    while True:\n        pass\n",
		"nan.py":    "def handler(input, context):\n    return {'v': [1, float('nan')]}\n",
		"other.py":  "def handler(input, context):\n    return 1\n\ndef second(input, context):\n    return 2\n",
	})
	envFile := writeJSON(t, dir, "env.json", map[string]any{"runs": 4, "other": "x"})
	r := py(t, Eval, "--input-json", `{"a": 1}`, "--env", envFile, "--trigger", "poll", "--input-key", "in:k",
		"--last-execution", "2026-11-25T16:40:00Z", "--entry-id", "5-0", filepath.Join(dir, "ctx.py"))
	o := decodeEval(t, r)
	var out map[string]any
	if err := json.Unmarshal(o.Output, &out); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"trigger": "poll", "in": "in:k", "out": DefaultOutputKey, "fn": "ctx.handler", "last": true,
		"mtime": 19.0, "entry": "5-0", "host": DefaultHost, "port": float64(DefaultPort)}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output[%s] = %v, want %v", k, out[k], v)
		}
	}
	if string(o.Env["runs"]) != "5" || string(o.Env["other"]) != `"x"` {
		t.Errorf("env %v", o.Env)
	}
	wantContains(t, r, "stderr", "ctx.handler: seen 1")

	// A falsy return writes nothing, and keeps what the handler did to context.env.
	o = decodeEval(t, py(t, Eval, "--input-json", "{}", filepath.Join(dir, "falsy.py")))
	if string(o.Output) != "null" || string(o.Env["kept"]) != "true" {
		t.Fatalf("falsy return: output %s env %v", o.Output, o.Env)
	}
	o = decodeEval(t, py(t, Eval, "--input-json", "{}", "--function", "other.second", filepath.Join(dir, "other.py")))
	if string(o.Output) != "2" {
		t.Fatalf("--function other.second: output %s", o.Output)
	}

	for name, tc := range map[string]struct {
		args   []string
		stderr []string
	}{
		"raises": {[]string{"--input-json", `{"a": 1, "b": 0}`, filepath.Join(dir, "raises.py")},
			[]string{"raises.handler: handler error: ZeroDivisionError: division by zero (raises.py:2 in handler)", "Traceback (most recent call last)"}},
		"times out": {[]string{"--input-json", "{}", "--timeout", "300ms", filepath.Join(dir, "loops.py")},
			[]string{"timeout error: python handler loops.handler still running at its deadline"}},
		"not JSON":  {[]string{"--input-json", "{}", filepath.Join(dir, "nan.py")}, []string{"output error:", `["v"][1]`}},
		"bad input": {[]string{"--input-json", "{oops", filepath.Join(dir, "raises.py")}, []string{"decode error"}},
		"missing":   {[]string{"--input-json", "{}", filepath.Join(dir, "nope.py")}, []string{"python handler: stat", "nope.py: no such file"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := py(t, Eval, tc.args...)
			if r.code != ExitFail || r.stdout != "" {
				t.Fatalf("want exit 1 and no result:\n%s", r)
			}
			for _, s := range tc.stderr {
				wantContains(t, r, "stderr", s)
			}
		})
	}
}

// counterPy keeps a module global next to context.env: each case must start from a fresh
// worker, so the global is 1 in every case whatever ran before.
const counterPy = `calls = 0

def handler(input, context):
    global calls
    calls += 1
    context.env["total"] = context.env.get("total", 0) + input["step"]
    return {"calls": calls, "total": context.env["total"]}
`

func TestPythonTest(t *testing.T) {
	t.Parallel()
	const cases = `cases:
  - name: first
    input: {step: 2}
    output: {calls: 1, total: 2}
    env_after: {total: 2}
  - name: second starts afresh
    input: {step: 3}
    env: {total: 2}
    output: {calls: 1, total: 5}
    env_after: {total: 5}
  - name: wrong
    input_file: testdata/step.json
    output: {calls: 1, total: 7}
    env_after: {total: 1, extra: 0}
`
	dir := writeTree(t, map[string]string{
		"counter.py":               counterPy,
		"counter.test.yaml":        cases,
		"testdata/step.json":       `{"step": 1}`,
		"broken.py":                "def handler(input, context)\n    return 1\n",
		"broken.test.yaml":         "cases:\n  - {name: a, input: 1, output: 1}\n  - {name: b, input: 1, output: 1}\n",
		"escape.py":                "def handler(input, context):\n    return 1\n",
		"escape.test.yaml":         "cases:\n  - {name: a, input_file: ../outside.json, output: 1}\n",
		"untested.py":              "def handler(input, context):\n    return 1\n",
		"pkg/__init__.py":          "",
		"pkg/mod.py":               "from pkg import helper\n\ndef handler(input, context):\n    return helper.double(input)\n",
		"pkg/helper.py":            "def double(x):\n    return 2 * x\n",
		"pkg/mod.test.yaml":        "cases:\n  - {name: doubles, input: 21, output: 42}\n",
		"handler_module.py":        "def handler(input, context):\n    return input + 1\n",
		"handler_module.test.yaml": "cases:\n  - {name: adds one, input: 1, output: 2}\n",
	})
	r := py(t, Test, filepath.Join(dir, "counter.py"))
	if r.code != ExitFail {
		t.Fatalf("want exit 1:\n%s", r)
	}
	for _, s := range []string{
		"--- FAIL: counter.handler: wrong (" + filepath.Join(dir, "counter.test.yaml") + ")",
		"    output.total: got 1, want 7",
		"    env.extra: missing, want 0",
		"FAIL  1 of 3 case(s) failed",
	} {
		wantContains(t, r, "stdout", s)
	}
	if strings.Contains(r.stdout, "second starts afresh") {
		t.Errorf("a module global carried from one case into the next:\n%s", r)
	}
	if r := py(t, Test, "-v", "--run", "^first", filepath.Join(dir, "counter.py")); r.code != ExitOK || !strings.Contains(r.stdout, "--- PASS: counter.handler: first") || !strings.Contains(r.stdout, "PASS  1 case(s)") {
		t.Fatalf("--run:\n%s", r)
	}

	r = py(t, Test, filepath.Join(dir, "broken.py"))
	if r.code != ExitFail || !strings.Contains(r.stdout, "--- FAIL: broken.handler: does not import, 2 case(s) not run") ||
		!strings.Contains(r.stdout, filepath.Join(dir, "broken.py")+":1:") || !strings.Contains(r.stdout, "FAIL  2 of 2 case(s) failed") {
		t.Fatalf("a handler that does not import:\n%s", r)
	}
	r = py(t, Test, filepath.Join(dir, "escape.py"))
	if r.code != ExitFail || !strings.Contains(r.stdout, `input_file "../outside.json": outside`) || !strings.Contains(r.stdout, "1 test file(s) could not be used") {
		t.Fatalf("an input_file outside the handler's directory:\n%s", r)
	}
	r = py(t, Test, filepath.Join(dir, "untested.py"))
	if r.code != ExitFail || !strings.Contains(r.stdout, "no test cases found") {
		t.Fatalf("a handler without cases must not pass:\n%s", r)
	}

	// A directory of packages, and the same as a zip: module.function selects the handler and
	// <module path>.test.yaml holds its cases.
	if r := py(t, Test, "--runtime", "python", "--function", "pkg.mod.handler", "-v", dir); r.code != ExitOK || !strings.Contains(r.stdout, "--- PASS: pkg.mod.handler: doubles") {
		t.Fatalf("directory of packages:\n%s", r)
	}
	if r := py(t, Test, "--runtime", "python", "-v", dir); r.code != ExitOK || !strings.Contains(r.stdout, "--- PASS: handler_module.handler: adds one") {
		t.Fatalf("directory of packages, default function:\n%s", r)
	}
	zipFile := filepath.Join(t.TempDir(), "handlers.zip")
	data := zipBundle(t, map[string]string{
		"pkg/__init__.py":   "",
		"pkg/mod.py":        "from pkg import helper\n\ndef handler(input, context):\n    return helper.double(input)\n",
		"pkg/helper.py":     "def double(x):\n    return 2 * x\n",
		"pkg/mod.test.yaml": "cases:\n  - {name: doubles, input: 21, output: 42}\n  - {name: wrong, input: 1, output: 3}\n",
	})
	if err := os.WriteFile(zipFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = py(t, Test, "--runtime", "python", "--function", "pkg.mod.handler", zipFile)
	if r.code != ExitFail || !strings.Contains(r.stdout, "--- FAIL: pkg.mod.handler: wrong ("+zipFile+"/pkg/mod.test.yaml)") || !strings.Contains(r.stdout, "FAIL  1 of 2") {
		t.Fatalf("zip of packages:\n%s", r)
	}
}
