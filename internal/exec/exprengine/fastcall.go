package exprengine

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// Compiling CallNode: the handler's helpers (merge, result, round...), expr's builtin
// functions called through the function table, and the context fields.

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
		fn := c.compile(a)
		if t := a.Type(); t != nil && t.Kind() == reflect.Pointer {
			fns[i] = func(f *frame) any { return deref(fn(f)) }
			continue
		}
		fns[i] = fn
	}
	return fns
}

func (c *fastCompiler) compileCallNode(n *ast.CallNode) fastFn {
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
		if id.Value == "merge" && hasMemArg(n.Arguments) {
			// The fast merge charges the run's budget itself (f.st.mem).
			if m := c.merge(n.Arguments[:len(n.Arguments)-1], c.tail[n], c.envMerges[n]); m != nil {
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
						return boxNum(d.at(at))
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
				out, env := c.compile(n.Arguments[0]), c.compile(n.Arguments[1])
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

// variadic calls a function registered with expr.Function, as OpCall1..OpCallN do; the
// arguments go through the frame's argument stack, which nested calls share.
func variadic(fn func(...any) (any, error), args []fastFn) fastFn {
	return func(f *frame) any {
		vals, base := f.evalArgs(args)
		out, err := fn(vals...)
		f.popArgs(base)
		if err != nil {
			panic(fastBail{fallbackError})
		}
		return out
	}
}

// helperCall calls a function field of vars directly, with the type assertions of the VM's
// OpCallTyped.
func helperCall(field string, args []fastFn) fastFn {
	arity := map[string]int{
		"result": 2, "string": 1, tickName: 1, tickBoolName: 1, tickIntName: 1, tickFloatName: 1,
		tickStrName: 1, addName: 2, eqName: 2, inName: 2, getName: 2, roundName: 2, strName: 1, strAnyName: 1,
		matchName: 2,
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
	case matchName:
		return func(f *frame) any { x := a(f); return f.st.vars.Match(x, b(f)) }
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
