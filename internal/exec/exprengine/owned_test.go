package exprengine

import (
	"bytes"
	"maps"
	"os"
	"testing"
	"unsafe"

	"github.com/eventrt/eventrt/internal/exec"
)

// TestEnvOwned: a run given its env with Call.EnvOwned writes merge(env, ...) into that env
// (Result.Env is the map given) only where the program cannot tell, and gives exactly what a
// run on a copy gives: the same output, env, fields and errors. inPlace false marks the
// programs that could tell (the env map itself is a value somewhere), which must get a copy.
func TestEnvOwned(t *testing.T) {
	classic, err := os.ReadFile(classicPath)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, src string
		inPlace   bool
	}{
		{"classic", string(classic), true},
		{"member", `result({a: env.a ?? 0}, merge(env, {a: (env.a ?? 0) + 1}))`, true},
		{"index in a loop", `result(1, merge(env, map(["a", "b"], [#, (env[#] ?? 0) + 1])))`, true},
		{"pairs", `let ps = map(["a", "b"], [#, "x" in env]); result(ps, merge(env, ps, {x: 1}))`, true},
		{"conditional", `"a" in env ? result(1, merge(env, {b: 2})) : result(2, merge(env, {a: 1}))`, true},
		{"context field", `result(context.trigger, merge(env, {a: 1}))`, true},
		{"output is env", `result(env, merge(env, {a: 2}))`, false},
		{"env in output", `result({e: env}, merge(env, {a: 2}))`, false},
		{"env whole to a function", `result(sort(keys(env)), merge(env, {z: 1}))`, false},
		{"let of env", `let e = env; result(e, merge(env, {a: 2}))`, false},
		{"context.env", `result(context.env, merge(env, {a: 2}))`, false},
		{"$env", `result($env.env, merge(env, {a: 2}))`, false},
		{"merge not the env", `let m = merge(env, {a: 2}); result(m, m)`, false},
		{"bad pair", `result(1, merge(env, {b: 1}, [[1, 2]]))`, false},
		{"bad key", `result(1, merge(env, {b: 1}, map([1, 2], [#, #])))`, false},
		// A merge that stops half-way must not have written into the env: a run that the VM
		// repeats (after the fast path bails) would take the other branch and succeed.
		{"bad pair after a branch", `env.b == 1 ? result(0, merge(env, {c: 1})) : result(1, merge(env, {b: 1}, [[1, 2]]))`, false},
		{"bad key after a branch", `env.b == 1 ? result(0, merge(env, {c: 1})) : result(1, merge(env, {b: 1}, map([1], [#, #])))`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, tc.src)
			if fast, why := p.FastPath(); !fast && tc.inPlace {
				t.Fatalf("not on the fast path: %s", why)
			}
			in := mustDecode(t, string(sampleInput(t)))
			copied, owned := map[string]any{"a": 1, "s": "x"}, map[string]any{"a": 1, "s": "x"}
			for run := range 3 {
				given := owned
				want, wantErr := p.Run(exec.Call{Input: in, Env: maps.Clone(copied), Context: exec.Context{Trigger: "keyspace"}})
				got, err := p.Run(exec.Call{Input: in, Env: given, EnvOwned: true, Context: exec.Context{Trigger: "keyspace"}})
				if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
					t.Fatalf("run %d: error %v, on a copy %v", run, err, wantErr)
				}
				if err != nil {
					return
				}
				if string(got.Output) != string(want.Output) || !sameValue(got.Env, want.Env) ||
					!sameValue(got.EnvFields.Map(), want.EnvFields.Map()) {
					t.Fatalf("run %d: output %s env %#v, on a copy %s %#v", run, got.Output, got.Env, want.Output, want.Env)
				}
				if sameMap(got.Env, given) != tc.inPlace {
					t.Fatalf("run %d: the result's env is the map given: %v, want %v", run, sameMap(got.Env, given), tc.inPlace)
				}
				copied, owned = want.Env, got.Env
			}
		})
	}
}

// TestBuffers: results put in Buffers stay as they were while later runs add theirs, equal to
// results of runs without Buffers, and after Reset the next run reuses the same memory.
func TestBuffers(t *testing.T) {
	p := compileFile(t, classicPath)
	in := mustDecode(t, string(sampleInput(t)))
	var bufs exec.Buffers
	var kept []exec.Result
	env, plainEnv := map[string]any{}, map[string]any{}
	for run := range 4 {
		res, err := p.Run(exec.Call{Input: in, Env: env, Buffers: &bufs})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := p.Run(exec.Call{Input: in, Env: plainEnv})
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Output) != string(plain.Output) || !sameValue(res.EnvFields.Map(), plain.EnvFields.Map()) {
			t.Fatalf("run %d: %s, without Buffers %s", run, res.Output, plain.Output)
		}
		// Copies of what was expected: a later run must not change the results it was given.
		want := exec.Result{Output: bytes.Clone(res.Output), EnvFields: exec.Fields{}}
		for _, f := range res.EnvFields {
			want.EnvFields = append(want.EnvFields, exec.Field{Key: f.Key, Value: bytes.Clone(f.Value)})
		}
		kept = append(kept, res, want)
		env, plainEnv = res.Env, plain.Env
	}
	for i := 0; i < len(kept); i += 2 {
		if string(kept[i].Output) != string(kept[i+1].Output) || !sameValue(kept[i].EnvFields.Map(), kept[i+1].EnvFields.Map()) {
			t.Fatalf("result %d changed after later runs: %s, was %s", i/2, kept[i].Output, kept[i+1].Output)
		}
	}
	bufs.Reset()
	first, err := p.Run(exec.Call{Input: in, Env: env, Buffers: &bufs})
	if err != nil {
		t.Fatal(err)
	}
	array := unsafe.SliceData(first.Output)
	bufs.Reset()
	res, err := p.Run(exec.Call{Input: in, Env: first.Env, Buffers: &bufs})
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(res.Output) != array {
		t.Fatal("the run after Reset did not reuse the buffers")
	}
	if res, err := mustCompile(t, `result(1, {})`).Run(exec.Call{Env: map[string]any{}, Buffers: &bufs}); err != nil || res.EnvFields == nil {
		t.Fatalf("an empty env's fields: %#v, %v (want empty, not nil)", res.EnvFields, err)
	}
	// One large result does not pin its memory past the next Reset (see also exec's
	// TestBuffersReset).
	large := mustCompile(t, `repeat("x", 100000)`)
	if res, err := large.Run(exec.Call{Env: map[string]any{}, Buffers: &bufs}); err != nil || len(res.Output) != 100002 {
		t.Fatalf("large output: %d bytes, %v", len(res.Output), err)
	}
}
