package exprengine

import (
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
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
// program with a construct the fast path does not compile (see fastCompiler.node) always runs
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

// isInput reports whether n names the input, whose document the fast path may read directly.
func (c *fastCompiler) isInput(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	if !ok {
		return false
	}
	if v, ok := c.lookup(id.Value); ok {
		return v.input
	}
	return id.Value == "input"
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

// fastCompiler turns a checked tree into closures. Each method mirrors expr's compiler for
// the node (github.com/expr-lang/expr/compiler), with the VM's opcode semantics inlined.
type fastCompiler struct {
	config    *conf.Config
	slots     int
	cats      int // concatenation caches (concat)
	chains    int // ChainNodes being compiled around the current node
	scopes    []fastVar
	unordered bool
	objects   int // merge sites that make an Object
	keySites  int // input keys inputIndex remembers by int
	// tail holds the calls and map literals whose value is the program's value, or result's
	// output in it: what is only encoded, so a merge or a literal there can make an Object.
	tail map[ast.Node]bool
	// envMerges holds the merge(env, ...) calls that may write into a handed-over env
	// (see inPlaceEnvMerges).
	envMerges map[ast.Node]bool
}

// fastVar is a let variable in scope: a slot, or an alias of a function field of vars (the
// helpers compileTree binds at the root).
type fastVar struct {
	name  string
	slot  int
	field string // the vars field's expr name, for an alias
	input bool   // an alias of input (see document.go)
}

// errNotFast reports a construct the fast path leaves to the VM.
type errNotFast struct{ what string }

// compileFast compiles the tree, or returns nil and the construct the fast path does not
// handle.
func compileFast(node ast.Node, config *conf.Config) (fp *fastProgram, why string) {
	c := &fastCompiler{config: config, tail: map[ast.Node]bool{}}
	c.markTail(node, false)
	c.envMerges = inPlaceEnvMerges(node, c.tail)
	defer func() {
		if r := recover(); r != nil {
			nf, ok := r.(errNotFast)
			if !ok {
				panic(r)
			}
			fp, why = nil, nf.what
		}
	}()
	root := c.node(node)
	return &fastProgram{root: root, slots: c.slots, cats: c.cats, objects: c.objects, keySites: c.keySites,
		unordered: c.unordered}, ""
}

// markTail records the calls and map literals in n whose value is the value of n, through
// let, sequences and conditionals: a merge or a literal there, or a call that may be
// result(...), whose output call.result then marks. In result's output (output true), only
// merges and literals.
func (c *fastCompiler) markTail(n ast.Node, output bool) {
	switch x := n.(type) {
	case *ast.VariableDeclaratorNode:
		if !output {
			c.markTail(x.Expr, false)
		}
	case *ast.SequenceNode:
		if len(x.Nodes) > 0 {
			c.markTail(x.Nodes[len(x.Nodes)-1], output)
		}
	case *ast.ConditionalNode:
		c.markTail(x.Exp1, output)
		c.markTail(x.Exp2, output)
	case *ast.CallNode:
		if id, ok := x.Callee.(*ast.IdentifierNode); ok && (id.Value == "merge" || !output) {
			c.tail[x] = true
		}
	case *ast.MapNode:
		c.tail[x] = true
	}
}

func notFast(what string) { panic(errNotFast{what}) }

func (c *fastCompiler) lookup(name string) (fastVar, bool) {
	for i := len(c.scopes) - 1; i >= 0; i-- {
		if c.scopes[i].name == name {
			return c.scopes[i], true
		}
	}
	return fastVar{}, false
}

// operand compiles n as an operand the VM dereferences (derefInNeeded).
func (c *fastCompiler) operand(n ast.Node) fastFn {
	fn := c.node(n)
	if t := n.Type(); t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) {
		return func(f *frame) any { return deref(fn(f)) }
	}
	return fn
}

func (c *fastCompiler) node(node ast.Node) fastFn {
	switch n := node.(type) {
	case *ast.NilNode:
		return constant(nil)
	case *ast.IdentifierNode:
		return c.identifier(n)
	case *ast.IntegerNode:
		var v any
		t := n.Type()
		switch {
		case t == nil || t.Kind() == reflect.Int || t.Kind() == reflect.Interface:
			v = n.Value
		case t.Kind() == reflect.Float64:
			v = float64(n.Value)
		default:
			notFast("integer of type " + t.String())
		}
		return constant(v)
	case *ast.FloatNode:
		if t := n.Type(); t != nil && t.Kind() == reflect.Float32 {
			notFast("float32")
		}
		return constant(n.Value)
	case *ast.BoolNode:
		return constant(n.Value)
	case *ast.StringNode:
		return constant(n.Value)
	case *ast.ConstantNode:
		return constant(n.Value)
	case *ast.UnaryNode:
		return c.unary(n)
	case *ast.BinaryNode:
		return c.binary(n)
	case *ast.MemberNode:
		return c.member(n)
	case *ast.ChainNode:
		return c.chain(n)
	case *ast.SliceNode:
		return c.slice(n)
	case *ast.CallNode:
		return c.call(n)
	case *ast.BuiltinNode:
		return c.builtin(n)
	case *ast.PredicateNode:
		return c.node(n.Node)
	case *ast.PointerNode:
		switch n.Name {
		case "":
			return func(f *frame) any { return f.top().item() }
		case "index":
			return func(f *frame) any { return f.top().index }
		case "acc":
			return func(f *frame) any { return f.top().acc }
		}
		notFast("pointer #" + n.Name)
	case *ast.VariableDeclaratorNode:
		return c.declarator(n)
	case *ast.SequenceNode:
		fns := make([]fastFn, len(n.Nodes))
		for i, x := range n.Nodes {
			fns[i] = c.node(x)
		}
		return func(f *frame) any {
			var v any
			for _, fn := range fns {
				v = fn(f)
			}
			return v
		}
	case *ast.ConditionalNode:
		cond, yes, no := c.operand(n.Cond), c.node(n.Exp1), c.node(n.Exp2)
		return func(f *frame) any {
			if cond(f).(bool) {
				return yes(f)
			}
			return no(f)
		}
	case *ast.ArrayNode:
		fns := make([]fastFn, len(n.Nodes))
		for i, x := range n.Nodes {
			fns[i] = c.node(x)
		}
		size := uint(len(fns))
		return func(f *frame) any {
			arr := f.array(len(fns))
			for i, fn := range fns {
				arr[i] = fn(f)
			}
			f.memGrow(size)
			return f.boxArray(arr)
		}
	case *ast.MapNode:
		keys := make([]fastFn, len(n.Pairs))
		values := make([]fastFn, len(n.Pairs))
		for i, x := range n.Pairs {
			p, ok := x.(*ast.PairNode)
			if !ok {
				notFast("map entry")
			}
			keys[i], values[i] = c.node(p.Key), c.node(p.Value)
		}
		size := uint(len(keys))
		if names, ok := constKeys(n); ok {
			if c.tail[n] {
				return literalObject(names, values)
			}
			// The usual literal: keys that are distinct constants, so the map can be filled
			// as the values come.
			return func(f *frame) any {
				m := make(map[string]any, len(names))
				for i, name := range names {
					m[name] = values[i](f)
				}
				f.memGrow(size)
				return m
			}
		}
		return func(f *frame) any {
			// The VM evaluates every key and value before building the map, and assigns from
			// the last pair to the first, so that of two equal keys the first wins.
			kv := make([]any, 2*len(keys))
			for i := range keys {
				kv[2*i], kv[2*i+1] = keys[i](f), values[i](f)
			}
			f.memGrow(size)
			m := make(map[string]any, len(keys))
			for i := len(keys) - 1; i >= 0; i-- {
				m[kv[2*i].(string)] = kv[2*i+1]
			}
			return m
		}
	}
	notFast(reflect.TypeOf(node).String())
	return nil
}

// literalObject is a map literal with distinct constant keys that is the program's output
// (see markTail): an Object whose shape is known before any run. The values are evaluated in
// the literal's order, as the VM does.
func literalObject(names []string, values []fastFn) fastFn {
	var site objectSite
	site.learn(names)
	sh, at := site.shape, make([]int, len(names)) // at: where each value goes in the shape
	for j, i := range site.from {
		at[i] = j
	}
	size := uint(len(names))
	return func(f *frame) any {
		vals := make([]any, len(names))
		for i, value := range values {
			vals[at[i]] = value(f)
		}
		f.memGrow(size)
		return &Object{shape: sh, vals: vals}
	}
}

// constKeys returns the keys of a map literal when they are distinct constant strings.
func constKeys(n *ast.MapNode) ([]string, bool) {
	names := make([]string, len(n.Pairs))
	seen := make(map[string]bool, len(n.Pairs))
	for i, x := range n.Pairs {
		k, ok := x.(*ast.PairNode).Key.(*ast.StringNode)
		if !ok || seen[k.Value] {
			return nil, false
		}
		names[i], seen[k.Value] = k.Value, true
	}
	return names, true
}

// constant is a node whose value is fixed at compile time (boxed once).
func constant(v any) fastFn {
	return func(*frame) any { return v }
}

func (c *fastCompiler) identifier(n *ast.IdentifierNode) fastFn {
	if v, ok := c.lookup(n.Value); ok {
		switch {
		case v.field != "":
			notFast("function value")
		case v.input:
			return (*frame).input
		}
		slot := v.slot
		return func(f *frame) any { return f.slots[slot] }
	}
	switch n.Value {
	case "input":
		return (*frame).input
	case "env":
		return func(f *frame) any { return f.st.vars.Env }
	case "context":
		return func(f *frame) any { return f.st.vars.Context }
	}
	notFast("identifier " + n.Value)
	return nil
}

func (c *fastCompiler) declarator(n *ast.VariableDeclaratorNode) fastFn {
	if id, ok := n.Value.(*ast.IdentifierNode); ok && (isFuncField(id.Value) || id.Value == "input") {
		if _, shadowed := c.lookup(id.Value); !shadowed {
			alias := fastVar{name: n.Name, field: id.Value}
			if id.Value == "input" {
				alias = fastVar{name: n.Name, input: true}
			}
			c.scopes = append(c.scopes, alias)
			body := c.node(n.Expr)
			c.scopes = c.scopes[:len(c.scopes)-1]
			return body
		}
	}
	value := c.node(n.Value)
	slot := c.slots
	c.slots++
	c.scopes = append(c.scopes, fastVar{name: n.Name, slot: slot})
	body := c.node(n.Expr)
	c.scopes = c.scopes[:len(c.scopes)-1]
	return func(f *frame) any {
		f.slots[slot] = value(f)
		return body(f)
	}
}

func isFuncField(name string) bool {
	return name == "result" || name == "string" || strings.HasPrefix(name, helperPrefix)
}

func (c *fastCompiler) unary(n *ast.UnaryNode) fastFn {
	x := c.operand(n.Node)
	switch n.Operator {
	case "!", "not":
		return func(f *frame) any { return !x(f).(bool) }
	case "+":
		return x
	case "-":
		return func(f *frame) any { return runtime.Negate(x(f)) }
	}
	notFast("unary " + n.Operator)
	return nil
}

func (c *fastCompiler) binary(n *ast.BinaryNode) fastFn {
	switch n.Operator {
	case "==", "!=":
		return c.equal(n)
	case "or", "||", "and", "&&":
		if !c.config.ShortCircuit {
			notFast("no short circuit")
		}
		l, r := c.operand(n.Left), c.operand(n.Right)
		if n.Operator == "or" || n.Operator == "||" {
			return func(f *frame) any {
				if v := l(f); v.(bool) {
					return v
				}
				return r(f)
			}
		}
		return func(f *frame) any {
			if v := l(f); !v.(bool) {
				return v
			}
			return r(f)
		}
	case "??":
		l, r := c.operand(n.Left), c.operand(n.Right)
		return func(f *frame) any {
			if v := l(f); !runtime.IsNil(v) {
				return v
			}
			return r(f)
		}
	}
	switch n.Operator {
	case "+", "-", "*", "/":
		if isNumber(n.Left) && isNumber(n.Right) {
			return boxedNum(c.arith(n.Operator, n.Left, n.Right, ""))
		}
	case "<", ">", "<=", ">=":
		if isNumber(n.Left) && isNumber(n.Right) {
			return c.compare(n.Operator, n.Left, n.Right)
		}
	}
	l, r := c.operand(n.Left), c.operand(n.Right)
	var op func(a, b any) any
	switch n.Operator {
	case "<":
		op = func(a, b any) any { return runtime.Less(a, b) }
	case ">":
		op = func(a, b any) any { return runtime.More(a, b) }
	case "<=":
		op = func(a, b any) any { return runtime.LessOrEqual(a, b) }
	case ">=":
		op = func(a, b any) any { return runtime.MoreOrEqual(a, b) }
	case "+":
		op = runtime.Add
	case "-":
		op = runtime.Subtract
	case "*":
		op = runtime.Multiply
	case "/":
		op = func(a, b any) any { return runtime.Divide(a, b) }
	case "%":
		op = func(a, b any) any { return runtime.Modulo(a, b) }
	case "**", "^":
		op = func(a, b any) any { return runtime.Exponent(a, b) }
	case "in":
		op = func(a, b any) any { return runtime.In(a, b) }
	case "contains", "startsWith", "endsWith":
		var test func(s, x string) bool
		switch n.Operator {
		case "contains":
			test = strings.Contains
		case "startsWith":
			test = strings.HasPrefix
		default:
			test = strings.HasSuffix
		}
		op = func(a, b any) any {
			if runtime.IsNil(a) || runtime.IsNil(b) {
				return false
			}
			return test(a.(string), b.(string))
		}
	case "matches":
		if pattern, ok := n.Right.(*ast.StringNode); ok {
			re, err := regexp.Compile(pattern.Value)
			if err != nil {
				notFast("invalid pattern") // expr's compiler has refused it already
			}
			return func(f *frame) any {
				a := l(f)
				if runtime.IsNil(a) {
					return false
				}
				if s, ok := a.(string); ok {
					return re.MatchString(s)
				}
				return re.Match(a.([]byte))
			}
		}
		op = func(a, b any) any {
			if runtime.IsNil(a) || runtime.IsNil(b) {
				return false
			}
			var match bool
			var err error
			if s, ok := a.(string); ok {
				match, err = regexp.MatchString(b.(string), s)
			} else {
				match, err = regexp.Match(b.(string), a.([]byte))
			}
			if err != nil {
				panic(err)
			}
			return match
		}
	case "..":
		bounds := rangeBounds(l, r)
		return func(f *frame) any {
			lo, size := bounds(f)
			return runtime.MakeRange(lo, lo+size-1)
		}
	default:
		notFast("operator " + n.Operator)
	}
	return func(f *frame) any {
		a := l(f)
		return op(a, r(f))
	}
}

func isInt(n ast.Node) bool {
	t := n.Type()
	return t != nil && t.Kind() == reflect.Int && t.PkgPath() == ""
}

func isString(n ast.Node) bool {
	t := n.Type()
	return t != nil && t.Kind() == reflect.String && t.PkgPath() == ""
}

func (c *fastCompiler) equal(n *ast.BinaryNode) fastFn {
	var eq fastFn
	if !(isInt(n.Left) && isInt(n.Right)) && isNumber(n.Left) && isNumber(n.Right) {
		eq = c.compare("==", n.Left, n.Right)
		if n.Operator == "!=" {
			return func(f *frame) any { return !eq(f).(bool) }
		}
		return eq
	}
	l, r := c.operand(n.Left), c.operand(n.Right)
	switch {
	case isInt(n.Left) && isInt(n.Right):
		eq = func(f *frame) any {
			a := l(f).(int)
			return a == r(f).(int)
		}
	case isString(n.Left) && isString(n.Right):
		eq = func(f *frame) any {
			a := l(f).(string)
			return a == r(f).(string)
		}
	default:
		eq = func(f *frame) any {
			a := l(f)
			return runtime.Equal(a, r(f))
		}
	}
	if n.Operator == "!=" {
		return func(f *frame) any { return !eq(f).(bool) }
	}
	return eq
}

// member compiles a field of context, the one struct a program sees; the rewriter has turned
// every other member access into a call of get.
func (c *fastCompiler) member(n *ast.MemberNode) fastFn {
	if n.Method {
		notFast("method member")
	}
	if n.Optional {
		return c.optional(n)
	}
	prop, ok := n.Property.(*ast.StringNode)
	if !ok || n.Node.Type() != reflect.TypeOf(&ctxView{}) {
		notFast("member")
	}
	base := c.node(n.Node)
	field, ok := ctxFields[prop.Value]
	if !ok {
		notFast("context field " + prop.Value)
	}
	return func(f *frame) any { return field(base(f).(*ctxView)) }
}

// chainNil is what an optional member panics with when its base is nil: the VM jumps to the
// end of the chain, whose value is then nil.
type chainNil struct{}

// chain is a ChainNode: its node, cut short by any optional member whose base is nil. The
// VM turns a nil of any type at the end of a chain into a plain nil (unless ?? takes it,
// which treats both alike).
func (c *fastCompiler) chain(n *ast.ChainNode) fastFn {
	c.chains++
	inner := c.node(n.Node)
	c.chains--
	return func(f *frame) (v any) {
		depth := len(f.scopes)
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(chainNil); !ok {
					panic(r)
				}
				clear(f.scopes[depth:])
				f.scopes, v = f.scopes[:depth], nil
			}
		}()
		if v = inner(f); runtime.IsNil(v) {
			return nil
		}
		return v
	}
}

// optional is a?.b: a[b] as the VM's OpFetch, unless a is nil, which ends the chain. Outside
// a chain the VM does not test for nil.
func (c *fastCompiler) optional(n *ast.MemberNode) fastFn {
	base := c.node(n.Node)
	prop := c.node(n.Property)
	if t := n.Node.Type(); t == nil || t.Kind() != reflect.Map || n.Property.Type() == nil || !n.Property.Type().AssignableTo(t.Key()) {
		prop = c.operand(n.Property)
	}
	inChain := c.chains > 0
	return func(f *frame) any {
		b := base(f)
		if inChain && runtime.IsNil(b) {
			panic(chainNil{})
		}
		return runtime.Fetch(b, prop(f))
	}
}

// slice is a[from:to], as the VM's OpSlice.
func (c *fastCompiler) slice(n *ast.SliceNode) fastFn {
	node := c.node(n.Node)
	var from, to fastFn
	if n.To != nil {
		to = c.operand(n.To)
	}
	if n.From != nil {
		from = c.operand(n.From)
	}
	return func(f *frame) any {
		v := node(f)
		var hi, lo any
		if to != nil {
			hi = to(f)
		} else {
			hi = runtime.Len(v)
		}
		if from != nil {
			lo = from(f)
		} else {
			lo = 0
		}
		return runtime.Slice(v, lo, hi)
	}
}

var ctxFields = map[string]func(*ctxView) any{
	"host":              func(c *ctxView) any { return c.Host },
	"port":              func(c *ctxView) any { return c.Port },
	"input_key":         func(c *ctxView) any { return c.InputKey },
	"output_key":        func(c *ctxView) any { return c.OutputKey },
	"function_getmtime": func(c *ctxView) any { return c.FunctionGetmtime },
	"last_execution":    func(c *ctxView) any { return c.LastExecution },
	"env":               func(c *ctxView) any { return c.Env },
	"trigger":           func(c *ctxView) any { return c.Trigger },
	"entry_id":          func(c *ctxView) any { return c.EntryID },
	"function":          func(c *ctxView) any { return c.Function },
}

// args compiles call arguments; the VM dereferences a pointer passed where a function does
// not take one (derefParam), which the fast path leaves to the VM.
func (c *fastCompiler) args(nodes []ast.Node) []fastFn {
	fns := make([]fastFn, len(nodes))
	for i, a := range nodes {
		fn := c.node(a)
		if t := a.Type(); t != nil && t.Kind() == reflect.Pointer {
			fns[i] = func(f *frame) any { return deref(fn(f)) }
			continue
		}
		fns[i] = fn
	}
	return fns
}

func (c *fastCompiler) call(n *ast.CallNode) fastFn {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		notFast("call of a non-identifier")
	}
	c.noteOrder(id.Value)
	// As expr's compiler: a registered function first, then a variable.
	if fn, ok := c.config.Functions[id.Value]; ok {
		if fn.Func == nil {
			notFast("call of " + id.Value)
		}
		if id.Value == "merge" {
			if m := c.merge(n.Arguments, c.tail[n], c.envMerges[n]); m != nil {
				return m
			}
		}
		return variadic(fn.Func, c.args(n.Arguments))
	}
	v, ok := c.lookup(id.Value)
	if !ok || v.field == "" {
		notFast("call of " + id.Value)
	}
	if v.field == "result" && c.tail[n] && len(n.Arguments) == 2 {
		c.markTail(n.Arguments[0], true)
	}
	if len(n.Arguments) == 2 {
		switch {
		case v.field == getName && c.isInput(n.Arguments[0]):
			index, key := c.inputIndex(n.Arguments[1])
			return func(f *frame) any {
				if d, ok := f.st.vars.Input.(*document); ok {
					at, k := index(f, d)
					if at != notKey {
						return f.boxNum(d.at(at))
					}
					return f.st.vars.Get(f.input(), k)
				}
				return f.st.vars.Get(f.input(), key(f))
			}
		case v.field == inName && c.isInput(n.Arguments[1]):
			index, needle := c.inputIndex(n.Arguments[0])
			return func(f *frame) any {
				if d, ok := f.st.vars.Input.(*document); ok {
					at, x := index(f, d)
					if at != notKey {
						return at >= 0
					}
					return f.st.vars.In(x, f.input())
				}
				return f.st.vars.In(needle(f), f.input())
			}
		case v.field == getName && isIntConst(n.Arguments[1]):
			// pair[0], pair[1]: an element of an array, without the helper's type switch.
			from, i := c.args(n.Arguments[:1])[0], int(n.Arguments[1].(*ast.IntegerNode).Value)
			index := any(i)
			return func(f *frame) any {
				x := from(f)
				if a, ok := x.([]any); ok && i >= 0 && i < len(a) {
					return a[i]
				}
				return f.st.vars.Get(x, index)
			}
		}
		switch v.field {
		case "result":
			if c.freshMap(n.Arguments[1]) {
				out, env := c.node(n.Arguments[0]), c.node(n.Arguments[1])
				return func(f *frame) any {
					o := out(f)
					rv := f.st.vars.Result(o, env(f)).(*resultValue)
					rv.ownEnv = true
					return rv
				}
			}
		case addName:
			if isStringConst(n.Arguments[0]) || isStringConst(n.Arguments[1]) {
				return c.concat(n.Arguments)
			}
			return boxedNum(c.arith("+", n.Arguments[0], n.Arguments[1], addName))
		case roundName:
			return boxedNum(c.round(n.Arguments[0], n.Arguments[1]))
		}
	}
	return helperCall(v.field, c.args(n.Arguments))
}

// mergePart is one argument of a merge call the fast path compiled: a map literal with
// constant keys (names, values), map(array, [key, value]) (begin, key, value), or any other
// value.
type mergePart struct {
	value        fastFn
	names        []string
	values       []fastFn
	begin        func(f *frame) *fastScope
	key, element fastFn
}

// maxMergeParts bounds the arguments of a merge the fast path compiles (see merge).
const maxMergeParts = 8

// merge compiles merge(...) so that its map literals and map(array, [key, value]) arguments
// go straight into the merged map: the VM builds the literal's map, and the array with its
// pairs, only for merge to copy them. The parts' values wait on the frame's argument stack
// until the size of the merged map is known. The memory budget is charged as the VM charges
// it for what it builds. nil means a merge this does not handle; the generic call then does.
//
// With object (the merge is the program's output, see markTail), it makes an Object instead
// of the map, unless an argument turns out to be a map (whose keys come in no fixed order).
// With inPlace (see inPlaceEnvMerges), a run whose caller handed the env over writes the other
// arguments' entries into the env itself instead of a copy of it.
func (c *fastCompiler) merge(args []ast.Node, object, inPlace bool) fastFn {
	if len(args) == 0 || len(args) > maxMergeParts {
		return nil
	}
	parts := make([]mergePart, len(args))
	streamed := false
	for i, a := range args {
		if m, ok := a.(*ast.MapNode); ok {
			if names, ok := constKeys(m); ok {
				parts[i].names, parts[i].values = names, make([]fastFn, len(names))
				for j, p := range m.Pairs {
					parts[i].values[j] = c.node(p.(*ast.PairNode).Value)
				}
				streamed = true
				continue
			}
		}
		if key, element, ok := c.pairBody(a); ok {
			parts[i].begin = c.iteration(a.(*ast.BuiltinNode).Arguments[0])
			parts[i].key, parts[i].element = c.node(key), c.node(element)
			streamed = true
			continue
		}
		parts[i].value = c.args([]ast.Node{a})[0]
	}
	if !streamed {
		return nil
	}
	site := -1
	if object {
		site = c.objects
		c.objects++
	}
	return func(f *frame) any {
		base := len(f.args)
		var counts [maxMergeParts]int // entries per part
		size := 0
		for i, p := range parts {
			switch {
			case p.names != nil:
				for _, value := range p.values {
					v := value(f)
					f.args = append(f.args, v)
				}
				f.memGrow(uint(len(p.names)))
				counts[i] = len(p.names)
			case p.begin != nil:
				s := p.begin(f)
				n := s.length
				for ; f.top().index < n; f.top().index++ {
					k := p.key(f)
					v := p.element(f)
					f.args = append(f.args, k, v)
					f.memGrow(2)
					f.st.vars.Tick(nil)
				}
				f.end()
				f.memGrow(uint(n))
				counts[i] = n
			default:
				v := p.value(f)
				f.args = append(f.args, v)
				n, err := mergeSize(i, v)
				if err != nil {
					panic(err)
				}
				counts[i] = n
			}
			size += counts[i]
		}
		if size > int(f.budget) {
			panic(mergeTooLarge(size))
		}
		vals := f.args[base:]
		if site >= 0 {
			if o := f.object(site, parts, counts[:len(parts)], vals); o != nil {
				f.popArgs(base)
				return o
			}
		}
		var first any // a literal or map(...) first is never cloned
		if parts[0].value != nil {
			first = vals[0]
		}
		var out map[string]any
		start := 0
		if inPlace && f.st.envOwned && sameMap(first, f.st.vars.Env) && mergeable(parts, counts[:len(parts)], vals) {
			out, start = f.st.vars.Env, 1
		} else {
			out, start = mergeMap(first, size)
		}
		eachEntry(parts, counts[:len(parts)], vals, start, func(k string, v any) { out[k] = v }, func(i int, v any) {
			if err := mergeInto(out, i, v); err != nil {
				panic(err)
			}
		})
		f.popArgs(base)
		return out
	}
}

// sameMap reports whether a is the map m itself.
func sameMap(a any, m map[string]any) bool {
	am, ok := a.(map[string]any)
	return ok && m != nil && reflect.ValueOf(am).UnsafePointer() == reflect.ValueOf(m).UnsafePointer()
}

// mergeable reports whether every entry a merge's parts left in vals (see merge) can be
// written without an error or a bail: an in-place merge must not stop half-way through the
// env, since the VM (after a bail) or the caller (after an error) would see it half-changed.
func mergeable(parts []mergePart, counts []int, vals []any) bool {
	at := 0
	for i := range parts {
		p := &parts[i]
		switch {
		case p.names != nil:
			at += len(p.names)
		case p.begin != nil:
			for j := range counts[i] {
				if _, ok := vals[at+2*j].(string); !ok {
					return false
				}
			}
			at += 2 * counts[i]
		default:
			switch v := vals[at].(type) {
			case nil, map[string]any:
			case []any:
				for j, pair := range v {
					if _, _, err := mergePair(i, j, pair); err != nil {
						return false
					}
				}
			default:
				return false
			}
			at++
		}
	}
	return true
}

// inPlaceEnvMerges finds the merges that may write into the env itself when the caller hands
// it over (Call.EnvOwned) instead of into a copy: merge(env, ...) as the env of a result(...)
// whose value is the program's, in a program that uses env nowhere else but to read entries
// of it (env.k, env[k], k in env), and context only for its other fields. Such a merge is the
// last thing a run evaluates (result's output comes first), its arguments are all evaluated
// before it writes, and no value the run returns can hold the env map itself.
func inPlaceEnvMerges(root ast.Node, tail map[ast.Node]bool) map[ast.Node]bool {
	envVar, ctxVar := boundVar("env"), boundVar("context")
	isVar := func(n ast.Node, name string) bool {
		id, ok := n.(*ast.IdentifierNode)
		return ok && id.Value == name
	}
	merges := map[ast.Node]bool{}
	reads := map[ast.Node]bool{} // env identifiers whose entries are read
	safe := true
	var uses []ast.Node // every identifier naming env or context
	ast.Walk(&root, visitor(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.IdentifierNode:
			switch x.Value {
			case envVar, ctxVar:
				uses = append(uses, x)
			case "$env":
				safe = false
			}
		case *ast.MemberNode:
			if isVar(x.Node, envVar) {
				reads[x.Node] = true
			}
			if readsContextField(x, ctxVar) {
				reads[x.Node] = true
			}
		case *ast.BinaryNode:
			if (x.Operator == "in" || x.Operator == "not in") && isVar(x.Right, envVar) {
				reads[x.Right] = true
			}
		case *ast.CallNode:
			switch {
			case isVar(x.Callee, boundVar(getName)) && len(x.Arguments) == 2 && isVar(x.Arguments[0], envVar):
				reads[x.Arguments[0]] = true
			case isVar(x.Callee, boundVar(inName)) && len(x.Arguments) == 2 && isVar(x.Arguments[1], envVar):
				reads[x.Arguments[1]] = true
			case tail[x] && isVar(x.Callee, boundVar("result")) && len(x.Arguments) == 2:
				if m, ok := x.Arguments[1].(*ast.CallNode); ok && isVar(m.Callee, "merge") && len(m.Arguments) > 1 && isVar(m.Arguments[0], envVar) {
					merges[m] = true
					reads[m.Arguments[0]] = true
				}
			}
		}
	}))
	for _, u := range uses {
		safe = safe && reads[u]
	}
	if !safe {
		return nil
	}
	return merges
}

// visitor adapts a function to ast.Visitor.
type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

// eachEntry walks what the parts of a merge left in vals (see merge), from part from on: put
// gets each entry of a literal or of a map(array, [key, value]), in order, and other the value
// of each other part.
func eachEntry(parts []mergePart, counts []int, vals []any, from int, put func(string, any), other func(int, any)) {
	at := 0
	for i := range parts {
		p := &parts[i]
		switch {
		case i < from:
		case p.names != nil:
			for j, name := range p.names {
				put(name, vals[at+j])
			}
		case p.begin != nil:
			for j := range counts[i] {
				k, ok := vals[at+2*j].(string)
				if !ok {
					panic(fastBail{}) // the VM's error names the element
				}
				put(k, vals[at+2*j+1])
			}
		default:
			other(i, vals[at])
		}
		switch {
		case p.names != nil:
			at += len(p.names)
		case p.begin != nil:
			at += 2 * counts[i]
		default:
			at++
		}
	}
}

// object makes the Object of a merge at site whose parts left their values in vals (see
// merge), or returns nil when an argument is a map, which the merge must then build.
func (f *frame) object(site int, parts []mergePart, counts []int, vals []any) *Object {
	keys, ovals := f.okeys[:0], f.ovals[:0]
	defer func() {
		clear(keys)
		clear(ovals) // the pooled frame must not pin the values
		f.okeys, f.ovals = keys[:0], ovals[:0]
	}()
	put := func(k string, v any) { keys, ovals = append(keys, k), append(ovals, v) }
	isMap := false
	eachEntry(parts, counts, vals, 0, put, func(i int, v any) {
		switch a := v.(type) {
		case nil:
		case []any:
			for j, p := range a {
				k, v, err := mergePair(i, j, p)
				if err != nil {
					panic(fastBail{}) // the VM's error
				}
				put(k, v)
			}
		default:
			isMap = true
		}
	})
	if isMap {
		return nil
	}
	s := f.objects[site]
	if s == nil {
		s = &objectSite{}
		f.objects[site] = s
	}
	return s.object(keys, ovals)
}

// pairBody recognises map(array, [key, element]) as the rewriter leaves it (the body wrapped
// in the generic tick), returning the pair's two nodes.
func (c *fastCompiler) pairBody(n ast.Node) (key, element ast.Node, ok bool) {
	b, isBuiltin := n.(*ast.BuiltinNode)
	if !isBuiltin || b.Name != "map" || b.Map != nil || len(b.Arguments) != 2 {
		return nil, nil, false
	}
	pred, isPred := b.Arguments[1].(*ast.PredicateNode)
	if !isPred {
		return nil, nil, false
	}
	tick, isCall := pred.Node.(*ast.CallNode)
	if !isCall || len(tick.Arguments) != 1 {
		return nil, nil, false
	}
	callee, isIdent := tick.Callee.(*ast.IdentifierNode)
	if !isIdent {
		return nil, nil, false
	}
	if v, found := c.lookup(callee.Value); !found || v.field != tickName {
		return nil, nil, false
	}
	pair, isArray := tick.Arguments[0].(*ast.ArrayNode)
	if !isArray || len(pair.Nodes) != 2 {
		return nil, nil, false
	}
	return pair.Nodes[0], pair.Nodes[1], true
}

// isIntConst reports whether n is an integer literal that is an int, as the VM pushes it.
func isIntConst(n ast.Node) bool {
	_, ok := n.(*ast.IntegerNode)
	return ok && n.Type() != nil && n.Type().Kind() == reflect.Int
}

// freshMap reports whether n always evaluates to a map nothing else references: a call of
// merge, which returns a new map every time, used nowhere else.
func (c *fastCompiler) freshMap(n ast.Node) bool {
	call, ok := n.(*ast.CallNode)
	if !ok {
		return false
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || id.Value != "merge" {
		return false
	}
	_, ok = c.config.Functions["merge"]
	return ok
}

// variadic calls a function registered with expr.Function, as OpCall1..OpCallN do; the
// arguments go through the frame's argument stack, which nested calls share.
func variadic(fn func(...any) (any, error), args []fastFn) fastFn {
	return func(f *frame) any {
		vals, base := f.evalArgs(args)
		out, err := fn(vals...)
		f.popArgs(base)
		if err != nil {
			panic(err)
		}
		return out
	}
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

// helperCall calls a function field of vars directly, with the type assertions of the VM's
// OpCallTyped.
func helperCall(field string, args []fastFn) fastFn {
	arity := map[string]int{
		"result": 2, "string": 1, tickName: 1, tickBoolName: 1, tickIntName: 1, tickFloatName: 1,
		tickStrName: 1, addName: 2, eqName: 2, inName: 2, getName: 2, roundName: 2, strName: 1, strAnyName: 1,
	}
	if n, ok := arity[field]; !ok || n != len(args) {
		notFast("helper " + field)
	}
	var a, b fastFn
	a = args[0]
	if len(args) == 2 {
		b = args[1]
	}
	switch field {
	case "result":
		return func(f *frame) any { x := a(f); return f.st.vars.Result(x, b(f)) }
	case "string":
		return func(f *frame) any { return f.st.vars.String(a(f)) }
	case tickName:
		return func(f *frame) any { return f.st.vars.Tick(a(f)) }
	case tickBoolName:
		return func(f *frame) any { return f.st.vars.TickBool(a(f).(bool)) }
	case tickIntName:
		return func(f *frame) any { return f.st.vars.TickInt(a(f).(int)) }
	case tickFloatName:
		return func(f *frame) any { return f.st.vars.TickFloat(a(f).(float64)) }
	case tickStrName:
		return func(f *frame) any { return f.st.vars.TickStr(a(f).(string)) }
	case addName:
		return func(f *frame) any { x := a(f); return f.st.vars.Add(x, b(f)) }
	case eqName:
		return func(f *frame) any { x := a(f); return f.st.vars.Eq(x, b(f)) }
	case inName:
		return func(f *frame) any { x := a(f); return f.st.vars.In(x, b(f)) }
	case getName:
		return func(f *frame) any { x := a(f); return f.st.vars.Get(x, b(f)) }
	case roundName:
		return func(f *frame) any { x := a(f); return f.st.vars.Round(x, b(f)) }
	case strName:
		return func(f *frame) any { return f.st.vars.Str(a(f).(string)) }
	default: // strAnyName
		return func(f *frame) any { return f.st.vars.StrAny(a(f)) }
	}
}

func (c *fastCompiler) noteOrder(fn string) {
	switch fn {
	case "keys", "values", "toPairs":
		c.unordered = true
	}
}

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
			panic(fastBail{})
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

func (c *fastCompiler) builtin(n *ast.BuiltinNode) fastFn {
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
				panic(err)
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
	begin, body := c.iteration(n.Arguments[0]), c.node(n.Arguments[1])
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
			panic(fastBail{}) // the VM's error
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
		pred = c.node(n.Arguments[1])
	}
	var mapper fastFn
	if n.Map != nil {
		mapper = c.node(n.Map)
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
			return f.boxArray(out)
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
				panic(fastBail{}) // the VM's error
			}
			return nil
		}
	}
	notFast("builtin " + n.Name)
	return nil
}
