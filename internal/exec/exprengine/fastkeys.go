package exprengine

import (
	"github.com/expr-lang/expr/ast"
)

// The fast path's key sites: a + with a constant string operand, and the key of input[key]
// and key in input, each served by the run state's key cache (keys.go).

// keyFn evaluates a key site: the cache's entry and its string, or nil and the value when
// the cache does not hold it (a string too long to keep, or not a string at all).
type keyFn func(f *frame) (*keyEntry, any)

// concat compiles the rewritten + with one constant string operand.
func (c *fastCompiler) concat(args []ast.Node) fastFn {
	key := c.keySite(args)
	return func(f *frame) any {
		_, v := key(f)
		return v
	}
}

// keySite compiles "constant" + x or x + "constant". "constant" + string(x), a handler's
// usual way to build a key from a loop index, is found by x itself when x is an int in
// [0, maxKeyInt), with neither string(x) nor the concatenation made or hashed.
func (c *fastCompiler) keySite(args []ast.Node) keyFn {
	kn, other := args[0], args[1]
	constLeft := isStringConst(kn)
	if !constLeft {
		kn, other = args[1], args[0]
	}
	k := keyConst{s: kn.(*ast.StringNode).Value, left: constLeft, row: -1} // concat's caller checked
	k.hash = strHash(k.s)
	if x := c.stringOfNumber(other); x != nil {
		k.row = c.keyRow(k.s, constLeft)
		return func(f *frame) (*keyEntry, any) {
			n, v := x(f)
			if n.k == intNum && uint(n.i) < maxKeyInt {
				if e := f.st.keys.intHit(&k, n.i); e != nil {
					f.st.mem.charge("+", k.intBytes(e))
					return e, e.val
				}
				return f.st.keys.withInt(&k, n.i)
			}
			return f.st.keys.withString(&k, f.st.vars.String(n.box(v)).(string), false)
		}
	}
	// The other operand may be a key site itself ("avg-util-cpu" + i + "-60sec"): its
	// entry's string is the cache's own, which the entry of this one keeps as it is.
	var o keyFn
	if args := c.keySiteArgs(other); args != nil {
		o = c.keySite(args)
	} else {
		fn := c.compile(other)
		o = func(f *frame) (*keyEntry, any) { return nil, fn(f) }
	}
	return func(f *frame) (*keyEntry, any) {
		e, v := o(f)
		s, ok := v.(string)
		if !ok {
			if constLeft {
				return nil, f.st.vars.Add(k.s, v)
			}
			return nil, f.st.vars.Add(v, k.s)
		}
		return f.st.keys.withString(&k, s, e != nil)
	}
}

// keySiteArgs returns the operands of n when n is a key site (the rewritten + with a constant
// string operand), nil otherwise.
func (c *fastCompiler) keySiteArgs(n ast.Node) []ast.Node {
	call, ok := n.(*ast.CallNode)
	if ok && len(call.Arguments) == 2 && c.helper(call) == addName &&
		(isStringConst(call.Arguments[0]) || isStringConst(call.Arguments[1])) {
		return call.Arguments
	}
	return nil
}

// keyRow is the key cache's row for the ints joined with constant s (keyConst.row): one per
// constant and side in the program, the first maxKeyRows of them; row 0 is string(i)'s, "" + i.
func (c *fastCompiler) keyRow(s string, left bool) int {
	if c.keyRows == nil {
		c.keyRows = map[keySide]int{{"", true}: 0}
	}
	row, ok := c.keyRows[keySide{s, left}]
	if !ok {
		if len(c.keyRows) >= maxKeyRows {
			return -1
		}
		row = len(c.keyRows)
		c.keyRows[keySide{s, left}] = row
	}
	return row
}

// keySide is a constant operand of + and its side.
type keySide struct {
	s    string
	left bool
}

// stringOfNumber returns x of string(x) (string the builtin), compiled to a number; nil for
// any other node.
func (c *fastCompiler) stringOfNumber(n ast.Node) numFn {
	call, ok := n.(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 || c.helper(call) != "string" {
		return nil
	}
	return c.numeric(call.Arguments[0])
}

// notKey is inputIndex's index for a key that is not a string.
const notKey = -2

// inputIndex compiles the key n of input[n] or n in input, for a document input: it returns
// where in the document the key is (-1 when it is not there), or notKey and the key when the
// key is not a string; and key, n compiled for any other input. A handler reads the same keys
// of same-shaped documents run after run: the key cache remembers where each is in the
// shape, found by the key site's entry when n is one, else by the key's value (hashed at
// compile time when n is a constant).
func (c *fastCompiler) inputIndex(n ast.Node) (index func(f *frame, d *document) (int, any), key fastFn) {
	if args := c.keySiteArgs(n); args != nil {
		site := c.keySite(args)
		index = func(f *frame, d *document) (int, any) {
			e, v := site(f)
			if e != nil {
				return e.index(d.shape), nil
			}
			if s, ok := v.(string); ok {
				return d.shape.find(s), nil
			}
			return notKey, v
		}
		key = func(f *frame) any {
			_, v := site(f)
			return v
		}
		return index, key
	}
	key = c.compile(n)
	var h uint64
	constant, isConst := n.(*ast.StringNode)
	if isConst {
		h = strHash(constant.Value)
	}
	index = func(f *frame, d *document) (int, any) {
		k := key(f)
		s, ok := k.(string)
		if !ok {
			return notKey, k
		}
		hs := h
		if !isConst {
			hs = strHash(s)
		}
		return f.st.keys.index(d.shape, s, hs, isConst), nil
	}
	return index, key
}
