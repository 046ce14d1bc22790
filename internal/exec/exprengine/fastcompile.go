package exprengine

import (
	"reflect"
	"strings"

	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// The fast path's compiler: compile dispatches on the node kind to one compileXxxNode per kind,
// named as expr's compiler names its methods, so the two read side by side. Calls
// (fastcall.go), builtins (fastloop.go), merge (fastmerge.go) and the number and key
// specialisations (fastnum.go, fastkeys.go) have files of their own.

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

// fastCompiler turns a checked tree into closures. Each method mirrors expr's compiler for
// the node (github.com/expr-lang/expr/compiler), with the VM's opcode semantics inlined.
type fastCompiler struct {
	config    *conf.Config
	slots     int
	chains    int // ChainNodes being compiled around the current node
	scopes    []fastVar
	unordered bool
	objects   int             // merge sites that make an Object
	keyRows   map[keySide]int // the key cache's rows by constant (keyRow)
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
	root := c.compile(node)
	return &fastProgram{root: root, slots: c.slots, objects: c.objects,
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
	fn := c.compile(n)
	if t := n.Type(); t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) {
		return func(f *frame) any { return deref(fn(f)) }
	}
	return fn
}

// compile compiles one node, by its kind, like expr's compiler.compile: each compileXxxNode
// mirrors expr's compiler.XxxNode (github.com/expr-lang/expr/compiler/compiler.go).
func (c *fastCompiler) compile(node ast.Node) fastFn {
	switch n := node.(type) {
	case *ast.NilNode:
		return constant(nil)
	case *ast.IdentifierNode:
		return c.compileIdentifierNode(n)
	case *ast.IntegerNode:
		return c.compileIntegerNode(n)
	case *ast.FloatNode:
		return c.compileFloatNode(n)
	case *ast.BoolNode:
		return constant(n.Value)
	case *ast.StringNode:
		return constant(n.Value)
	case *ast.ConstantNode:
		return constant(n.Value)
	case *ast.UnaryNode:
		return c.compileUnaryNode(n)
	case *ast.BinaryNode:
		return c.compileBinaryNode(n)
	case *ast.MemberNode:
		return c.compileMemberNode(n)
	case *ast.ChainNode:
		return c.compileChainNode(n)
	case *ast.SliceNode:
		return c.compileSliceNode(n)
	case *ast.CallNode:
		return c.compileCallNode(n)
	case *ast.BuiltinNode:
		return c.compileBuiltinNode(n)
	case *ast.PredicateNode:
		return c.compile(n.Node)
	case *ast.PointerNode:
		return c.compilePointerNode(n)
	case *ast.VariableDeclaratorNode:
		return c.compileVariableDeclaratorNode(n)
	case *ast.SequenceNode:
		return c.compileSequenceNode(n)
	case *ast.ConditionalNode:
		return c.compileConditionalNode(n)
	case *ast.ArrayNode:
		return c.compileArrayNode(n)
	case *ast.MapNode:
		return c.compileMapNode(n)
	}
	notFast(reflect.TypeOf(node).String())
	return nil
}

func (c *fastCompiler) compileIntegerNode(n *ast.IntegerNode) fastFn {
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
}

func (c *fastCompiler) compileFloatNode(n *ast.FloatNode) fastFn {
	if t := n.Type(); t != nil && t.Kind() == reflect.Float32 {
		notFast("float32")
	}
	return constant(n.Value)
}

func (c *fastCompiler) compilePointerNode(n *ast.PointerNode) fastFn {
	switch n.Name {
	case "":
		return func(f *frame) any { return f.top().item() }
	case "index":
		return func(f *frame) any { return f.top().index }
	case "acc":
		return func(f *frame) any { return f.top().acc }
	}
	notFast("pointer #" + n.Name)
	return nil
}

func (c *fastCompiler) compileSequenceNode(n *ast.SequenceNode) fastFn {
	fns := make([]fastFn, len(n.Nodes))
	for i, x := range n.Nodes {
		fns[i] = c.compile(x)
	}
	return func(f *frame) any {
		var v any
		for _, fn := range fns {
			v = fn(f)
		}
		return v
	}
}

func (c *fastCompiler) compileConditionalNode(n *ast.ConditionalNode) fastFn {
	cond, yes, no := c.operand(n.Cond), c.compile(n.Exp1), c.compile(n.Exp2)
	return func(f *frame) any {
		if cond(f).(bool) {
			return yes(f)
		}
		return no(f)
	}
}

func (c *fastCompiler) compileArrayNode(n *ast.ArrayNode) fastFn {
	fns := make([]fastFn, len(n.Nodes))
	for i, x := range n.Nodes {
		fns[i] = c.compile(x)
	}
	size := uint(len(fns))
	return func(f *frame) any {
		arr := f.array(len(fns))
		for i, fn := range fns {
			arr[i] = fn(f)
		}
		f.memGrow(size)
		return arr
	}
}

func (c *fastCompiler) compileMapNode(n *ast.MapNode) fastFn {
	keys := make([]fastFn, len(n.Pairs))
	values := make([]fastFn, len(n.Pairs))
	for i, x := range n.Pairs {
		p, ok := x.(*ast.PairNode)
		if !ok {
			notFast("map entry")
		}
		keys[i], values[i] = c.compile(p.Key), c.compile(p.Value)
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
		return codec.NewObject(sh, vals)
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

func (c *fastCompiler) compileIdentifierNode(n *ast.IdentifierNode) fastFn {
	if v, ok := c.lookup(n.Value); ok {
		switch {
		case v.field == memName:
			return func(f *frame) any { return f.st.vars.Mem }
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

func (c *fastCompiler) compileVariableDeclaratorNode(n *ast.VariableDeclaratorNode) fastFn {
	if id, ok := n.Value.(*ast.IdentifierNode); ok && (isFuncField(id.Value) || id.Value == "input") {
		if _, shadowed := c.lookup(id.Value); !shadowed {
			alias := fastVar{name: n.Name, field: id.Value}
			if id.Value == "input" {
				alias = fastVar{name: n.Name, input: true}
			}
			c.scopes = append(c.scopes, alias)
			body := c.compile(n.Expr)
			c.scopes = c.scopes[:len(c.scopes)-1]
			return body
		}
	}
	value := c.compile(n.Value)
	slot := c.slots
	c.slots++
	c.scopes = append(c.scopes, fastVar{name: n.Name, slot: slot})
	body := c.compile(n.Expr)
	c.scopes = c.scopes[:len(c.scopes)-1]
	return func(f *frame) any {
		f.slots[slot] = value(f)
		return body(f)
	}
}

func isFuncField(name string) bool {
	return name == "result" || name == "string" || strings.HasPrefix(name, helperPrefix)
}

func (c *fastCompiler) compileUnaryNode(n *ast.UnaryNode) fastFn {
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

func (c *fastCompiler) compileBinaryNode(n *ast.BinaryNode) fastFn {
	switch n.Operator {
	case "==", "!=":
		return c.compileEqualBinaryNode(n)
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

func (c *fastCompiler) compileEqualBinaryNode(n *ast.BinaryNode) fastFn {
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
func (c *fastCompiler) compileMemberNode(n *ast.MemberNode) fastFn {
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
	base := c.compile(n.Node)
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
func (c *fastCompiler) compileChainNode(n *ast.ChainNode) fastFn {
	c.chains++
	inner := c.compile(n.Node)
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
	base := c.compile(n.Node)
	prop := c.compile(n.Property)
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
func (c *fastCompiler) compileSliceNode(n *ast.SliceNode) fastFn {
	node := c.compile(n.Node)
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
