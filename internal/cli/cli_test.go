package cli

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleBundle is the bundle shipped in examples/bundle: its cases must pass.
const exampleBundle = "../../examples/bundle"

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(cmd func([]string, io.Writer, io.Writer) int, args ...string) result {
	var out, errb bytes.Buffer
	code := cmd(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) String() string {
	return "exit " + string(rune('0'+r.code)) + "\n--- stdout\n" + r.stdout + "--- stderr\n" + r.stderr
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func wantContains(t *testing.T, r result, stream, s string) {
	t.Helper()
	text := r.stdout
	if stream == "stderr" {
		text = r.stderr
	}
	if !strings.Contains(text, s) {
		t.Errorf("%s does not contain %q\n%s", stream, s, r)
	}
}

func TestCheckExampleBundle(t *testing.T) {
	r := runCmd(Check, exampleBundle)
	if r.code != ExitOK {
		t.Fatalf("check of the example bundle failed:\n%s", r)
	}
	for _, s := range []string{"ok    metrics.classic", "ok    metrics.summary", "manifest eventrt.yaml: 2 functions", "2 function(s) compiled"} {
		wantContains(t, r, "stdout", s)
	}
}

func TestCheckReportsEachErrorWithPosition(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"m/good.expr":      "input.a + 1",
		"m/bad.expr":       "let x = 1;\nx + nope",
		"m/_shared.expr":   "let k = 2;",
		"other/worse.expr": "1 +",
	})
	r := runCmd(Check, dir)
	if r.code != ExitFail {
		t.Fatalf("want exit 1:\n%s", r)
	}
	// The shared file is one line long: m/bad.expr's line 2 is line 3 of what compiles.
	wantContains(t, r, "stderr", filepath.Join(dir, "m", "bad.expr")+":2:5: unknown name nope")
	wantContains(t, r, "stderr", " | x + nope\n | ....^")
	wantContains(t, r, "stderr", filepath.Join(dir, "other", "worse.expr")+":1:")
	wantContains(t, r, "stdout", "ok    m.good")
	wantContains(t, r, "stdout", "FAIL  m.bad")
	wantContains(t, r, "stdout", "2 problem(s)")

	r = runCmd(Check, "--function", "m.good", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "1 function(s) compiled") || strings.Contains(r.stdout, "m.bad") {
		t.Fatalf("--function m.good checks that function only:\n%s", r)
	}
}

func TestCheckBrokenBundles(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"layout":       {map[string]string{"a.b.c.expr": "1"}, "too many dots"},
		"manifest":     {map[string]string{"m.expr": "1", "eventrt.yaml": "functions:\n  - {name: m.handler, input_key: i}\n"}, "output_key: required"},
		"shared":       {map[string]string{"m/f.expr": "1", "m/_shared.expr": "let a = 1;\na"}, "m/_shared.expr:2:1"},
		"test file":    {map[string]string{"m.expr": "1", "m.test.yaml": "cases:\n  - {name: x, input: 1}\n"}, `case "x": nothing to check`},
		"orphan tests": {map[string]string{"m.expr": "1", "n.test.yaml": "cases: []"}, "n.test.yaml: no function for these tests"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCmd(Check, writeTree(t, tc.files))
			if r.code != ExitFail {
				t.Fatalf("want exit 1:\n%s", r)
			}
			wantContains(t, r, "stderr", tc.want)
		})
	}
	r := runCmd(Check, filepath.Join(t.TempDir(), "missing"))
	if r.code != ExitFail || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("missing path:\n%s", r)
	}
}

func TestUsage(t *testing.T) {
	for name, cmd := range map[string]func([]string, io.Writer, io.Writer) int{"check": Check, "eval": Eval, "test": Test} {
		t.Run(name, func(t *testing.T) {
			r := runCmd(cmd)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "Usage: eventrt "+name) || !strings.Contains(r.stderr, "docs/bundles.md") {
				t.Fatalf("no PATH: want exit 2 and the usage:\n%s", r)
			}
			r = runCmd(cmd, "-h")
			if r.code != ExitOK || !strings.Contains(r.stderr, "Usage: eventrt "+name) {
				t.Fatalf("-h: want exit 0 and the usage:\n%s", r)
			}
			r = runCmd(cmd, "--no-such-flag", "x")
			if r.code != ExitUsage || !strings.Contains(r.stderr, "flag provided but not defined: -no-such-flag") {
				t.Fatalf("unknown flag:\n%s", r)
			}
			r = runCmd(cmd, "a", "b")
			if r.code != ExitUsage || !strings.Contains(r.stderr, "want one PATH, got 2") {
				t.Fatalf("two paths:\n%s", r)
			}
		})
	}
}

func zipBundle(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, c := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckZipAndURL(t *testing.T) {
	data := zipBundle(t, map[string]string{"m/f.expr": "input", "m/g.expr": "1 +"})
	p := filepath.Join(t.TempDir(), "b.zip")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCmd(Check, p)
	if r.code != ExitFail {
		t.Fatalf("want exit 1:\n%s", r)
	}
	wantContains(t, r, "stderr", p+"/m/g.expr:1:")
	wantContains(t, r, "stdout", "ok    m.f")

	// Over plain http (the test server has no certificate the CLI trusts); --allow-http is
	// the way in, --sha256 pins.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	sum := sha256.Sum256(data)
	r = runCmd(Check, srv.URL+"/b.zip")
	if r.code != ExitFail || !strings.Contains(r.stderr, "plain http is refused") {
		t.Fatalf("http without --allow-http:\n%s", r)
	}
	r = runCmd(Check, "--allow-http", "--sha256", hex.EncodeToString(sum[:]), srv.URL+"/b.zip")
	if r.code != ExitFail || !strings.Contains(r.stdout, "ok    m.f") || !strings.Contains(r.stderr, "m/g.expr:1:") {
		t.Fatalf("http with a matching pin:\n%s", r)
	}
	r = runCmd(Check, "--allow-http", "--sha256", strings.Repeat("0", 64), srv.URL+"/b.zip")
	if r.code != ExitFail || !strings.Contains(r.stderr, "checksum mismatch") {
		t.Fatalf("mismatching pin:\n%s", r)
	}
}

type evalOut struct {
	Output json.RawMessage            `json:"output"`
	Env    map[string]json.RawMessage `json:"env"`
}

func decodeEval(t *testing.T, r result) evalOut {
	t.Helper()
	if r.code != ExitOK {
		t.Fatalf("eval failed:\n%s", r)
	}
	var o evalOut
	if err := json.Unmarshal([]byte(r.stdout), &o); err != nil {
		t.Fatalf("eval printed no JSON object: %v\n%s", err, r)
	}
	return o
}

func TestEvalClassicTwice(t *testing.T) {
	sample := filepath.Join(exampleBundle, "metrics", "testdata", "sample.json")
	r := runCmd(Eval, "--input", sample, "--function", "metrics.classic", exampleBundle)
	o := decodeEval(t, r)
	var out map[string]any
	if err := json.Unmarshal(o.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out["percent_network_egress"] != 16.74 || out["percent_memory_caching"] != 27.05 || out["executions"] != 1.0 ||
		out["avg-util-cpu0-60sec"] != 32.4 {
		t.Fatalf("first output %v", out)
	}
	if string(o.Env["executions"]) != "1" || string(o.Env["avg-util-cpu13-60sec"]) != "82.7" {
		t.Fatalf("first env %v", o.Env)
	}
	// Feed the env back, as the help says, with flags after PATH.
	envFile := filepath.Join(t.TempDir(), "env.json")
	envJSON, _ := json.Marshal(o.Env)
	if err := os.WriteFile(envFile, envJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(exampleBundle, "metrics", "testdata", "sample-2.json")
	o = decodeEval(t, runCmd(Eval, exampleBundle, "--function", "metrics.classic", "--input", second, "--env", envFile, "--compact"))
	if string(o.Env["executions"]) != "2" || string(o.Env["avg-util-cpu0-60sec"]) != "32.9" {
		t.Fatalf("second env %v", o.Env)
	}
}

func TestEvalContextAndPlainValue(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"m/ctx.expr":   `{trigger: context.trigger, inkey: context.input_key, out: context.output_key, last: context.last_execution != nil, entry: context.entry_id, fn: context.function, seen: env.n ?? 0, mtime: len(context.function_getmtime)}`,
		"m/nil.expr":   "nil",
		"m/html.expr":  `"<b>&</b>"`,
		"eventrt.yaml": "functions:\n  - {name: m.ctx, input_key: in:m, output_key: out:m}\n",
	})
	envFile := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(envFile, []byte(`{"n": 5, "other": [1, 2]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	o := decodeEval(t, runCmd(Eval, "--input-json", "{}", "--env", envFile, "--function", "m.ctx", dir))
	var out map[string]any
	if err := json.Unmarshal(o.Output, &out); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"trigger": "keyspace", "inkey": "in:m", "out": "out:m", "last": false, "entry": "", "fn": "m.ctx", "seen": 5.0, "mtime": 19.0}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output[%s] = %v, want %v", k, out[k], v)
		}
	}
	// A plain value leaves the env as given.
	var other bytes.Buffer
	if err := json.Compact(&other, o.Env["other"]); err != nil || string(o.Env["n"]) != "5" || other.String() != "[1,2]" {
		t.Fatalf("env %v", o.Env)
	}
	o = decodeEval(t, runCmd(Eval, "--input-json", "{}", "--function", "m.ctx", "--trigger", "poll", "--last-execution", "2026-11-25T16:40:00Z",
		"--entry-id", "5-0", "--input-key", "k2", dir))
	if err := json.Unmarshal(o.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out["trigger"] != "poll" || out["last"] != true || out["entry"] != "5-0" || out["inkey"] != "k2" || out["out"] != "out:m" {
		t.Fatalf("overridden context %v", out)
	}

	r := runCmd(Eval, "--input-json", "{}", "--function", "m.nil", dir)
	if o := decodeEval(t, r); string(o.Output) != "null" || len(o.Env) != 0 {
		t.Fatalf("nil output: %s", r.stdout)
	}
	r = runCmd(Eval, "--input-json", "{}", "--function", "m.html", "--compact", dir)
	if strings.TrimSpace(r.stdout) != `{"output":"<b>&</b>","env":{}}` {
		t.Fatalf("compact output, HTML unescaped: %s", r)
	}
}

func TestEvalErrors(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"m/_shared.expr": "let total = input.a + input.b;",
		"m/f.expr":       "// divide\nlet share = input.a / total;\nshare * 100",
		"m/g.expr":       "1",
	})
	inputFile := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(inputFile, []byte(`{"a": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args   []string
		code   int
		stderr string
	}{
		"runtime error in a shared binding": {[]string{"--input", inputFile, "--function", "m.f", dir}, ExitFail,
			"m.f: handler error: " + filepath.Join(dir, "m", "_shared.expr") + ":1:"},
		"not json":          {[]string{"--input-json", "{oops", "--function", "m.f", dir}, ExitFail, "decode error"},
		"several functions": {[]string{"--input-json", "{}", dir}, ExitFail, "has 2 functions; choose one with --function (one of: m.f, m.g)"},
		"unknown function":  {[]string{"--input-json", "{}", "--function", "m.h", dir}, ExitFail, `function "m.h": unknown function; the bundle has: m.f, m.g`},
		"no input":          {[]string{"--function", "m.g", dir}, ExitUsage, "--input FILE (or --input-json) is required"},
		"two inputs":        {[]string{"--input", inputFile, "--input-json", "{}", dir}, ExitUsage, "not both"},
		"missing input":     {[]string{"--input", filepath.Join(dir, "nope.json"), dir}, ExitFail, "--input: open"},
		"env not an object": {[]string{"--input-json", "{}", "--env", inputFile + "x", dir}, ExitFail, "--env: open"},
		"bad trigger":       {[]string{"--input-json", "{}", "--trigger", "cron", "--function", "m.g", dir}, ExitUsage, `trigger "cron" is not one of`},
		"bad time":          {[]string{"--input-json", "{}", "--last-execution", "yesterday", "--function", "m.g", dir}, ExitUsage, "want RFC 3339"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCmd(Eval, tc.args...)
			if r.code != tc.code {
				t.Fatalf("want exit %d:\n%s", tc.code, r)
			}
			wantContains(t, r, "stderr", tc.stderr)
			if r.stdout != "" {
				t.Errorf("a failed eval printed a result: %s", r.stdout)
			}
		})
	}
	envArray := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(envArray, []byte(`[1]`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCmd(Eval, "--input-json", "{}", "--env", envArray, "--function", "m.g", dir)
	if r.code != ExitFail || !strings.Contains(r.stderr, "want a JSON object") {
		t.Fatalf("env array:\n%s", r)
	}
}

func TestTestExampleBundle(t *testing.T) {
	r := runCmd(Test, "-v", exampleBundle)
	if r.code != ExitOK {
		t.Fatalf("the example bundle's cases fail:\n%s", r)
	}
	wantContains(t, r, "stdout", "--- PASS: metrics.classic: second run")
	wantContains(t, r, "stdout", "PASS  5 case(s)")
}

const counterFn = `let c = (env.c ?? 0) + input.step;
c > 100 ? nil : result({c: c, label: "count-" + string(c), list: [c, c * 2]}, {c: c})`

func TestTestReportsMismatches(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"c/count.expr": counterFn,
		"c/count.test.yaml": `
cases:
  - name: passes
    input: {step: 1}
    env: {c: 1}
    output: {c: 2, label: count-2, list: [2, 4]}
    env_after: {c: 2}
  - name: wrong values
    input: {step: 1}
    output: {c: 2, label: "count-1", list: [1, 2, 3], extra: true}
    env_after: {c: 1, m: 0}
  - name: expects no output
    input: {step: 1}
    output: null
  - name: expects output but gets none
    input: {step: 1000}
    output: {c: 1000}
  - name: expects an error that does not come
    input: {step: 1}
    error: boom
  - name: expects another error
    input_raw: "{"
    error: boom
  - name: matching error
    input: {step: "x"}
    error: handler error
  - name: tolerance
    input: {step: 0.1}
    env: {c: 0.2}
    output: {c: 0.3, label: "count-0.30000000000000004", list: [0.3, 0.6]}
`,
	})
	r := runCmd(Test, dir)
	if r.code != ExitFail {
		t.Fatalf("want exit 1:\n%s", r)
	}
	file := filepath.Join(dir, "c", "count.test.yaml")
	for _, s := range []string{
		"--- FAIL: c.count: wrong values (" + file + ")",
		"    output.c: got 1, want 2",
		"    output.list: got 2 elements, want 3",
		"    output.extra: missing, want true",
		"    env.m: missing, want 0",
		"--- FAIL: c.count: expects no output",
		"    output: got {",
		"want none (null)",
		"--- FAIL: c.count: expects output but gets none",
		"    output: got none, want {\"c\":1000}",
		"--- FAIL: c.count: expects an error that does not come",
		`the run succeeded, want an error containing "boom"`,
		"--- FAIL: c.count: expects another error",
		`error: got "decode error: invalid JSON`,
		"FAIL  5 of 8 case(s) failed",
	} {
		wantContains(t, r, "stdout", s)
	}
	for _, s := range []string{"--- FAIL: c.count: passes", "--- FAIL: c.count: matching error", "--- FAIL: c.count: tolerance", "--- PASS"} {
		if strings.Contains(r.stdout, s) {
			t.Errorf("stdout contains %q:\n%s", s, r)
		}
	}

	r = runCmd(Test, "--run", "^pass|^match", "-v", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "--- PASS: c.count: passes") || !strings.Contains(r.stdout, "PASS  2 case(s)") {
		t.Fatalf("--run:\n%s", r)
	}
	if r := runCmd(Test, "--run", "(", dir); r.code != ExitUsage {
		t.Fatalf("bad --run:\n%s", r)
	}
}

func TestTestNothingToRun(t *testing.T) {
	r := runCmd(Test, writeTree(t, map[string]string{"m.expr": "1"}))
	if r.code != ExitFail || !strings.Contains(r.stdout, "no test cases found") {
		t.Fatalf("a bundle without cases must not pass:\n%s", r)
	}
	dir := writeTree(t, map[string]string{
		"m/f.expr":      "input",
		"m/f.test.yaml": "cases:\n  - {name: a, input: 1, output: 1}\n",
		"m/g.expr":      "1 +",
		"m/g.test.yaml": "cases:\n  - {name: a, input: 1, output: 1}\n  - {name: b, input: 1, output: 1}\n",
		"m/h.expr":      "1",
		"m/h.test.yaml": "cases:\n  - {name: a, input: 1, outptu: 1}\n",
		"m/x.test.yaml": "cases:\n  - {name: a, input: 1, output: 1}\n",
	})
	r = runCmd(Test, dir)
	if r.code != ExitFail {
		t.Fatalf("want exit 1:\n%s", r)
	}
	for _, s := range []string{
		"--- FAIL: m.g: does not compile, 2 case(s) not run",
		"m/g.expr:1:",
		"--- FAIL: m.h (",
		`unknown field "outptu"`,
		"x.test.yaml: no function for these tests",
		"FAIL  2 of 3 case(s) failed; 2 test file(s) could not be used",
	} {
		wantContains(t, r, "stdout", s)
	}
	r = runCmd(Test, "--function", "m.f", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "PASS  1 case(s)") {
		t.Fatalf("--function m.f:\n%s", r)
	}
	r = runCmd(Test, "--function", "m.zz", dir)
	if r.code != ExitFail || !strings.Contains(r.stderr, "the bundle has: m.f, m.g, m.h") {
		t.Fatalf("--function unknown:\n%s", r)
	}
}

func TestTestSingleFile(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"handler.expr":      "input.a * 2",
		"handler.test.yaml": "cases:\n  - {name: doubles, input: {a: 21}, output: 42}\n",
	})
	r := runCmd(Test, filepath.Join(dir, "handler.expr"))
	if r.code != ExitOK || !strings.Contains(r.stdout, "PASS  1 case(s)") {
		t.Fatalf("single file:\n%s", r)
	}
}

func TestDiffJSON(t *testing.T) {
	for name, tc := range map[string]struct {
		want, got string
		tol       float64
		lines     []string
	}{
		"equal":            {`{"a": [1, {"b": null}]}`, `{"a":[1,{"b":null}]}`, 0, nil},
		"int and float":    {`2`, `2.0`, 0, nil},
		"within tolerance": {`{"x": 64.18166666666666}`, `{"x": 64.18166666666667}`, 1e-9, nil},
		"outside":          {`{"x": 1.0}`, `{"x": 1.1}`, 1e-9, []string{"r.x: got 1.1, want 1"}},
		"exact":            {`0.3`, `0.30000000000000004`, 0, []string{"r: got 0.30000000000000004, want 0.3"}},
		"types":            {`{"a": "1"}`, `{"a": 1}`, 0, []string{`r.a: got 1, want "1"`}},
		"object vs array":  {`{}`, `[]`, 0, []string{"r: got [], want {}"}},
		"keys":             {`{"a-b": 1, "c": 2}`, `{"c": 2, "d": 3}`, 0, []string{`r["a-b"]: missing, want 1`, "r.d: got 3, not expected"}},
		"arrays":           {`[1, 2, 3]`, `[1, 5]`, 0, []string{"r: got 2 elements, want 3", "r[1]: got 5, want 2"}},
		"null":             {`{"a": null}`, `{"a": 0}`, 0, []string{"r.a: got 0, want null"}},
	} {
		t.Run(name, func(t *testing.T) {
			lines, err := diffJSON("r", []byte(tc.want), []byte(tc.got), tc.tol)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(lines, "\n") != strings.Join(tc.lines, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(tc.lines, "\n"))
			}
		})
	}
	var want, got []int
	for i := 0; i < 50; i++ {
		want, got = append(want, i), append(got, i+1)
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	lines, err := diffJSON("r", wj, gj, 0)
	if err != nil || len(lines) != maxDiffLines+1 || lines[maxDiffLines] != "... and 30 more differences" {
		t.Fatalf("long diff: %v %v", err, lines)
	}
	long := `"` + strings.Repeat("x", 200) + `"`
	lines, _ = diffJSON("r", []byte(long), []byte(`1`), 0)
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "...") || len(lines[0]) > 120 {
		t.Fatalf("long value not cut: %v", lines)
	}
}

// TestCheckSaysWhichRunOnTheVM: check names the construct that keeps a handler off the fast
// path, and says nothing for one that takes it.
func TestCheckSaysWhichRunOnTheVM(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"m/fast.expr": "input.a + 1", "m/vm.expr": "sortBy(input.xs, #)"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runCmd(Check, dir)
	if r.code != ExitOK {
		t.Fatalf("want exit 0:\n%s", r)
	}
	wantContains(t, r, "stdout", "ok    m.fast ("+filepath.Join(dir, "m", "fast.expr")+")\n")
	wantContains(t, r, "stdout", "ok    m.vm ("+filepath.Join(dir, "m", "vm.expr")+"; runs on expr's VM, not the fast path (builtin sortBy))\n")
}
