package exprengine

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
)

// The VM boxes every intermediate number (each float64 result of an operator is an
// allocation); the fast path keeps them unboxed between the operators that take numbers.

// num is a number the fast path has not boxed: an int or a float64, the only numbers a
// decoded input holds and expr's arithmetic makes of them.
type num struct {
	f float64
	i int
	k numKind
}

type numKind uint8

const (
	boxed numKind = iota // not a number held unboxed: the value is in the accompanying any
	intNum
	floatNum
)

// numFn evaluates a node to an unboxed number or, for any other value, to that value.
type numFn func(f *frame) (num, any)

func unbox(v any) (num, any) {
	switch x := v.(type) {
	case int:
		return num{i: x, k: intNum}, nil
	case float64:
		return num{f: x, k: floatNum}, nil
	}
	return num{}, v
}

func (n num) box(v any) any {
	switch n.k {
	case intNum:
		return n.i
	case floatNum:
		return n.f
	}
	return v
}

// boxNum is n as an interface (v when n is not a number held unboxed).
func boxNum(n num, v any) any { return n.box(v) }

func (n num) float() float64 {
	if n.k == intNum {
		return float64(n.i)
	}
	return n.f
}

// numeric compiles n for a consumer that takes numbers: operators and round's first
// argument. Nodes that make numbers are compiled to keep them unboxed; any other node's value
// is unboxed when it is a number (the operand deref included).
func (c *fastCompiler) numeric(n ast.Node) numFn {
	switch x := n.(type) {
	case *ast.PredicateNode:
		return c.numeric(x.Node)
	case *ast.IntegerNode, *ast.FloatNode:
		k, v := unbox(c.compile(n)(nil)) // a constant: see node
		return func(*frame) (num, any) { return k, v }
	case *ast.IdentifierNode:
		if v, ok := c.lookup(x.Value); ok && v.field == "" && !v.input {
			slot := v.slot
			return func(f *frame) (num, any) { return unbox(deref(f.slots[slot])) }
		}
	case *ast.BinaryNode:
		switch x.Operator {
		case "+", "-", "*", "/":
			return c.arith(x.Operator, x.Left, x.Right, "")
		case "??":
			// (env[key] ?? default) * ...: the default is kept unboxed, and the operator's
			// own value is not boxed again for the consumer.
			l, r := c.operand(x.Left), c.numeric(x.Right)
			return func(f *frame) (num, any) {
				if v := l(f); !runtime.IsNil(v) {
					return unbox(v)
				}
				return r(f)
			}
		}
	case *ast.CallNode:
		switch field := c.helper(x); {
		case field == getName && len(x.Arguments) == 2 && c.isInput(x.Arguments[0]):
			index, _ := c.inputIndex(x.Arguments[1])
			whole := c.compile(x)
			return func(f *frame) (num, any) {
				if d, ok := f.st.vars.Input.(*document); ok {
					// The key is evaluated here, and whole not at all.
					if at, _ := index(f, d); at != notKey {
						return d.at(at)
					}
					panic(fastBail{fallbackValue}) // not a key of the input: the VM finds it or fails
				}
				return unbox(whole(f))
			}
		case field == addName && len(x.Arguments) == 2 && !isStringConst(x.Arguments[0]) && !isStringConst(x.Arguments[1]):
			return c.arith("+", x.Arguments[0], x.Arguments[1], addName)
		case field == roundName && len(x.Arguments) == 2:
			return c.round(x.Arguments[0], x.Arguments[1])
		case (field == tickName || field == tickIntName || field == tickFloatName) && len(x.Arguments) == 1:
			// A loop body (sum's, say) wrapped to count iterations: the tick's check, then
			// the body unboxed. The typed ticks are not even called on a value of another
			// type, which the VM reports and the fast path leaves to it.
			body, typed, wantInt := c.numeric(x.Arguments[0]), field != tickName, field == tickIntName
			return func(f *frame) (num, any) {
				f.st.guard.check()
				n, v := body(f)
				if typed && (n.k == boxed || (n.k == intNum) != wantInt) {
					panic(fastBail{fallbackError}) // the VM reports the type
				}
				return n, v
			}
		}
	}
	fn := c.operand(n)
	return func(f *frame) (num, any) { return unbox(fn(f)) }
}

// helper is the vars function field that call calls (getName, "string", ...): "" when its
// callee is not an identifier, is a registered function (which expr's compiler picks first)
// or is not a helper.
func (c *fastCompiler) helper(call *ast.CallNode) string {
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return ""
	}
	if _, registered := c.config.Functions[id.Value]; registered {
		return ""
	}
	v, _ := c.lookup(id.Value)
	return v.field
}

// boxedNum is a numFn as a fastFn.
func boxedNum(fn numFn) fastFn {
	return func(f *frame) any { return boxNum(fn(f)) }
}

// arith is +, -, * or / (expr's runtime.Add and the others on ints and float64s: ints wrap,
// / always divides as floats). A non-number goes to the runtime function, or, for a + the
// rewriter turned into a call, to the helper.
func (c *fastCompiler) arith(op string, left, right ast.Node, helper string) numFn {
	l, r := c.numeric(left), c.numeric(right)
	var generic func(f *frame, a, b any) any
	switch {
	case helper != "":
		generic = func(f *frame, a, b any) any { return f.st.vars.Add(a, b) }
	case op == "+":
		generic = func(_ *frame, a, b any) any { return runtime.Add(a, b) }
	case op == "-":
		generic = func(_ *frame, a, b any) any { return runtime.Subtract(a, b) }
	case op == "*":
		generic = func(_ *frame, a, b any) any { return runtime.Multiply(a, b) }
	default:
		generic = func(_ *frame, a, b any) any { return runtime.Divide(a, b) }
	}
	code := arithCode(op)
	return func(f *frame) (num, any) {
		a, av := l(f)
		b, bv := r(f)
		if n, ok := arithNums(code, a, b); ok {
			return n, nil
		}
		return unbox(generic(f, a.box(av), b.box(bv)))
	}
}

// arithOp is an arithmetic operator, as a code to switch on rather than its text.
type arithOp uint8

const (
	opAdd arithOp = iota
	opSub
	opMul
	opDiv
)

func arithCode(op string) arithOp {
	switch op {
	case "+":
		return opAdd
	case "-":
		return opSub
	case "*":
		return opMul
	}
	return opDiv
}

// arithNums is op on two unboxed numbers as expr's runtime does it; false when either is not
// one.
func arithNums(op arithOp, a, b num) (num, bool) {
	switch {
	case a.k == boxed || b.k == boxed:
		return num{}, false
	case a.k == intNum && b.k == intNum && op != opDiv:
		switch op {
		case opAdd:
			return num{i: a.i + b.i, k: intNum}, true
		case opSub:
			return num{i: a.i - b.i, k: intNum}, true
		}
		return num{i: a.i * b.i, k: intNum}, true
	}
	x, y := a.float(), b.float()
	switch op {
	case opAdd:
		x += y
	case opSub:
		x -= y
	case opMul:
		x *= y
	default:
		x /= y
	}
	return num{f: x, k: floatNum}, true
}

// round is the rewritten round(x, n): roundTo, without boxing x or the result.
func (c *fastCompiler) round(x, digits ast.Node) numFn {
	xf, nf := c.numeric(x), c.compile(digits)
	return func(f *frame) (num, any) {
		a, av := xf(f)
		n := nf(f)
		if a.k == boxed {
			return unbox(f.st.vars.Round(av, n))
		}
		d, ok := n.(int)
		if !ok {
			return unbox(f.st.vars.Round(a.box(nil), n))
		}
		return num{f: roundDigits(a.float(), d), k: floatNum}, nil
	}
}

// compare is <, >, <=, >=, == or != (runtime.Less and the others, runtime.Equal) on two
// numbers; anything else goes to the runtime function.
func (c *fastCompiler) compare(op string, left, right ast.Node) fastFn {
	l, r := c.numeric(left), c.numeric(right)
	var generic func(a, b any) bool
	var test func(a, b float64) bool
	var testInt func(a, b int) bool
	switch op {
	case "<":
		generic, test, testInt = runtime.Less, func(a, b float64) bool { return a < b }, func(a, b int) bool { return a < b }
	case ">":
		generic, test, testInt = runtime.More, func(a, b float64) bool { return a > b }, func(a, b int) bool { return a > b }
	case "<=":
		generic, test, testInt = runtime.LessOrEqual, func(a, b float64) bool { return a <= b }, func(a, b int) bool { return a <= b }
	case ">=":
		generic, test, testInt = runtime.MoreOrEqual, func(a, b float64) bool { return a >= b }, func(a, b int) bool { return a >= b }
	default: // == and !=; the caller negates
		generic, test, testInt = runtime.Equal, func(a, b float64) bool { return a == b }, func(a, b int) bool { return a == b }
	}
	return func(f *frame) any {
		a, av := l(f)
		b, bv := r(f)
		switch {
		case a.k == intNum && b.k == intNum:
			return testInt(a.i, b.i)
		case a.k != boxed && b.k != boxed:
			return test(a.float(), b.float())
		}
		return generic(a.box(av), b.box(bv))
	}
}

func isStringConst(n ast.Node) bool {
	_, ok := n.(*ast.StringNode)
	return ok
}

// isNumber reports whether n's static type is int or float64, or unknown (interface), where
// the numeric paths may apply; a comparison of strings, say, goes straight to the VM's
// operation instead.
func isNumber(n ast.Node) bool {
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Float64, reflect.Interface:
		return t.PkgPath() == ""
	}
	return false
}
