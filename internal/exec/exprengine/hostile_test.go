package exprengine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
)

// Each test here runs a program written to exhaust one resource and checks that the run
// fails cleanly, with the right kind and cause, instead of hanging or taking the process
// down. A broken limit shows up as a test that hangs (go test -timeout) or crashes.

func compileWith(t *testing.T, src string, mutate func(*Limits)) *Program {
	t.Helper()
	lim := DefaultLimits()
	if mutate != nil {
		mutate(&lim)
	}
	p, err := Compile("hostile.expr", []byte(src), lim)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

func shortTimeout(l *Limits) { l.Timeout = 50 * time.Millisecond }

func TestHostileRunawayLoops(t *testing.T) {
	for _, src := range []string{
		// ~1e9 iterations of cheap bodies over ranges built once: the memory budget does
		// not see them, only the deadline stops them.
		`let r = 0..999; reduce(r, reduce(r, reduce(r, #acc + 1, 0), 0), 0)`,
		`let r = 0..99999; sum(r, sum(r, # % 7))`,
		`let r = 0..99999; count(r, any(r, # < 0))`,
		`let r = 0..999; map(r, len(filter(r, all(r, {let v = # * 2; v >= 0}))))`,
		`let r = 0..99999; sortBy(r, count(r, # > 5))`,
	} {
		p := compileWith(t, src, shortTimeout)
		err := runErr(t, p, `{}`)
		var re *RuntimeError
		if exec.KindOf(err) != exec.KindTimeout || !exec.IsTimeout(err) || !errors.Is(err, ErrDeadline) || !errors.As(err, &re) {
			t.Errorf("%s: %v, want a timeout", src, err)
			continue
		}
		if !strings.Contains(re.Message, "still running at the deadline (50ms)") || re.Line != 1 {
			t.Errorf("%s: message %q", src, re.Message)
		}
		// The guard is re-armed for the next run: a quick input succeeds.
		quick := compileWith(t, `map(0..2, # + 1)`, shortTimeout)
		if _, err := quick.Run(exec.Call{Env: map[string]any{}}); err != nil {
			t.Errorf("after a timeout: %v", err)
		}
	}
}

func TestHostileDeadlineFromCall(t *testing.T) {
	p := compileWith(t, `let r = 0..999; reduce(r, reduce(r, reduce(r, #acc + 1, 0), 0), 0)`, nil)
	_, err := p.Run(exec.Call{Env: map[string]any{}, Deadline: time.Now().Add(30 * time.Millisecond)})
	if !exec.IsTimeout(err) {
		t.Errorf("Call.Deadline must bound the run: %v", err)
	}
	_, err = p.Run(exec.Call{Env: map[string]any{}, Deadline: time.Now().Add(-time.Second)})
	if !exec.IsTimeout(err) || !strings.Contains(err.Error(), "deadline passed before the run started") {
		t.Errorf("past deadline: %v", err)
	}
	// The same program times out again and again: timers are not confused across runs.
	q := compileWith(t, `let r = 0..99999; sum(r, sum(r, #))`, func(l *Limits) { l.Timeout = 20 * time.Millisecond })
	for range 3 {
		if _, err := q.Run(exec.Call{Env: map[string]any{}}); !exec.IsTimeout(err) {
			t.Fatalf("repeated timeout: %v", err)
		}
	}
}

func TestHostileStrings(t *testing.T) {
	var chain strings.Builder
	chain.WriteString(`let s0 = "xxxxxxxxxxxxxxxx";`)
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&chain, "let s%d = s%d + s%d;", i, i-1, i-1)
	}
	chain.WriteString("len(s40)")
	var b64 strings.Builder
	b64.WriteString(`let b0 = repeat("x", 1000);`)
	for i := 1; i <= 80; i++ {
		fmt.Fprintf(&b64, "let b%d = toBase64(b%d);", i, i-1)
	}
	b64.WriteString("len(b80)")
	for _, src := range []string{
		`reduce(1..40, #acc + #acc, "x")`,
		chain.String(),
		b64.String(),
		`repeat(repeat("x", 1000), 1000000)`,
		`join(map(1..1000, repeat("x", 2000)))`,
		`replace(repeat("a", 100000), "a", repeat("b", 100))`,
		`replace(repeat("a", 300000), "", "bcd")`,
		`let d = reduce(1..60, [#acc, #acc], 1); string(d)`,
		`let d = reduce(1..60, [#acc, #acc], 1); toJSON(d)`,
		`string(map(1..100000, "0123456789abcdef"))`,
		`let s = repeat("x", 1000000); date("2024-01-02").Format(s + s)`,
	} {
		p := compileWith(t, src, nil)
		err := runErr(t, p, `{}`)
		if exec.KindOf(err) != exec.KindHandler || !errors.Is(err, ErrStringTooLong) || !IsLimit(err) {
			t.Errorf("%.60s: %v, want the string limit", src, err)
		} else if !strings.Contains(err.Error(), "exceeds the limit of 1048576") && !strings.Contains(err.Error(), "exceed the limit of 1048576") {
			t.Errorf("%.60s: message %q", src, err)
		}
	}
	// Right at the limit is fine.
	p := compileWith(t, `len(repeat("x", 1048576))`, nil)
	if res, err := p.Run(exec.Call{Env: map[string]any{}}); err != nil || string(res.Output) != "1048576" {
		t.Errorf("a string of exactly MaxStringBytes: %v %s", err, res.Output)
	}
}

func TestHostileMemory(t *testing.T) {
	for _, src := range []string{
		`1..100000000`,
		`len(map(1..1000, 1..1000))`,
		`let d = reduce(1..60, [#acc, #acc], 1); d == d`,
		`let d = reduce(1..60, [#acc, #acc], 1); [d, 1] != [d, 2]`,
		`let d = reduce(1..60, [#acc, #acc], 1); d in [1, d]`,
		`let d = reduce(1..60, [#acc, #acc], 1); flatten(d)`,
		`let d = reduce(1..60, [#acc, #acc], 1); max(d)`,
		`let d = reduce(1..60, [#acc, #acc], 1); median(d)`,
		`let d = reduce(1..60, [#acc, #acc], 1); uniq([d, d])`,
		`len(uniq(map(1..5000, [#])))`,
		`let d = reduce(1..20000, [#acc], 1); flatten(d)`,
	} {
		p := compileWith(t, src, nil)
		err := runErr(t, p, `{}`)
		if exec.KindOf(err) != exec.KindMemory || !exec.IsMemory(err) || !errors.Is(err, ErrMemoryBudget) {
			t.Errorf("%s: %v, want the memory budget", src, err)
		}
	}
	err := runErr(t, compileWith(t, `1..100000000`, nil), `{}`)
	if !strings.Contains(err.Error(), "memory budget of 1000000 collection elements exceeded") {
		t.Errorf("budget message: %v", err)
	}
}

func TestHostileOutputs(t *testing.T) {
	for _, tc := range []struct {
		src   string
		cause error
	}{
		// Exponentially large encoding from linear memory: refused while encoding.
		{`reduce(1..60, [#acc, #acc], 1)`, ErrTooLarge},
		{`result(1, {d: reduce(1..60, [#acc, #acc], 1)})`, ErrTooLarge},
		{`reduce(1..20000, [#acc], 1)`, ErrTooDeep},
		{`result(1, {d: reduce(1..20000, fromPairs([["x", #acc]]), 1)})`, ErrTooDeep},
	} {
		err := runErr(t, compileWith(t, tc.src, nil), `{}`)
		if exec.KindOf(err) != exec.KindOutput || !errors.Is(err, tc.cause) {
			t.Errorf("%.50s: %v, want kind output caused by %v", tc.src, err, tc.cause)
		}
	}
	for _, src := range []string{
		`let d = reduce(1..20000, [#acc], 1); d == d`,
		`let d = reduce(1..20000, [#acc], 1); toJSON(d)`,
		`let d = reduce(1..20000, [#acc], 1); string(d)`,
	} {
		err := runErr(t, compileWith(t, src, nil), `{}`)
		if exec.KindOf(err) != exec.KindHandler || !IsLimit(err) {
			t.Errorf("%.50s: %v, want a limit error", src, err)
		}
	}
}

func TestHostilePanics(t *testing.T) {
	for _, tc := range []struct{ src, msg string }{
		{`fromPairs([[[1], 1]])`, "hash of unhashable type"},
		{`groupBy([[1], [2]], #)`, "hash of unhashable type"},
		{`input.xs[-5]`, "index out of range"},
		{`int("x")`, "invalid operation: int(x)"},
		{`sortBy([1, "a"], #)`, "invalid operation"},
		{`duration("forever")`, "invalid duration"},
	} {
		err := runErr(t, compileWith(t, tc.src, nil), `{"xs": [1]}`)
		if exec.KindOf(err) != exec.KindHandler || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want a handler error containing %q", tc.src, err, tc.msg)
		}
	}
}
