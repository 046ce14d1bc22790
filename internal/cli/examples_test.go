package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryExamplePassesCheckAndTest: each directory of examples/ compiles (or imports) with
// `eventrt check` and passes the cases it ships with `eventrt test`, as examples/README.md
// tells a newcomer to run them.
func TestEveryExamplePassesCheckAndTest(t *testing.T) {
	entries, err := os.ReadDir("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		dir := filepath.Join("../../examples", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			for _, cmd := range []struct {
				name string
				fn   func([]string, io.Writer, io.Writer) int
				want string
			}{{"check", Check, "ok "}, {"test", Test, "PASS "}} {
				r := py(t, cmd.fn, dir)
				if r.code != ExitOK || !strings.Contains(r.stdout, cmd.want) {
					t.Errorf("eventrt %s %s:\n%s", cmd.name, dir, r)
				}
			}
		})
	}
	if n < 4 {
		t.Fatalf("%d examples found, want at least classic, stateless, bundle and python", n)
	}
}

// TestEvalTakesItsOwnResultAsEnv: eval's result fed back with --env plays the next run from
// its "env", rather than nesting the whole result inside the state.
func TestEvalTakesItsOwnResultAsEnv(t *testing.T) {
	first := runCmd(Eval, "--input", "../../examples/classic/metrics-sample.json", "../../examples/classic")
	if first.code != ExitOK {
		t.Fatal(first)
	}
	envFile := filepath.Join(t.TempDir(), "result.json")
	if err := os.WriteFile(envFile, []byte(first.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCmd(Eval, "--input", "../../examples/classic/testdata/sample-2.json", "--env", envFile, "../../examples/classic")
	o := decodeEval(t, r)
	if string(o.Env["executions"]) != "2" || string(o.Env["avg-util-cpu0-60sec"]) != "32.9" || o.Env["env"] != nil {
		t.Fatalf("second env %v", o.Env)
	}
	wantContains(t, r, "stderr", `using its "env"`)
}

// TestCheckNamesFunctionsAsTheDaemonDoes: check prints the name the daemon runs a handler
// under when HANDLER_FUNCTION is unset (bundle.PythonFileFunction, a bundle's only function).
func TestCheckNamesFunctionsAsTheDaemonDoes(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"pyfile":                 "def handler(input, context):\n    return input\n",
		"maxcpu.py":              "def handler(input, context):\n    return input\n",
		"one/maxcpu.expr":        "input",
		"mods/helpers.py":        "X = 1\n",
		"mods/handler_module.py": "import helpers\ndef handler(input, context):\n    return input\n",
	})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--runtime", "python", filepath.Join(dir, "pyfile")}, "ok    handler_module.handler"},
		{[]string{filepath.Join(dir, "maxcpu.py")}, "ok    maxcpu.handler"},
		{[]string{filepath.Join(dir, "one")}, "ok    maxcpu.handler"},
		{[]string{"--function", "cpu.max", filepath.Join(dir, "one", "maxcpu.expr")}, "ok    cpu.max"},
		{[]string{filepath.Join(dir, "mods")}, "ok    handler_module.handler"},
	} {
		r := py(t, Check, c.args...)
		if r.code != ExitOK || !strings.HasPrefix(r.stdout, c.want) {
			t.Errorf("check %v: want %q:\n%s", c.args, c.want, r)
		}
	}
}
