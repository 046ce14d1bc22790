package exprengine

import (
	"reflect"
	"sync/atomic"
)

// The fast path runs a program as a tree of Go closures instead of expr's VM: the same checked
// and rewritten tree, the same helpers, the same runtime functions for every operator, minus
// the VM's dispatch, stack and scope bookkeeping, which are most of a small handler's cost.
//
// It only has to be right when it succeeds. Any failure inside it (a helper's error, a failed
// type assertion, the memory budget, the deadline, a value it does not handle, such as a
// pointer where the VM would dereference one) panics, and Run then runs the program again on
// the VM, which gives the result or the error, with its position, exactly as before. Running
// twice is harmless: a program has no effects, and the helpers' only state is a cache. A
// program with a construct the fast path does not compile (see fastCompiler.compile) always runs
// on the VM.

// fastProgram is a program compiled to closures.
type fastProgram struct {
	root  fastFn
	slots int // let variables
	cats  int // concatenation caches
	// objects counts the merge sites that make an Object (see fastCompiler.merge); a
	// literal's Object needs no site (literalObject).
	objects int
	// keySites counts the input keys made of a constant and string(i) (see inputIndex).
	keySites int
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
	st     *runState
	slots  []any
	scopes []fastScope
	args   []any
	cats   []*catCache // kept from run to run; each made on its first use (4 KiB)
	// intCats are concatInt's, by the same sites as cats; each made on its first use (4 KiB).
	intCats []*[intCatSize]any
	slab    []any         // room for small arrays (array)
	objects []*objectSite // by merge site, kept from run to run; each made on its first use
	// keyAts are inputIndex's, by site; each made on its first use (4 KiB).
	keyAts []*[intCatSize]keyAt
	// okeys and ovals gather the keys and values of a merge that makes an Object.
	okeys  []string
	ovals  []any
	boxes  boxes
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

// fastBail is what the fast path panics with when it meets a value it leaves to the VM.
type fastBail struct{}

// run evaluates the program; false means the VM must run it.
func (fp *fastProgram) run(st *runState, budget uint) (out any, ok bool) {
	f := &st.frame
	f.st = st
	f.memory, f.budget = 0, budget
	if cap(f.slots) < fp.slots {
		f.slots = make([]any, fp.slots)
	}
	f.slots = f.slots[:fp.slots]
	if len(f.cats) != fp.cats {
		f.cats, f.intCats = make([]*catCache, fp.cats), make([]*[intCatSize]any, fp.cats)
	}
	if len(f.objects) != fp.objects {
		f.objects = make([]*objectSite, fp.objects)
	}
	if len(f.keyAts) != fp.keySites {
		f.keyAts = make([]*[intCatSize]keyAt, fp.keySites)
	}
	defer func() {
		if r := recover(); r != nil {
			out, ok = nil, false
		}
		clear(f.slots)
		clear(f.scopes[:cap(f.scopes)])
		f.scopes = f.scopes[:0]
		clear(f.args[:cap(f.args)])
		f.args = f.args[:0]
		f.st = nil
	}()
	return fp.root(f), true
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
		panic(fastBail{})
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
		panic(fastBail{})
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
