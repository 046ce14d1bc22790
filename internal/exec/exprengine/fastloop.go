package exprengine

import (
	"reflect"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// Builtins that iterate (map, filter, all, reduce, sum...) as loops over a fastScope, the
// fast path's vm.Scope.

// rangeBounds evaluates the operands of lo..hi as the VM's range operator does, charging the
// memory budget for the array it makes: the first element and the length.
func rangeBounds(l, r fastFn) func(f *frame) (lo, size int) {
	return func(f *frame) (int, int) {
		lo, hi := runtime.ToInt(l(f)), runtime.ToInt(r(f))
		size := max(hi-lo+1, 0)
		f.memGrow(uint(size))
		return lo, size
	}
}

// iteration compiles the array a builtin iterates over, returning what opens the iteration.
// A range (lo..hi, bounds not constant) is iterated without making the []int the VM makes.
func (c *fastCompiler) iteration(n ast.Node) func(f *frame) *fastScope {
	if b, ok := n.(*ast.BinaryNode); ok && b.Operator == ".." {
		bounds := rangeBounds(c.operand(b.Left), c.operand(b.Right))
		return func(f *frame) *fastScope {
			lo, size := bounds(f)
			f.scopes = append(f.scopes, fastScope{ranged: true, lo: lo, length: size})
			return &f.scopes[len(f.scopes)-1]
		}
	}
	coll := c.operand(n)
	return func(f *frame) *fastScope { return f.begin(coll(f)) }
}

// begin starts an iteration over v, as OpBegin.
func (f *frame) begin(v any) *fastScope {
	f.scopes = append(f.scopes, fastScope{})
	s := &f.scopes[len(f.scopes)-1]
	switch a := v.(type) {
	case []int:
		s.ints, s.length = a, len(a)
	case []float64:
		s.floats, s.length = a, len(a)
	case []string:
		s.strs, s.length = a, len(a)
	case []any:
		s.anys, s.length = a, len(a)
	default:
		rv := reflect.ValueOf(v)
		if k := rv.Kind(); k != reflect.Slice && k != reflect.Array {
			panic(fastBail{fallbackError}) // not an array: the VM's error
		}
		s.array, s.length = rv, rv.Len()
	}
	return s
}

// end closes the innermost iteration, as OpEnd. The scope's pointer is not kept: a nested
// iteration may have grown f.scopes.
func (f *frame) end() {
	f.scopes[len(f.scopes)-1] = fastScope{}
	f.scopes = f.scopes[:len(f.scopes)-1]
}

func (f *frame) top() *fastScope { return &f.scopes[len(f.scopes)-1] }

func (c *fastCompiler) compileBuiltinNode(n *ast.BuiltinNode) fastFn {
	c.noteOrder(n.Name)
	switch n.Name {
	case "all", "none", "any", "one", "filter", "map", "count", "sum",
		"find", "findIndex", "findLast", "findLastIndex":
		return c.loop(n)
	case "reduce":
		return c.reduce(n)
	case "groupBy", "sortBy":
		notFast("builtin " + n.Name)
	}
	if n.Name == "len" && len(n.Arguments) == 1 && c.isInput(n.Arguments[0]) {
		return func(f *frame) any {
			if d, ok := f.st.vars.Input.(*document); ok {
				return len(d.vals)
			}
			return builtin.Len(deref(f.input()))
		}
	}
	id, ok := builtin.Index[n.Name]
	if !ok {
		notFast("builtin " + n.Name)
	}
	fn := builtin.Builtins[id]
	args := make([]fastFn, len(n.Arguments))
	for i, a := range n.Arguments {
		if a.Type() == nil {
			notFast("untyped builtin argument")
		}
		args[i] = c.operand(a)
	}
	switch {
	case fn.Fast != nil:
		if len(args) != 1 {
			notFast("builtin arity")
		}
		a := args[0]
		return func(f *frame) any { return fn.Fast(a(f)) }
	case fn.Safe != nil:
		return func(f *frame) any {
			vals, base := f.evalArgs(args)
			out, mem, err := fn.Safe(vals...)
			f.popArgs(base)
			if err != nil {
				panic(fastBail{fallbackError})
			}
			f.memGrow(mem)
			return out
		}
	case fn.Func != nil:
		return variadic(fn.Func, args)
	}
	notFast("builtin " + n.Name)
	return nil
}

// reduce is reduce(array, body[, initial]): the accumulator starts at initial or at the
// first element (an empty array is then an error), and takes each body's value.
func (c *fastCompiler) reduce(n *ast.BuiltinNode) fastFn {
	if len(n.Arguments) < 2 {
		notFast("reduce without body")
	}
	begin, body := c.iteration(n.Arguments[0]), c.compile(n.Arguments[1])
	var initial fastFn
	if len(n.Arguments) == 3 {
		initial = c.operand(n.Arguments[2])
	}
	return func(f *frame) any {
		s := begin(f)
		switch {
		case initial != nil:
			// Evaluated inside the new scope, as the VM does.
			v := initial(f)
			f.top().acc = v
		case s.length == 0:
			panic(fastBail{fallbackError}) // the VM's error
		default:
			s.acc = s.item()
			s.index++
		}
		for n := f.top().length; f.top().index < n; f.top().index++ {
			v := body(f)
			f.top().acc = v
		}
		acc := f.top().acc
		f.end()
		return acc
	}
}

// loop compiles the builtins the VM runs as loops over a scope.
func (c *fastCompiler) loop(n *ast.BuiltinNode) fastFn {
	begin := c.iteration(n.Arguments[0])
	var pred fastFn
	if len(n.Arguments) > 1 {
		pred = c.compile(n.Arguments[1])
	}
	var mapper fastFn
	if n.Map != nil {
		mapper = c.compile(n.Map)
	}
	item := func(f *frame) any { return f.top().item() }
	switch n.Name {
	case "all", "none", "any":
		if pred == nil {
			notFast(n.Name + " without predicate")
		}
		// all stops at the first false, none at the first true, any at the first true.
		stopOn, result := false, true
		switch n.Name {
		case "none":
			stopOn = true
		case "any":
			stopOn, result = true, false
		}
		return func(f *frame) any {
			s := begin(f)
			for n := s.length; f.top().index < n; f.top().index++ {
				v := pred(f)
				if v.(bool) == stopOn {
					f.end()
					return !result
				}
			}
			f.end()
			return result
		}
	case "one":
		if pred == nil {
			notFast("one without predicate")
		}
		return func(f *frame) any {
			s := begin(f)
			for n := s.length; f.top().index < n; f.top().index++ {
				if pred(f).(bool) {
					f.top().count++
				}
			}
			count := f.top().count
			f.end()
			return runtime.Equal(count, 1)
		}
	case "filter":
		if pred == nil {
			notFast("filter without predicate")
		}
		if mapper == nil {
			mapper = item
		}
		return func(f *frame) any {
			s := begin(f)
			var out []any
			for n := s.length; f.top().index < n; f.top().index++ {
				if pred(f).(bool) {
					f.top().count++
					out = append(out, mapper(f))
				}
			}
			count := f.top().count
			f.end()
			f.memGrow(uint(count))
			if out == nil {
				out = make([]any, 0)
			}
			return out
		}
	case "map":
		if pred == nil {
			notFast("map without body")
		}
		return func(f *frame) any {
			s := begin(f)
			out := f.array(s.length)
			for n := s.length; f.top().index < n; f.top().index++ {
				out[f.top().index] = pred(f)
			}
			f.end()
			f.memGrow(uint(len(out)))
			return out
		}
	case "count":
		if pred == nil {
			pred = item
		}
		threshold := -1
		if n.Threshold != nil {
			threshold = *n.Threshold
		}
		return func(f *frame) any {
			s := begin(f)
			for n := s.length; f.top().index < n; f.top().index++ {
				if pred(f).(bool) {
					f.top().count++
					if threshold >= 0 && f.top().count >= threshold {
						break
					}
				}
			}
			count := f.top().count
			f.end()
			return count
		}
	case "sum":
		// The VM adds each value to an accumulator starting at int 0 (runtime.Add(value,
		// acc)); the fast path keeps it unboxed while the values are numbers.
		value := func(f *frame) (num, any) { return unbox(f.top().item()) }
		if len(n.Arguments) > 1 {
			value = c.numeric(n.Arguments[1])
		}
		return func(f *frame) any {
			s := begin(f)
			acc, accv := num{k: intNum}, any(nil)
			for n := s.length; f.top().index < n; f.top().index++ {
				v, vv := value(f)
				if sum, ok := arithNums(opAdd, v, acc); ok {
					acc, accv = sum, nil
				} else {
					acc, accv = unbox(runtime.Add(v.box(vv), acc.box(accv)))
				}
			}
			f.end()
			return acc.box(accv)
		}
	case "find", "findLast", "findIndex", "findLastIndex":
		if pred == nil {
			notFast(n.Name + " without predicate")
		}
		switch {
		case n.Name == "findIndex" || n.Name == "findLastIndex":
			mapper = func(f *frame) any { return f.top().index }
		case mapper == nil:
			mapper = item
		}
		last, throws := strings.HasPrefix(n.Name, "findLast"), n.Throws
		return func(f *frame) any {
			s := begin(f)
			i, stop, step := 0, s.length, 1
			if last {
				i, stop, step = s.length-1, -1, -1
			}
			for ; i != stop; i += step {
				f.top().index = i
				if pred(f).(bool) {
					v := mapper(f)
					f.end()
					return v
				}
			}
			f.end()
			if throws {
				panic(fastBail{fallbackError}) // the VM's error
			}
			return nil
		}
	}
	notFast("builtin " + n.Name)
	return nil
}
