package exprengine

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// The tests below pin the behaviour of the shortcuts taken for speed (merge cloning its first
// map, the key cache, the env normalised by cloning), each against what the
// plain path gives.

func TestMergeCloneLeavesArgumentsAlone(t *testing.T) {
	env := map[string]any{"a": 1, "b": 2}
	res := run(t, `let m = {x: 1, y: 2, z: 3};
		result([merge(m, {x: 9}), m, merge(env, [["a", 5]]), env], merge(env, {c: 3}))`, `{}`, env)
	want := `[{"x":9,"y":2,"z":3},{"x":1,"y":2,"z":3},{"a":5,"b":2},{"a":1,"b":2}]`
	if string(res.Output) != want {
		t.Errorf("output %s, want %s", res.Output, want)
	}
	if !reflect.DeepEqual(env, map[string]any{"a": 1, "b": 2}) {
		t.Errorf("call.Env mutated: %v", env)
	}
	if !reflect.DeepEqual(res.Env, map[string]any{"a": 1, "b": 2, "c": 3}) {
		t.Errorf("env %v", res.Env)
	}
}

func TestMergeErrorsNameTheArgument(t *testing.T) {
	// {a: 1, b: 2} is large enough to be cloned rather than copied: the numbering must not
	// shift.
	err := runErr(t, mustCompile(t, `merge({a: 1, b: 2}, nil, [["c", 1], 2])`), `{}`)
	if !strings.Contains(err.Error(), "merge: argument 3 element 1 is int") {
		t.Errorf("error %v", err)
	}
	if got := string(run(t, `merge()`, `{}`, nil).Output); got != `{}` {
		t.Errorf("merge() = %s", got)
	}
}

func TestConcatMemoAcrossResets(t *testing.T) {
	// More distinct concatenations than the key cache holds, from several left operands, twice:
	// every result must be the plain concatenation whether it was memoised, evicted or new.
	p := mustCompile(t, `map(0..2999, {let i = string(#); ["k" + i, "key-" + i + "-" + i, i + "x"]})`)
	for range 2 {
		res, err := p.Run(exec.Call{Input: map[string]any{}, Env: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		rows := res.Value.([]any)
		if len(rows) != 3000 {
			t.Fatalf("%d rows", len(rows))
		}
		for _, n := range []int{0, 7, 1023, 1024, 2999} {
			i := strconv.Itoa(n)
			want := []any{"k" + i, "key-" + i + "-" + i, i + "x"}
			if !reflect.DeepEqual(rows[n], want) {
				t.Errorf("row %d = %v, want %v", n, rows[n], want)
			}
		}
	}
}

func TestEnvNormalisedLikeItsEncoding(t *testing.T) {
	res := run(t, `result(nil, {int: 7.0, neg: -0.0, frac: 0.5, huge: 1e300, n: 3, list: [1.0, 1.5], m: {f: 2.0}})`, `{}`, nil)
	want := map[string]any{"int": 7, "neg": 0, "frac": 0.5, "huge": 1e300, "n": 3,
		"list": []any{1, 1.5}, "m": map[string]any{"f": 2}}
	if !reflect.DeepEqual(res.Env, want) {
		t.Errorf("env %#v, want %#v", res.Env, want)
	}
	for k, v := range res.Env {
		back, err := codec.Decode(res.EnvFields.Map()[k])
		if err != nil || !reflect.DeepEqual(back, v) {
			t.Errorf("env[%q] = %#v, but its field %s decodes to %#v (%v)", k, v, res.EnvFields.Map()[k], back, err)
		}
	}
}

// TestMergeStreamedWithinBudget: a merge whose literal and map(array, [key, value]) arguments
// the fast path takes without building them must still charge the memory budget what the VM
// charges for building them. Across budgets on both sides of the limit, every run the fast
// path finishes is compared with the VM's (TestMain): a fast path charging less would succeed
// where the VM fails.
func TestMergeStreamedWithinBudget(t *testing.T) {
	src := []byte(`merge({a: 1, b: input.n}, map(1..input.n, ["k" + string(#), # * 2]), {c: 3})`)
	failed, passed := 0, 0
	for budget := uint(2); budget <= 80; budget++ {
		lim := DefaultLimits()
		lim.MemoryBudget = budget
		p, err := Compile("budget.expr", src, lim)
		if err != nil {
			t.Fatal(err)
		}
		if fast, why := p.FastPath(); !fast {
			t.Fatalf("not on the fast path: %s", why)
		}
		_, err = p.Run(exec.Call{Input: map[string]any{"n": 10}, Env: map[string]any{}})
		switch {
		case err == nil:
			passed++
		case errors.Is(err, ErrMemoryBudget):
			failed++
		default:
			t.Fatalf("budget %d: %v", budget, err)
		}
	}
	if failed == 0 || passed == 0 {
		t.Errorf("%d budgets failed, %d passed: the sweep does not cross the limit", failed, passed)
	}
}

// TestBoxedValuesOutliveRuns: numbers and arrays the fast path boxed keep their values after
// the run, through later runs that box more and through collections: every env a run returned
// still encodes as it did when the run returned it.
func TestBoxedValuesOutliveRuns(t *testing.T) {
	p := compileFile(t, classicPath)
	dec := codec.NewDecoder()
	type kept struct {
		env     map[string]any
		encoded string
	}
	var all []kept
	env := map[string]any{}
	for i := range 600 {
		raw := fmt.Sprintf(`{"timestamp": %d, "net_io_counters_eth0-bytes_sent": %d, "net_io_counters_eth0-bytes_recv": 7,
			"virtual_memory-cached": 1, "virtual_memory-buffers": 2, "virtual_memory-total": 9,
			"cpu_percent-0": %d.5, "cpu_percent-1": %d, "cpu_percent-2": 1e%d}`, i, 1000+i, i, 300+i, i%300)
		in, err := exec.InputFor(p, []byte(raw), dec)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Run(exec.Call{Input: in, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(res.Env)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, kept{res.Env, string(b)})
		env = res.Env
		if i%100 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	for i, k := range all {
		b, err := json.Marshal(k.env)
		if err != nil || string(b) != k.encoded {
			t.Fatalf("env of run %d: now %s (%v), when returned %s", i, b, err, k.encoded)
		}
	}
	if p.fast == nil || p.fast.bails.Load() != 0 {
		t.Fatal("the fast path did not run the classic handler")
	}
}
