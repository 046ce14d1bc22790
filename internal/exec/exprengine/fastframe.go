package exprengine

import (
	"reflect"
	"runtime/debug"
	"sync/atomic"

	"github.com/eventrt/eventrt/internal/exec"
)

// The fast path runs a program as a tree of Go closures instead of expr's VM: the same checked
// and rewritten tree, the same helpers, the same runtime functions for every operator, minus
// the VM's dispatch, stack and scope bookkeeping, which are most of a small handler's cost.
//
// It only has to be right when it succeeds. Where it meets what it does not handle (a value
// such as a pointer where the VM would dereference one, the memory budget, a failure of the
// program, whose error with its position only the VM gives) it panics with a fastBail, and
// Run runs the program again on the VM, which gives the result or the error exactly as
// before. Running twice is harmless: a program has no effects, and the helpers' only state is
// a cache. A program with a construct the fast path does not compile (see
// fastCompiler.compile) always runs on the VM. Every run on the VM is counted, by reason
// (ObserveFallbacks).
//
// Any other panic is either the program's failure met in an operator or builtin (an operand
// of the wrong type, say, on which the VM's opcodes panic alike) or a bug of the fast path.
// The VM tells them apart: when it fails too the run fails with its error; when it succeeds
// the fast path was wrong, and the run fails with an internal error carrying the fast path's
// panic and stack, rather than hiding the bug behind the VM's value.

// fastProgram is a program compiled to closures.
type fastProgram struct {
	root  fastFn
	slots int // let variables
	// objects counts the merge sites that make an Object (see fastCompiler.merge); a
	// literal's Object needs no site (literalObject).
	objects int
	// unordered: the program lists a map's keys or values, whose order varies between runs
	// (the VM's too), so the fast path's value cannot be compared with the VM's.
	unordered bool
	// bails counts the runs since the last one the fast path finished. Past maxFastBails it
	// only tries every fastProbe-th run: a handler that always needs the VM (one that returns
	// context, say) should not pay for two runs each time, and one that met a run of bad
	// inputs should get the fast path back.
	bails atomic.Int64
}

const (
	maxFastBails = 16
	fastProbe    = 64
)

type fastFn func(f *frame) any

// frame is one fast run's state, kept in the pooled run state.
type frame struct {
	st      *runState
	slots   []any
	scopes  []fastScope
	args    []any
	slab    []any         // room for small arrays (array)
	objects []*objectSite // by merge site, kept from run to run; each made on its first use
	// okeys and ovals gather the keys and values of a merge that makes an Object.
	okeys  []string
	ovals  []any
	memory uint
	budget uint
}

// fastScope is one iteration of a builtin over an array, as the VM's vm.Scope.
type fastScope struct {
	ranged bool // the ints lo, lo+1, ... (length of them), not made
	lo     int
	ints   []int
	anys   []any
	floats []float64
	strs   []string
	array  reflect.Value
	index  int
	length int
	count  int
	acc    any
}

func (s *fastScope) item() any {
	switch {
	case s.ranged:
		return s.lo + s.index
	case s.ints != nil:
		return s.ints[s.index]
	case s.floats != nil:
		return s.floats[s.index]
	case s.strs != nil:
		return s.strs[s.index]
	case s.anys != nil:
		return s.anys[s.index]
	}
	return s.array.Index(s.index).Interface()
}

// fastBail is what the fast path panics with to leave a run to the VM, and why.
type fastBail struct{ reason fallback }

// fallback is why a run went to the VM; its names are FallbackReasons'.
type fallback uint8

const (
	fallbackNone        fallback = iota
	fallbackUnsupported          // the program has a construct the fast path does not compile
	fallbackValue                // a value the fast path leaves to the VM (a pointer, a missing key)
	fallbackBudget               // the memory budget ran out: the VM decides
	fallbackError                // the program failed: the VM gives the error and its position
	fallbackBackoff              // the fast path gave up on too many runs lately; tried again every fastProbe runs
)

var fallbackNames = [...]string{
	fallbackUnsupported: "unsupported",
	fallbackValue:       "value",
	fallbackBudget:      "budget",
	fallbackError:       "error",
	fallbackBackoff:     "backoff",
}

// FallbackReasons are the reasons a run goes to expr's VM rather than the fast path, as
// [Program.ObserveFallbacks] reports them: a small fixed set, fit for a metric label.
func FallbackReasons() []string { return append([]string(nil), fallbackNames[fallbackUnsupported:]...) }

func (r fallback) String() string { return fallbackNames[r] }

// run evaluates the program. A reason other than fallbackNone means the VM must run it; bug
// is set when the fast path stopped on a panic of its own rather than a fastBail.
func (fp *fastProgram) run(st *runState, budget uint) (out any, reason fallback, bug *exec.PanicError) {
	f := &st.frame
	f.st = st
	f.memory, f.budget = 0, budget
	if cap(f.slots) < fp.slots {
		f.slots = make([]any, fp.slots)
	}
	f.slots = f.slots[:fp.slots]
	if len(f.objects) != fp.objects {
		f.objects = make([]*objectSite, fp.objects)
	}
	defer func() {
		if r := recover(); r != nil {
			out = nil
			if b, isBail := r.(fastBail); isBail {
				reason = b.reason
			} else if budgetStop(r) {
				reason = fallbackBudget
			} else {
				reason, bug = fallbackError, &exec.PanicError{Value: r, Stack: debug.Stack()}
			}
		}
		clear(f.slots)
		clear(f.scopes[:cap(f.scopes)])
		f.scopes = f.scopes[:0]
		clear(f.args[:cap(f.args)])
		f.args = f.args[:0]
		f.st = nil
	}()
	return fp.root(f), fallbackNone, nil
}

// array returns a new []any of length n. Small arrays (a handler's [key, value] pairs) are cut
// from a shared chunk, one allocation for many; each has its capacity capped, so no array
// can grow into another's elements. What is left of a chunk serves the next run.
func (f *frame) array(n int) []any {
	if n == 0 || n > maxSlabArray {
		return make([]any, n) // non-nil when empty, as the VM's
	}
	if len(f.slab) < n {
		f.slab = make([]any, slabSize)
	}
	arr := f.slab[:n:n]
	f.slab = f.slab[n:]
	return arr
}

const (
	maxSlabArray = 8
	slabSize     = 128
)

// input is the program's input as a value: the map, where the input is a document.
func (f *frame) input() any {
	if d, ok := f.st.vars.Input.(*document); ok {
		return d.asMap()
	}
	return f.st.vars.Input
}

func (f *frame) memGrow(n uint) {
	f.memory += n
	if f.memory >= f.budget {
		panic(fastBail{fallbackBudget})
	}
}

// deref is the VM's OpDeref for the values a run meets: they are never pointers, except
// context, which the fast path leaves to the VM.
func deref(v any) any {
	switch v.(type) {
	case nil, int, float64, string, bool, map[string]any, []any, []int:
		return v
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Pointer, reflect.Interface:
		panic(fastBail{fallbackValue})
	}
	return v
}

// evalArgs evaluates call arguments onto the frame's argument stack, which nested calls share,
// and returns them; popArgs(base) drops them once the call returns.
func (f *frame) evalArgs(args []fastFn) (vals []any, base int) {
	base = len(f.args)
	for _, a := range args {
		v := a(f)
		f.args = append(f.args, v)
	}
	return f.args[base:len(f.args):len(f.args)], base
}

func (f *frame) popArgs(base int) {
	clear(f.args[base:])
	f.args = f.args[:base]
}
