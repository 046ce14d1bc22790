package exprengine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// The byte budget of a run (Limits.MaxRunBytes, HANDLER_MEMORY). expr's own memory budget
// counts collection elements, not bytes, so a run could build gigabytes of strings inside it.
// Every path that makes a string or a collection whose size the program controls charges the
// run's budget before it allocates (or, for a value bounded by MaxStringBytes, right after: at
// most one allocation overshoots), and a run that would pass it stops with ErrHandlerMemory:
//
//   - the rewritten + (vars.Add, both paths; a concatenation the key cache already holds is
//     charged as if it were built, so both paths charge alike: keys.go), string(x)
//     (vars.String) and strings returned by method calls (vars.Str, vars.StrAny);
//   - the builtins that build strings or collections (repeat, join, replace, split, splitAfter,
//     upper, lower, toJSON, fromJSON, toBase64, fromBase64, keys, values, toPairs, fromPairs,
//     uniq, flatten) and merge, which the budget patcher gives the run's budget as a hidden last
//     argument (a program-wide function has no other way to reach a run's state);
//   - regex compilation (matchRegex): the memory Go's regexp takes for a pattern;
//   - collections the VM builds itself (ranges, literals, map and filter results, sort,
//     concat, reverse): expr's element budget, which the fast path mirrors, capped so that
//     their slots stay within a fraction of the byte budget (vmMemoryBudget).

// Estimated sizes of what a run allocates, in bytes.
const (
	slotBytes  = 16 // one element of a []any or []string: an interface or string header
	sliceBytes = 24 // a slice header
	entryBytes = 64 // one entry of a map[string]any, with the table's slack
	mapBytes   = 48 // a map header
)

// vmSlotShare is the share of the byte budget the collections the VM builds may take: expr
// counts their elements (vm.VM.MemoryBudget), not bytes, and a run's element budget is set to
// the budget's bytes / (vmSlotShare × slotBytes).
const vmSlotShare = 2

// vmMemoryBudget is the element budget (vm.VM.MemoryBudget, the fast path's frame.budget) of a
// program compiled within lim: Limits.MemoryBudget, capped so that the element slots the VM
// allocates take at most 1/vmSlotShare of the byte budget.
func vmMemoryBudget(lim Limits) uint {
	return min(lim.MemoryBudget, uint(lim.MaxRunBytes/(vmSlotShare*slotBytes)))
}

// runBudget counts the bytes one run allocated; pooled with its run state and reset for every
// run (and again before the VM runs what the fast path gave up on).
type runBudget struct {
	used, limit int
	exceeded    bool // a charge was refused since the last reset
}

func (b *runBudget) reset(limit int) { b.used, b.limit, b.exceeded = 0, limit, false }

// charge counts n more bytes, and stops the run (a panic, which the VM and the fast path turn
// into the run's error) when they take it past the budget.
func (b *runBudget) charge(what string, n int) {
	if n < 0 || n > b.limit-b.used {
		b.refuse(what, n)
	}
	b.used += n
}

// refuse is charge's refusal, apart so that charge is inlined where the run counts keys.
func (b *runBudget) refuse(what string, n int) {
	b.exceeded = true
	panic(fmt.Errorf("%s: %s more would pass the run's memory budget of %d bytes (%d used): %w",
		what, bytesOf(n), b.limit, b.used, ErrHandlerMemory))
}

// left is what the run may still allocate.
func (b *runBudget) left() int { return b.limit - b.used }

func bytesOf(n int) string {
	if n < 0 {
		return "more than 2^63 bytes"
	}
	return fmt.Sprintf("%d bytes", n)
}

// mulBytes is a × b, or -1 (which charge refuses) when it overflows.
func mulBytes(a, b int) int {
	if a < 0 || b < 0 || (a > 0 && b > math.MaxInt/a) {
		return -1
	}
	return a * b
}

// memRef is how a builtin reaches the budget of the run calling it: the budget patcher
// appends the vars field holding it to every call of a budgeted function. A struct holding one
// pointer, so that it is boxed without an allocation and the fast path does not take it for a
// pointer to dereference.
type memRef struct{ b *runBudget }

var memRefType = reflect.TypeFor[memRef]()

// budgetedNames are the functions that get the hidden budget argument.
var budgetedNames = map[string]bool{
	"merge": true, "repeat": true, "join": true, "replace": true, "split": true, "splitAfter": true,
	"upper": true, "lower": true, "toJSON": true, "fromJSON": true, "toBase64": true,
	"fromBase64": true, "keys": true, "values": true, "toPairs": true, "fromPairs": true,
	"uniq": true, "flatten": true,
}

// budgetPatcher appends the run's budget (the vars field memName) to every call of a
// budgeted function. It runs once, before the rewriter.
type budgetPatcher struct{}

func (budgetPatcher) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || !budgetedNames[id.Value] || hasMemArg(n.Arguments) {
		return
	}
	arg := &ast.IdentifierNode{Value: memName}
	arg.SetLocation(n.Location())
	n.Arguments = append(n.Arguments, arg)
}

// hasMemArg reports whether a call's last argument is the hidden budget (before or after
// compileTree renamed it to its bound variable).
func hasMemArg(args []ast.Node) bool {
	if len(args) == 0 {
		return false
	}
	id, ok := args[len(args)-1].(*ast.IdentifierNode)
	return ok && (id.Value == memName || id.Value == boundVar(memName))
}

// budgeted replaces function name (a builtin, or one registered before it) by fn, which gets
// the calling run's budget; the hidden argument is invisible to type checking and messages:
// a Validate sees the arguments without it, and Types get it as an extra last parameter.
func budgeted(name string, fn func(b *runBudget, args ...any) (any, error)) expr.Option {
	return func(c *conf.Config) {
		orig, ok := c.Functions[name]
		if !ok {
			orig, ok = c.Builtins[name]
		}
		if !ok {
			return
		}
		f := &builtin.Function{Name: name, Func: func(args ...any) (any, error) {
			ref, ok := args[len(args)-1].(memRef)
			if !ok || ref.b == nil {
				return nil, fmt.Errorf("%s: called without the run's memory budget", name)
			}
			return fn(ref.b, args[:len(args)-1]...)
		}}
		if orig.Validate != nil {
			validate := orig.Validate
			f.Validate = func(args []reflect.Type) (reflect.Type, error) {
				if n := len(args); n > 0 && args[n-1] == memRefType {
					args = args[:n-1]
				}
				return validate(args)
			}
		} else {
			for _, t := range orig.Types {
				if t.IsVariadic() {
					f.Types = append(f.Types, t) // ...any takes the budget as it is
					continue
				}
				in := make([]reflect.Type, 0, t.NumIn()+1)
				for i := range t.NumIn() {
					in = append(in, t.In(i))
				}
				out := make([]reflect.Type, t.NumOut())
				for i := range out {
					out[i] = t.Out(i)
				}
				f.Types = append(f.Types, reflect.FuncOf(append(in, memRefType), out, false))
			}
		}
		c.Functions[name] = f
	}
}

// budgetOptions replaces the budgeted functions; they must come after the options that
// register or bound them (library.options), whose versions they wrap.
func (l *library) budgetOptions() []expr.Option {
	str := func(args []any, i int) string {
		if i < len(args) {
			if s, ok := args[i].(string); ok {
				return s
			}
		}
		return ""
	}
	return []expr.Option{
		budgeted("merge", func(b *runBudget, args ...any) (any, error) {
			size, err := mergeTotal(args)
			if err != nil {
				return nil, err
			}
			b.charge("merge", mapSize(size))
			return l.merge(args...)
		}),
		budgeted("repeat", func(b *runBudget, args ...any) (any, error) {
			// Past the string limit, repeat itself refuses, with that error.
			if n, ok := args[1].(int); ok && n > 0 {
				if size := mulBytes(len(str(args, 0)), n); size >= 0 && size <= l.lim.MaxStringBytes {
					b.charge("repeat", size)
				}
			}
			return l.repeat(args...)
		}),
		budgeted("join", func(b *runBudget, args ...any) (any, error) {
			n := 0
			switch a := args[0].(type) {
			case []string:
				for _, s := range a {
					n += len(s) + len(str(args, 1))
				}
			case []any:
				for _, v := range a {
					s, _ := v.(string)
					n += len(s) + len(str(args, 1))
				}
			}
			if n <= l.lim.MaxStringBytes {
				b.charge("join", n)
			}
			return l.join(args...)
		}),
		budgeted("replace", after("replace", l.replace)),
		budgeted("toBase64", func(b *runBudget, args ...any) (any, error) {
			if n := base64.StdEncoding.EncodedLen(len(str(args, 0))); n <= l.lim.MaxStringBytes {
				b.charge("toBase64", n)
			}
			return l.toBase64(args...)
		}),
		budgeted("fromBase64", func(b *runBudget, args ...any) (any, error) {
			b.charge("fromBase64", base64.StdEncoding.DecodedLen(len(str(args, 0))))
			return builtinFunc("fromBase64")(args...)
		}),
		budgeted("toJSON", func(b *runBudget, args ...any) (any, error) {
			// The encoder stops at the string limit or at what the budget has left, so its
			// buffer is bounded before it grows; the buffer and the string made of it count.
			var e codec.Encoder
			limit := min(l.lim.MaxStringBytes, b.left())
			e.Reset("toJSON argument", limit, true)
			if err := e.Encode(args[0]); err != nil {
				if errors.Is(err, ErrTooLarge) {
					if limit < l.lim.MaxStringBytes {
						b.charge("toJSON", limit+1)
					}
					return nil, l.tooLong("toJSON", len(e.Bytes()))
				}
				return nil, err
			}
			b.charge("toJSON", cap(e.Bytes())+len(e.Bytes()))
			return string(e.Bytes()), nil
		}),
		budgeted("fromJSON", func(b *runBudget, args ...any) (any, error) {
			// A decoded value takes at most this many times its JSON ("[1,1,...]": two bytes
			// per 16-byte element).
			b.charge("fromJSON", mulBytes(len(str(args, 0)), slotBytes/2))
			return fromJSON(args...)
		}),
		budgeted("split", splitFunc("split", strings.Split, strings.SplitN)),
		budgeted("splitAfter", splitFunc("splitAfter", strings.SplitAfter, strings.SplitAfterN)),
		budgeted("upper", caseFunc("upper", strings.ToUpper)),
		budgeted("lower", caseFunc("lower", strings.ToLower)),
		budgeted("keys", collection("keys", builtinFunc("keys"), sliceSize)),
		budgeted("values", collection("values", builtinFunc("values"), sliceSize)),
		// Each pair is a 2-element []any.
		budgeted("toPairs", collection("toPairs", builtinFunc("toPairs"), func(n int) int { return sliceSize(n) + n*sliceSize(2) })),
		budgeted("fromPairs", collection("fromPairs", fromPairs, mapSize)),
		budgeted("uniq", collection("uniq", l.uniq, sliceSize)),
		budgeted("flatten", func(b *runBudget, args ...any) (any, error) {
			n := int(l.lim.MemoryBudget)
			if countElements(args[0], &n, 0) {
				b.charge("flatten", sliceSize(int(l.lim.MemoryBudget)-n))
			}
			return l.flatten(args...)
		}),
	}
}

func sliceSize(n int) int { return sliceBytes + mulBytes(n, slotBytes) }
func mapSize(n int) int   { return mapBytes + mulBytes(n, entryBytes) }

// builtinFunc is expr's implementation of builtin name.
func builtinFunc(name string) func(args ...any) (any, error) {
	return builtin.Builtins[builtin.Index[name]].Func
}

// after charges a string builder bounded by MaxStringBytes once it returns.
func after(name string, fn func(args ...any) (any, error)) func(b *runBudget, args ...any) (any, error) {
	return func(b *runBudget, args ...any) (any, error) {
		out, err := fn(args...)
		if s, ok := out.(string); ok && err == nil {
			b.charge(name, len(s))
		}
		return out, err
	}
}

// collection charges for a collection as long as the first argument's (an array or a map),
// of size(len) bytes, before fn builds it.
func collection(name string, fn func(args ...any) (any, error), size func(int) int) func(b *runBudget, args ...any) (any, error) {
	return func(b *runBudget, args ...any) (any, error) {
		if len(args) > 0 {
			switch v := reflect.ValueOf(args[0]); v.Kind() {
			case reflect.Slice, reflect.Array, reflect.Map:
				b.charge(name, size(v.Len()))
			}
		}
		return fn(args...)
	}
}

// splitFunc is split or splitAfter: the array of parts is charged before it is made (the
// parts share the string's bytes).
func splitFunc(name string, all func(s, sep string) []string, n func(s, sep string, n int) []string) func(b *runBudget, args ...any) (any, error) {
	return func(b *runBudget, args ...any) (any, error) {
		s, ok1 := args[0].(string)
		sep, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: arguments are %s and %s, not strings", name, typeName(args[0]), typeName(args[1]))
		}
		parts := utf8.RuneCountInString(s)
		if sep != "" {
			parts = strings.Count(s, sep) + 1
		}
		switch len(args) {
		case 2:
			b.charge(name, sliceSize(parts))
			return all(s, sep), nil
		case 3:
			limit := runtime.ToInt(args[2])
			if limit >= 0 {
				parts = min(parts, limit)
			}
			b.charge(name, sliceSize(parts))
			return n(s, sep, limit), nil
		}
		return nil, fmt.Errorf("invalid number of arguments for %s (expected 2 or 3, got %d)", name, len(args))
	}
}

// caseFunc is upper or lower: the result may be longer than s (some runes change their
// encoded length), by half at most.
func caseFunc(name string, fn func(string) string) func(b *runBudget, args ...any) (any, error) {
	return func(b *runBudget, args ...any) (any, error) {
		s, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("%s: argument is %s, not a string", name, typeName(args[0]))
		}
		b.charge(name, len(s)+len(s)/2)
		return fn(s), nil
	}
}

// budgetStop reports whether a panic is a budget refusing a run (charge, or the regex bounds),
// which the fast path meets through the same helpers as the VM: not a bug of the fast path.
func budgetStop(r any) bool {
	err, ok := r.(error)
	return ok && (errors.Is(err, ErrHandlerMemory) || errors.Is(err, ErrRegexCost))
}
