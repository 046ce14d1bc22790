package exprengine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
)

// The attacks the byte budget and the regex bounds stop: each fails with its kind, quickly,
// and the same program then runs a harmless input.
func TestBudgetAttacks(t *testing.T) {
	for _, tc := range []struct {
		src  string
		kind exec.Kind
		err  error
	}{
		{`len(map(0..200000, repeat("x", 1048576)))`, exec.KindMemory, ErrHandlerMemory},
		{`len(map(0..200000, split(repeat("a", 1000000), "")))`, exec.KindMemory, ErrHandlerMemory},
		// Either budget may stop these first: the bytes, or the elements the VM counts.
		{`len(map(0..2000, toJSON(map(0..20000, "0123456789"))))`, exec.KindMemory, ErrHandlerMemory},
		{`len(map(0..200000, upper(repeat("x", 500000) + string(#))))`, exec.KindMemory, ErrHandlerMemory},
		{`len(map(0..2000, join(map(0..1000, "abcdefghij"), ",")))`, exec.KindMemory, ErrHandlerMemory},
		{`len(map(0..2000, fromJSON(toJSON(map(0..20000, #)))))`, exec.KindMemory, ErrHandlerMemory},
		{`let m = fromPairs(map(0..2000, [string(#), #])); len(map(0..100000, merge(m, {x: 1})))`, exec.KindMemory, ErrHandlerMemory},
		{`let m = fromPairs(map(0..2000, [string(#), #])); len(map(0..100000, keys(m)))`, exec.KindMemory, ErrHandlerMemory},
		{`"aaaa" matches repeat("(a|b)*", 170000)`, exec.KindTimeout, ErrRegexCost},
		{`"aaaa" matches repeat("(a|b)*", 2000)`, exec.KindMemory, ErrHandlerMemory},
		{`repeat("a", 1000000) matches (repeat("(a|aa)*", 1000) + "b")`, exec.KindTimeout, ErrRegexCost},
	} {
		// A long deadline: these are about memory, and a loaded machine is slow.
		p := compileWith(t, `input.good ? len(toJSON(input)) : (`+tc.src+`)`, func(l *Limits) { l.Timeout = 30 * time.Second })
		err := runErr(t, p, `{"good": false}`)
		cause := errors.Is(err, tc.err) || tc.err == ErrHandlerMemory && errors.Is(err, ErrMemoryBudget)
		if exec.KindOf(err) != tc.kind || !cause || !IsLimit(err) {
			t.Errorf("%.60s: %v, want kind %s caused by %v", tc.src, err, tc.kind, tc.err)
		}
		if len(err.Error()) > 400 {
			t.Errorf("%.60s: error of %d bytes", tc.src, len(err.Error()))
		}
		if res, err := p.Run(exec.Call{Input: map[string]any{"good": true}, Env: map[string]any{}}); err != nil || string(res.Output) != "18" {
			t.Errorf("%.60s: the next input: %v %s", tc.src, err, res.Output)
		}
	}
}

// A constant pattern too large for the budget is refused when the program is compiled, at
// the matches.
func TestBudgetConstantPattern(t *testing.T) {
	src := `input.s matches "` + strings.Repeat("(a|b)*", 2000) + `"`
	_, err := Compile("p.expr", []byte(src), DefaultLimits())
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Line != 1 || ce.Column != 9 || !strings.Contains(ce.Message, "more than the memory budget") {
		t.Errorf("got %v", err)
	}
	p := compileWith(t, `input.s matches "^[a-z]+@[a-z]+[.]com$"`, nil)
	if res, err := p.Run(exec.Call{Input: map[string]any{"s": "ab@cd.com"}, Env: map[string]any{}}); err != nil || string(res.Output) != "true" {
		t.Errorf("a small constant pattern: %v %s", err, res.Output)
	}
}

// A regex match the deadline allows runs; the same one with less time left is refused
// before it starts, naming the bound.
func TestBudgetRegexWork(t *testing.T) {
	p := compileWith(t, `input.s matches input.p`, nil)
	in := map[string]any{"s": strings.Repeat("a", 10000), "p": "(a|aa)*b"}
	if res, err := p.Run(exec.Call{Input: in, Env: map[string]any{}}); err != nil || string(res.Output) != "false" {
		t.Fatalf("a cheap match: %v %s", err, res.Output)
	}
	in["s"] = strings.Repeat("a", 1000000)
	in["p"] = strings.Repeat("(a|aa)*", 100) + "b"
	_, err := p.Run(exec.Call{Input: in, Env: map[string]any{}, Deadline: time.Now().Add(time.Second)})
	if !errors.Is(err, ErrRegexCost) || !exec.IsTimeout(err) || !strings.Contains(err.Error(), "ns a step") {
		t.Errorf("a costly match: %v", err)
	}
	in["p"] = strings.Repeat("x", DefaultMaxRegexBytes+1)
	if _, err := p.Run(exec.Call{Input: in, Env: map[string]any{}}); !errors.Is(err, ErrRegexCost) || !strings.Contains(err.Error(), "exceeds the limit of 16384") {
		t.Errorf("a long pattern: %v", err)
	}
}

// budgetPrograms allocate through every charged path; each must be charged alike by the fast
// path and the VM.
var budgetPrograms = []string{
	`let ks = map(1..input.n, "key-" + string(#)); merge({a: 1}, map(ks, [#, len(#)]))`,
	`let s = repeat("ab", input.n * 100); [len(split(s, "a")), len(upper(s)), len(toJSON([s, s]))]`,
	`reduce(1..input.n, #acc + string(#), "")`,
	`let m = fromPairs(map(1..input.n, [string(#), #])); [len(keys(m)), len(values(m)), len(toPairs(m))]`,
	`map(1..input.n, "k" + string(# % 7))`,
	`let s = map(1..input.n, string(# % 5)); map(s, "p-" + #)`, // the fast path's key cache hits
	`len(join(map(1..input.n, toBase64(string(#))), ","))`,
	`filter(1..input.n, string(#) matches "^[0-9]*7$")`,
	`result({n: input.n}, merge(env, {count: input.n, name: "x" + repeat("y", input.n)}))`,
}

// runBoth runs p on the fast path and on the VM with the same state, returning how many bytes
// each charged (-1 when it failed).
func runBoth(t *testing.T, p *Program, input map[string]any) (fast, vm int) {
	t.Helper()
	if p.fast == nil {
		t.Fatalf("%s: not on the fast path", p.File())
	}
	st := p.pool.Get().(*runState)
	defer p.pool.Put(st)
	env := map[string]any{}
	st.vars.Input, st.vars.Env, st.vars.Context = input, env, &st.ctx
	st.ctx.set(exec.Context{}, env)
	st.regex.deadline = time.Now().Add(time.Minute)
	st.mem.reset(p.lim.MaxRunBytes)
	fast = -1
	if _, reason, _ := p.fast.run(st, vmMemoryBudget(p.lim)); reason == fallbackNone {
		fast = st.mem.used
	}
	st.mem.reset(p.lim.MaxRunBytes)
	vm = -1
	if _, err := st.vm.Run(p.prog, &st.vars); err == nil {
		vm = st.mem.used
	}
	return fast, vm
}

func TestBudgetFastPathAgreesWithVM(t *testing.T) {
	for _, src := range budgetPrograms {
		p := compileWith(t, src, nil)
		fast, vm := runBoth(t, p, map[string]any{"n": 300})
		if fast != vm || fast <= 0 {
			t.Errorf("%s: the fast path charged %d bytes, the VM %d", src, fast, vm)
			continue
		}
		// With the smallest budget, grow the run across it: both paths succeed, or both
		// fail, at every size.
		q := compileWith(t, src, func(l *Limits) { l.MaxRunBytes = MinMaxRunBytes })
		failed, passed := 0, 0
		for n := 100; n < 1_000_000; n = n*9/8 + 1 {
			f, v := runBoth(t, q, map[string]any{"n": n})
			if (f < 0) != (v < 0) {
				t.Errorf("%s with n = %d: the fast path charged %d, the VM %d", src, n, f, v)
			}
			if v < 0 {
				failed++
			} else {
				passed++
			}
		}
		if failed == 0 || passed == 0 {
			t.Errorf("%s: %d sizes failed, %d passed: the sweep does not cross the budget", src, failed, passed)
		}
	}
}

// A sweep across the budget: the run that needs exactly the budget succeeds, one byte more
// fails with kind memory.
func TestBudgetSweep(t *testing.T) {
	// repeat charges n, the + 2n.
	p := compileWith(t, `let s = repeat("x", input.n); len(s + s)`, func(l *Limits) { l.MaxRunBytes = MinMaxRunBytes })
	failed, passed := 0, 0
	for n := MinMaxRunBytes/3 - 20; n <= MinMaxRunBytes/3+20; n++ {
		_, err := p.Run(exec.Call{Input: map[string]any{"n": n}, Env: map[string]any{}})
		switch want := 3*n <= MinMaxRunBytes; {
		case want && err == nil:
			passed++
		case !want && exec.IsMemory(err) && errors.Is(err, ErrHandlerMemory):
			failed++
		default:
			t.Errorf("n = %d (needs %d of %d): %v", n, 3*n, MinMaxRunBytes, err)
		}
	}
	if failed == 0 || passed == 0 {
		t.Errorf("%d failed, %d passed", failed, passed)
	}
}
