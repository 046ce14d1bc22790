package exprengine

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
)

// fastRecord collects what fastCheck saw while this package's tests ran.
var fastRecord struct {
	sync.Mutex
	runs       int
	mismatches []string
}

// TestMain makes every run of every test in this package a differential test of the fast
// path: each value it produces is compared with the VM's for the same run. Not when
// benchmarks run: they would measure both.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	fastCheck = func(p *Program, fast, vm any, vmErr error) {
		fastRecord.Lock()
		defer fastRecord.Unlock()
		fastRecord.runs++
		switch {
		case p.fast.unordered && vmErr == nil:
		case errors.Is(vmErr, ErrDeadline):
			// The VM's second run met the deadline the fast path's run did not (a loaded
			// machine): timing, not a disagreement.
		case vmErr != nil:
			fastRecord.mismatches = append(fastRecord.mismatches, fmt.Sprintf("%s: fast path gave %s, the VM failed: %s", p.File(), cutValue(fast), cut(vmErr.Error())))
		case !sameValue(fast, vm):
			fastRecord.mismatches = append(fastRecord.mismatches, fmt.Sprintf("%s: fast path gave %s, the VM %s", p.File(), cutValue(fast), cutValue(vm)))
		}
	}
	code := m.Run()
	fastCheck = nil
	if len(fastRecord.mismatches) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d of %d fast-path runs differ from the VM:\n", len(fastRecord.mismatches), fastRecord.runs)
		for _, m := range fastRecord.mismatches {
			fmt.Fprintln(os.Stderr, "  "+m)
		}
		code = 1
	}
	os.Exit(code)
}

// cutValue is v as %#v, cut to a few hundred bytes: a mismatch on a large value must not
// print all of it.
func cutValue(v any) string {
	if !sizeWithin(v, 4*maxShown) {
		return fmt.Sprintf("a %s too large to show", typeName(v))
	}
	return cut(fmt.Sprintf("%#v", v))
}

const maxShown = 300

func cut(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:maxShown], len(s))
}

// sameValue is deep equality that also requires the same dynamic types (an int is not a
// float64 of the same value) and takes NaN as equal to itself. Pairs of arrays or maps already
// compared are not compared again: a program can build a value that shares its parts
// exponentially often (reduce(1..60, [#acc, #acc], 1)).
func sameValue(a, b any) bool {
	return (&valueComparer{seen: map[[2]uintptr]bool{}}).same(a, b)
}

type valueComparer struct {
	seen map[[2]uintptr]bool
}

func (c *valueComparer) same(a, b any) bool {
	// The fast path's output object is the VM's output map.
	if o, ok := a.(*codec.Object); ok {
		a = o.Map()
	}
	if o, ok := b.(*codec.Object); ok {
		b = o.Map()
	}
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	switch x := a.(type) {
	case float64:
		y := b.(float64)
		return x == y && math.Signbit(x) == math.Signbit(y) || math.IsNaN(x) && math.IsNaN(y)
	case []any:
		y := b.([]any)
		if len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		key := [2]uintptr{reflect.ValueOf(x).Pointer(), reflect.ValueOf(y).Pointer()}
		if done, ok := c.seen[key]; ok && len(x) > 0 {
			return done
		}
		eq := true
		for i := range x {
			if eq = c.same(x[i], y[i]); !eq {
				break
			}
		}
		c.seen[key] = eq
		return eq
	case map[string]any:
		y := b.(map[string]any)
		if len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		key := [2]uintptr{reflect.ValueOf(x).Pointer(), reflect.ValueOf(y).Pointer()}
		if done, ok := c.seen[key]; ok {
			return done
		}
		eq := true
		for k, v := range x {
			w, ok := y[k]
			if eq = ok && c.same(v, w); !eq {
				break
			}
		}
		c.seen[key] = eq
		return eq
	case *resultValue:
		y := b.(*resultValue)
		return c.same(x.output, y.output) && c.same(x.env, y.env)
	}
	return reflect.DeepEqual(a, b)
}

// TestFastPathAgainstVM runs programs that cover every construct the fast path compiles, and
// its edge cases, on several inputs. TestMain compares each value with the VM's; this test
// also requires that the fast path compiled the program and, for those not marked, finished
// the run itself rather than leaving it to the VM.
func TestFastPathAgainstVM(t *testing.T) {
	for _, c := range fastCorpus {
		p := mustCompile(t, c.src)
		if p.fast == nil {
			if !c.vm {
				t.Errorf("%s: not compiled for the fast path", c.src)
			}
			continue
		}
		for i, in := range fastInputs {
			ctx := exec.Context{Host: "h", Port: 6379, EntryID: "1-0"}
			if i == 1 {
				ctx = exec.Context{}
			}
			p.fast.bails.Store(0)
			decoded, err := p.Run(exec.Call{Input: mustDecode(t, in), Env: map[string]any{"n": 1}, Context: ctx})
			if p.fast.bails.Load() != 0 && !c.vm && i == 0 {
				t.Errorf("%s: the fast path left the run to the VM (error %v)", c.src, err)
			}
			// The same input as JSON, which the program decodes itself (into a document).
			p.fast.bails.Store(0)
			raw, rawErr := p.Run(exec.Call{Input: json.RawMessage(in), Env: map[string]any{"n": 1}, Context: ctx})
			if p.fast.bails.Load() != 0 && !c.vm && i == 0 {
				t.Errorf("%s, input as JSON: the fast path left the run to the VM (error %v)", c.src, rawErr)
			}
			if (err == nil) != (rawErr == nil) || string(decoded.Output) != string(raw.Output) && !p.fast.unordered {
				t.Errorf("%s: input decoded %s (%v), as JSON %s (%v)", c.src, decoded.Output, err, raw.Output, rawErr)
			}
		}
	}
}

// FuzzFastAgainstVM: for any program and input, the fast path's value is the VM's.
func FuzzFastAgainstVM(f *testing.F) {
	for _, c := range fastCorpus {
		for _, in := range fastInputs {
			f.Add(c.src, in)
		}
	}
	// Programs whose merge may write into the env the second run hands over (EnvOwned).
	for _, src := range []string{
		`result(input, merge(env, {n: (env.n ?? 0) + 1}))`,
		`"a" in env ? result(1, merge(env, map(["a", "b"], [#, (env[#] ?? 0) + 1]))) : result(2, merge(env, {a: input}))`,
		`env.n == 2 ? result(0, merge(env, {c: 1})) : result(1, merge(env, {n: 2}, input))`,
	} {
		for _, in := range fastInputs {
			f.Add(src, in)
		}
	}
	f.Fuzz(func(t *testing.T, src, input string) {
		in, err := exec.DecodeInput([]byte(input))
		if err != nil {
			return
		}
		p, err := Compile("fuzz.expr", []byte(src), DefaultLimits())
		if err != nil {
			return
		}
		fastRecord.Lock()
		before := len(fastRecord.mismatches)
		fastRecord.Unlock()
		_, _ = p.Run(exec.Call{Input: in, Env: map[string]any{"n": 1}})
		_, _ = p.Run(exec.Call{Input: json.RawMessage(input), Env: map[string]any{"n": 1}, EnvOwned: true})
		fastRecord.Lock()
		defer fastRecord.Unlock()
		if len(fastRecord.mismatches) > before {
			t.Fatal(fastRecord.mismatches[before])
		}
	})
}

var fastInputs = []string{
	`{"a": 2, "b": 3.5, "s": "str", "t": "ing", "xs": [1, 2, 3, [4, 5]], "m": {"k": "v", "n": null},
		  "flag": true, "empty": [], "nums": [3, 1, 2], "big": 9223372036854775807, "z": 0, "neg": -0.0}`,
	`{"a": -1, "b": 0, "s": "", "t": "x", "xs": [], "m": {}, "flag": false, "empty": [], "nums": [], "big": 1, "z": 0.5}`,
	`{"a": 1e300, "b": -2, "s": "a", "t": "b", "xs": [null], "m": {"k": 1}, "flag": true, "nums": [1.5, 2.5], "big": -9223372036854775808}`,
	`{"a": 3, "a": 4.5, "s": "dup", "nums": [1], "m": {}}`,
	`[1, 2]`, `"text"`, `{}`,
}

// fastCorpus covers the constructs the fast path compiles. vm marks a program whose run may
// fall back to the VM (it fails, or meets a value the fast path leaves to the VM).
var fastCorpus = []struct {
	src string
	vm  bool
}{
	{src: `input.a + input.b`}, {src: `input.a - input.b * 2 / 3`}, {src: `input.big + 1`},
	{src: `input.big * 2`}, {src: `input.a / input.z`, vm: true}, {src: `input.a % 3`, vm: true},
	{src: `input.a ** 2`}, {src: `-input.b`}, {src: `+input.a`}, {src: `input.z - 0`},
	{src: `input.s + input.t`}, {src: `input.s + string(input.a)`, vm: true}, {src: `"k" + string(1) + "v"`},
	{src: `input.a < input.b`}, {src: `input.a >= 2 && input.b <= 3.5`}, {src: `input.a > input.b`},
	{src: `input.a == 2`}, {src: `input.a != 2.0`}, {src: `input.s == "str"`}, {src: `1 == 1`, vm: false},
	{src: `input.xs == [1, 2, 3, [4, 5]]`}, {src: `input.m != {"k": "v", "n": nil}`},
	{src: `input.missing ?? input.a ?? 3`}, {src: `input.m.n ?? "none"`}, {src: `nil ?? 1`},
	{src: `false || input.a`}, {src: `input.flag && input.s`}, {src: `input.flag || 1 / 0 > 0`},
	{src: `!input.flag`}, {src: `not input.flag`}, {src: `!input.a`, vm: true},
	{src: `input.flag ? "yes" : 2`}, {src: `input.a > 1 ? input.xs : input.m`},
	{src: `[1, 2.5, "x", nil, true, input.a]`}, {src: `{a: 1, b: input.s, "c d": [input.b]}`},
	{src: `{(input.s): 1, (input.t): 2}`, vm: true}, {src: `{a: 1, ("a"): 2}`},
	{src: `"k" in input.m`}, {src: `2 in input.xs`}, {src: `"x" in ["x", "y"]`}, {src: `input.a in 1..3`},
	{src: `input.a not in input.nums`}, {src: `input.s contains "t"`}, {src: `input.missing contains "x"`},
	{src: `input.s startsWith "s"`}, {src: `input.s endsWith input.t`},
	{src: `1..input.a`}, {src: `input.a..1`}, {src: `5..1`}, {src: `len(0..input.a)`},
	{src: `filter(-1..input.a, # != 0)`}, {src: `sum(input.b..5)`}, {src: `sum(1..input.a, # * 1.5)`},
	{src: `count(0..input.a + 3, # % 2 == 0)`}, {src: `findLastIndex(0..len(input.xs), # < 2)`},
	{src: `reduce(1..len(input.nums), #acc * 10 + #, 0)`}, {src: `all(input.a..0, false)`},
	{src: `one(input.a - 3..input.a, # == 0)`}, {src: `find(1..input.a, # > 100)`}, {src: `map(input.a..input.a + 2, #index - #)`},
	{src: `sum(0..input.a, input["cpu-" + string(#)] ?? 1)`}, {src: `sum(1..input.a, #)`},
	{src: `map(-3..300, "k" + string(#))`}, {src: `map(250..260, string(#) + "-v")`}, {src: `"k" + string(input.a)`},
	{src: `"k" + string(input.b)`}, {src: `string(input.s) + "k"`}, {src: `"k" + string(input.nums)`},
	{src: `map([1, 2.5, "x", nil, true], "k" + string(#))`}, {src: `map(1..3, ("a" + string(#)) + ("b" + string(# * 100)))`},
	{src: `map(input.nums, # * 2)`}, {src: `map(input.nums, #index)`}, {src: `map(1..3, map(1..#, # * 2))`},
	{src: `map(1..3, {let x = #; map(1..2, x + # + #index)})`}, {src: `map(input.m, #)`, vm: true},
	{src: `filter(input.nums, # > 1)`}, {src: `filter(input.nums, # > 9)`}, {src: `map(filter(input.nums, # > 1), # * 10)`},
	{src: `filter(input.nums, # > 1)[0]`, vm: true}, {src: `first(filter(input.nums, # > 1))`},
	{src: `last(filter(input.nums, # > 1))`}, {src: `find(input.nums, # < 3)`}, {src: `findLast(input.nums, # > 1)`},
	{src: `findIndex(input.nums, # == 2)`}, {src: `findLastIndex(input.nums, # > 0)`}, {src: `findIndex(input.xs, # == 9)`},
	{src: `count(input.nums, # > 1)`}, {src: `count(input.nums, # > 1) > 0`}, {src: `count(input.nums, # > 1) >= 2`},
	{src: `len(filter(input.nums, # > 1))`}, {src: `count([true, false, true])`},
	{src: `all(input.nums, # > 0)`}, {src: `any(input.nums, # > 2)`}, {src: `none(input.nums, # > 5)`},
	{src: `one(input.nums, # == 2)`}, {src: `all([], false)`}, {src: `any(input.xs, # == nil)`},
	{src: `sum(input.nums)`}, {src: `sum([1.5, 2])`}, {src: `sum(input.nums, # * 1.5)`}, {src: `sum([])`},
	{src: `sum(map(input.nums, # + 1))`}, {src: `reduce(input.nums, #acc + #, 0)`}, {src: `reduce(input.nums, #acc * # + #index)`, vm: true},
	{src: `reduce(1..3, #acc + len(#acc), "")`, vm: true}, {src: `reduce(input.xs, [#acc, #], [])`},
	{src: `len(input.s) + len(input.xs) + len(input.m)`}, {src: `upper(input.s) + lower("X")`}, {src: `abs(-input.b)`},
	{src: `max(input.a, 5)`}, {src: `type(input.m)`}, {src: `int(input.b)`}, {src: `float(input.a)`},
	{src: `round(input.b)`}, {src: `round(input.b * 1.234567, 2)`}, {src: `string(input.xs)`}, {src: `toJSON(input.m)`},
	{src: `merge({a: 1}, input.m, [["z", 2]])`}, {src: `fromJSON("[1, 2]")`}, {src: `join(["a", input.s], ",")`},
	{src: `keys(input.m)`}, {src: `input.xs[0] + input.xs[-1][1]`, vm: true}, {src: `input["m"]["k"]`},
	{src: `input.m?.k`}, {src: `input.xs[1:]`}, {src: `input.s matches "^s"`},
	{src: `input?.m?.k`}, {src: `input.missing?.k`}, {src: `input.missing?.k.z`}, {src: `input?.missing?.k ?? "d"`},
	{src: `input.xs?.[0]`}, {src: `map(input.nums, input.missing?.x)`}, {src: `input.m?.n`}, {src: `(input.missing?.a)?.b`},
	{src: `input.s[1:]`}, {src: `input.xs[:-1]`}, {src: `input.xs[input.a:]`}, {src: `input.nums[5:9]`},
	{src: `input.s matches input.t`}, {src: `input.missing matches "x"`},
	{src: `let x = input.a; let y = x * 2; y + x`}, {src: `let f = input.nums; map(f, # + len(f))`},
	{src: `context.host + ":" + string(context.port)`}, {src: `context.entry_id ?? "none"`},
	{src: `context.env`}, {src: `context`}, {src: `$env.input`, vm: true},
	{src: `result(input.a, merge(env, {n: (env.n ?? 0) + 1}))`}, {src: `result(nil, {})`},
	{src: `env.n ?? 0`}, {src: `input`}, {src: `nil`}, {src: `true`}, {src: `1.5`}, {src: `"s"`},
	{src: `date("2024-01-02").Year()`, vm: true},
	// merge takes its map literals and map(array, [key, value]) arguments without building them.
	{src: `merge({a: 1, b: input.a}, map(input.nums, ["k" + string(#), # * 2]))`},
	{src: `merge(input.m, {k: 2}, map(0..input.a, [string(#), #index]))`},
	{src: `merge({a: 1}, map([], ["x", 1]), nil, {a: 2}, input.missing)`},
	{src: `merge({a: 1}, map(input.xs, ["a", #]))`}, {src: `merge(map(1..2, [string(#), map(1..#, # * 10)]))`},
	{src: `result(merge({x: 1}, map(1..3, ["k" + string(#), round(# / 3, 2)])), merge(env, map(1..3, ["e" + string(#), (env["e" + string(#)] ?? 0) + #]), {n: 1}))`},
	{src: `merge(map(input.nums, [#, 1]))`, vm: true}, {src: `merge({a: 1}, input.s)`, vm: true},
	{src: `merge(map(input.nums, [#]))`, vm: true}, {src: `merge({a: 1}, map(1..3, [{}, #]))`, vm: true},
	{src: `merge({a: {b: 1}}, map(input.nums, [input.s, [#, #index]]), {a: nil})`},
	// A merge that is the output makes an Object (see object.go).
	{src: `let ps = map(1..3, [string(#), #]); merge(ps, {a: 1}, ps, [["a", 2]], nil)`},
	{src: `merge({a: 1}, input.xs)`, vm: true}, {src: `input.a > 2 ? merge({x: 1}, [[input.s, 2]]) : merge({y: 2})`},
	{src: `result(input.flag ? merge({f: 1}, [["g", input.a]]) : nil, merge(env, {n: 2}))`}, {src: `merge({k: 1}, [[1, 2]])`, vm: true},
	// An element at a constant index.
	{src: `map(map(1..3, [#, # * 2]), #[1] - #[0])`}, {src: `map(1..3, [#, # * 2])[2][-1]`}, {src: `[[1, 2], [3, 4]][1][0]`},
	{src: `map([[1, 2], [3]], #[1])`, vm: true}, {src: `map(input.xs, #[0])`, vm: true}, {src: `input.m[0]`, vm: true},
	// ?? feeding arithmetic.
	{src: `(env.n ?? 0) * 59 + (env.missing ?? input.b) / 2`}, {src: `(input.missing ?? input.a ?? 1.5) - 1`},
	{src: `(input.m.n ?? 2) * 2`}, {src: `(input.s ?? 1) * 2`, vm: true}, {src: `(nil ?? input.big) + 1`},
}

// TestFreshEnvNormalisedInPlace: an env made by a merge call in result's second argument is
// normalised in place, which must leave the output, the caller's env and the program's own
// constants as they were.
func TestFreshEnvNormalisedInPlace(t *testing.T) {
	p := mustCompile(t, `let base = {n: 7.0}; result(merge(base, {out: 2.0}), merge(env, base, {f: 1.5, m: 3.0}))`)
	if fast, why := p.FastPath(); !fast {
		t.Fatalf("not on the fast path: %s", why)
	}
	callerEnv := map[string]any{"old": 1}
	for _, envOnly := range []bool{false, true, false} {
		res, err := p.Run(exec.Call{Input: map[string]any{}, Env: callerEnv, EnvOnly: envOnly})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"old": 1, "n": 7, "f": 1.5, "m": 3}
		if !sameValue(res.Env, want) {
			t.Fatalf("envOnly %v: env %#v, want %#v", envOnly, res.Env, want)
		}
		if string(res.Output) != `{"n":7,"out":2}` || !sameValue(res.Value, map[string]any{"n": 7.0, "out": 2.0}) {
			t.Fatalf("envOnly %v: output %s (%#v)", envOnly, res.Output, res.Value)
		}
		if !sameValue(callerEnv, map[string]any{"old": 1}) {
			t.Fatalf("the caller's env changed: %#v", callerEnv)
		}
	}
}
