package exprengine

import (
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Key caches: the strings a handler builds from a constant and another string (a + b,
// "prefix" + string(i)) remembered from run to run, and where such keys are in the input.

// catCache remembers, for one + of a constant string and another string, the results for
// the last few other operands. Keys are compared by value, so an entry is never wrong; where
// an entry may be is picked from the string's address (two places, so that a handful of keys
// rarely evict each other), which is stable for the strings such a + usually gets: string(i)
// for small i, and the concatenation memo's own results.
type catCache [catSlots]struct {
	key string
	val any
}

const catSlots = 128

func (c *catCache) lookup(s string) (v any, first, second int) {
	h := addrHash(stringAddr(s))
	first, second = int(h>>57), int(h>>50)&(catSlots-1)
	if e := &c[first]; e.val != nil && e.key == s {
		return e.val, first, second
	}
	if e := &c[second]; e.val != nil && e.key == s {
		return e.val, first, second
	}
	return nil, first, second
}

// store puts v at the first of the two places that is free, or else at the first.
func (c *catCache) store(s string, v any, first, second int) {
	if c[first].val != nil && c[second].val == nil {
		first = second
	}
	// A copy: s may be a slice of a large string the cache should not pin.
	c[first].key, c[first].val = strings.Clone(s), v
}

// concat compiles the rewritten + with one constant string operand.
func (c *fastCompiler) concat(args []ast.Node) fastFn {
	site := c.cats
	c.cats++
	constLeft := isStringConst(args[0])
	if fn := c.concatInt(site, args, constLeft); fn != nil {
		return fn
	}
	a, b := c.compile(args[0]), c.compile(args[1])
	return func(f *frame) any {
		x := a(f)
		y := b(f)
		other, ok := y.(string)
		if !constLeft {
			other, ok = x.(string)
		}
		if !ok {
			return f.st.vars.Add(x, y)
		}
		cache := f.cats[site]
		if cache == nil {
			cache = new(catCache)
			f.cats[site] = cache
		}
		v, first, second := cache.lookup(other)
		if v != nil {
			f.st.mem.charge("+", len(v.(string))) // as vars.Add charges the VM's run
			return v
		}
		v = f.st.vars.Add(x, y)
		if len(other) <= maxMemoLen {
			cache.store(other, v, first, second)
		}
		return v
	}
}

// notKey is inputIndex's index for a key that is not a string.
const notKey = -2

// intKey is what a "constant" + string(i) site remembers of one i in [0, intCatSize): the
// string it made (concatInt), and where that key is in the input's shape seen last, when the
// site is a key of input (inputIndex). One table per site serves both.
type intKey struct {
	str   any
	shape *docShape
	at    int
}

// intKeys is the table of site, made on its first use.
func (f *frame) intKeys(site int) *[intCatSize]intKey {
	t := f.intCats[site]
	if t == nil {
		t = new([intCatSize]intKey)
		f.intCats[site] = t
	}
	return t
}

// inputIndex compiles the key n of input[n] or n in input, for a document input: it returns
// where in the document the key is (-1 when it is not there), or notKey and the key when the
// key is not a string; and key, n compiled for any other input. A key made as concatInt's,
// "constant" + string(x), is remembered by x for the document's shape: a handler reads the
// same keys of same-shaped documents run after run, and then neither the key nor its place
// is looked up.
func (c *fastCompiler) inputIndex(n ast.Node) (index func(f *frame, d *document) (int, any), key fastFn) {
	site := c.cats // the concatenation's, when n is one (see intKey)
	key = c.compile(n)
	generic := func(f *frame, d *document) (int, any) {
		k := key(f)
		if s, ok := k.(string); ok {
			return d.where.index(d.shape, s), nil
		}
		return notKey, k
	}
	x := c.intKey(n)
	if x == nil {
		return generic, key
	}
	index = func(f *frame, d *document) (int, any) {
		n, _ := x(f)
		if n.k != intNum || uint(n.i) >= intCatSize {
			return generic(f, d)
		}
		e := &f.intKeys(site)[n.i]
		if e.shape == d.shape && e.shape != nil {
			return e.at, nil
		}
		at, k := generic(f, d) // x again, with the key: once per key and shape
		if at != notKey {
			e.shape, e.at = d.shape, at
		}
		return at, k
	}
	return index, key
}

// intKey returns x of a key "constant" + string(x) or string(x) + "constant" (string the
// builtin), compiled; nil for any other key.
func (c *fastCompiler) intKey(n ast.Node) numFn {
	call, ok := n.(*ast.CallNode)
	if !ok || len(call.Arguments) != 2 || c.helper(call) != addName {
		return nil
	}
	other := call.Arguments[1]
	switch {
	case isStringConst(call.Arguments[0]):
	case isStringConst(call.Arguments[1]):
		other = call.Arguments[0]
	default:
		return nil
	}
	str, ok := other.(*ast.CallNode)
	if !ok || len(str.Arguments) != 1 || c.helper(str) != "string" {
		return nil
	}
	return c.numeric(str.Arguments[0])
}

// intCatSize bounds the ints whose concatenation concatInt remembers.
const intCatSize = 256

// concatInt compiles "constant" + string(x) (or string(x) + "constant"), a handler's usual way
// to build a key from a loop index, when string is the builtin: for an int x in [0,
// intCatSize) the result is remembered per site by x itself, with neither the string of x nor
// the concatenation looked up. nil when the operand is something else.
func (c *fastCompiler) concatInt(site int, args []ast.Node, constLeft bool) fastFn {
	kn, other := args[0], args[1]
	if !constLeft {
		kn, other = args[1], args[0]
	}
	k := kn.(*ast.StringNode) // concat's caller checked
	call, ok := other.(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 || c.helper(call) != "string" {
		return nil
	}
	arg := c.numeric(call.Arguments[0])
	join := func(f *frame, s any) any {
		if constLeft {
			return f.st.vars.Add(k.Value, s)
		}
		return f.st.vars.Add(s, k.Value)
	}
	return func(f *frame) any {
		n, v := arg(f)
		if n.k != intNum || uint(n.i) >= intCatSize {
			return join(f, f.st.vars.String(f.boxNum(n, v)))
		}
		e := &f.intKeys(site)[n.i]
		if e.str != nil {
			// What string(x) and the + charge the VM's run.
			f.st.mem.charge("+", 2*len(e.str.(string))-len(k.Value))
			return e.str
		}
		e.str = join(f, f.st.vars.String(n.i))
		return e.str
	}
}
