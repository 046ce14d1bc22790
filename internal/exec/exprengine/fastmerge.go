package exprengine

import (
	"reflect"

	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/expr-lang/expr/ast"
)

// merge(...) on the fast path: the map it builds sized once, the Object it makes when its value
// is only encoded, and map(array, [key, element]) pairs consumed without building them.

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
					parts[i].values[j] = c.compile(p.(*ast.PairNode).Value)
				}
				streamed = true
				continue
			}
		}
		if key, element, ok := c.pairBody(a); ok {
			parts[i].begin = c.iteration(a.(*ast.BuiltinNode).Arguments[0])
			parts[i].key, parts[i].element = c.compile(key), c.compile(element)
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
					panic(fastBail{fallbackError})
				}
				counts[i] = n
			}
			size += counts[i]
		}
		if size > int(f.budget) {
			panic(fastBail{fallbackBudget}) // too large for the budget: the VM says so
		}
		f.st.mem.charge("merge", mapSize(size)) // as the budgeted merge charges the VM's run
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
				panic(fastBail{fallbackError})
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
					panic(fastBail{fallbackError}) // the VM's error names the element
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
func (f *frame) object(site int, parts []mergePart, counts []int, vals []any) *codec.Object {
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
					panic(fastBail{fallbackError}) // the VM's error
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
