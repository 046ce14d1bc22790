package exprengine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Program is a compiled handler. It implements [exec.Handler] and is safe for concurrent use: each
// run takes a VM and its scratch space from a pool.
type Program struct {
	file      string
	hash      string
	lim       Limits
	prog      *vm.Program
	fast      *fastProgram // nil: the program always runs on the VM
	slow      string       // why fast is nil
	usesState bool
	loops     bool // the program has closures, so runs need a deadline timer
	matches   bool // the program matches regular expressions, which need the deadline
	pool      sync.Pool
	// onFallback, when set, is told of every run that went to the VM (ObserveFallbacks).
	onFallback atomic.Pointer[func(reason string)]
}

// ObserveFallbacks has fn told the reason (one of [FallbackReasons]) of every run that goes to
// expr's VM instead of the fast path; nil stops it. fn is called on the running goroutine and
// must not block. It may be set at any time, runs in progress included.
func (p *Program) ObserveFallbacks(fn func(reason string)) {
	if fn == nil {
		p.onFallback.Store(nil)
		return
	}
	p.onFallback.Store(&fn)
}

func (p *Program) fellBack(r fallback) {
	if fn := p.onFallback.Load(); fn != nil {
		(*fn)(r.String())
	}
}

var _ exec.Handler = (*Program)(nil)

// Compile compiles the program src, named file in errors, within lim. A program that cannot
// be compiled gives a [*CompileError]; invalid limits an error wrapping [ErrInvalidLimits].
func Compile(file string, src []byte, lim Limits) (p *Program, err error) {
	if err := lim.Validate(); err != nil {
		return nil, fmt.Errorf("compile %s: %w", file, err)
	}
	if len(src) > lim.MaxSourceBytes {
		return nil, &CompileError{File: file, Message: fmt.Sprintf("source is %d bytes, more than the limit of %d", len(src), lim.MaxSourceBytes)}
	}
	source := string(src)
	if !utf8.ValidString(source) {
		off := 0
		for off < len(source) {
			r, size := utf8.DecodeRuneInString(source[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		return nil, compileErrorAt(file, source, off, "source is not valid UTF-8")
	}
	if off := deepNesting(source, MaxNesting); off >= 0 {
		return nil, compileErrorAt(file, source, off, fmt.Sprintf("expression nests deeper than %d levels", MaxNesting))
	}
	defer func() {
		// expr's parser and checker are not written against hostile input; a panic in
		// them must not take the process down.
		if r := recover(); r != nil {
			p, err = nil, &CompileError{File: file, Message: oneLine(fmt.Sprintf("internal compiler error: %v", r))}
		}
	}()

	lib := newLibrary(lim)
	obs := &observer{safe: map[*ast.IdentifierNode]bool{}}
	rw := &rewriter{lib: lib}
	opts := []expr.Option{
		expr.Env(vars{}),
		expr.MaxNodes(lim.MaxNodes),
		expr.Patch(budgetPatcher{}),
		expr.Patch(obs),
		expr.Patch(rw),
		// The checker does not look inside a call it has already typed, so the calls the
		// rewriter placed under one would stay untyped (and be called through reflection).
		expr.Patch(untypeCalls{}),
	}
	opts = append(opts, lib.options()...)
	opts = append(opts, lib.budgetOptions()...)
	prog, fast, slow, cerr := compileTree(source, opts)
	if cerr != nil {
		return nil, toCompileError(file, source, cerr)
	}
	if rw.err != nil {
		return nil, rw.err.compileError(file, source)
	}
	sum := sha256.Sum256(src)
	p = &Program{
		file:      file,
		hash:      hex.EncodeToString(sum[:8]),
		lim:       lim,
		prog:      prog,
		fast:      fast,
		slow:      slow,
		usesState: obs.usesState(),
		loops:     rw.loops > 0,
		matches:   rw.matchers > 0,
	}
	p.pool.New = func() any {
		st := &runState{}
		st.vm.MemoryBudget = vmMemoryBudget(lim)
		st.vars.bind(lib, &st.guard, &st.keys, &st.mem, &st.regex)
		return st
	}
	return p, nil
}

// compileTree is expr.Compile with one more step between checking and optimising: the
// helper functions the rewriter calls are bound to variables at the root of the program, so
// that each call loads a VM variable instead of reading a struct field through reflection
// (closure bodies call them on every iteration).
func compileTree(source string, opts []expr.Option) (*vm.Program, *fastProgram, string, error) {
	config := conf.CreateNew()
	for _, op := range opts {
		op(config)
	}
	for name := range config.Disabled {
		delete(config.Builtins, name)
	}
	config.Check()
	tree, err := parser.ParseWithConfig(source, config)
	if err != nil {
		return nil, nil, "", err
	}
	if _, err := new(checker.Checker).PatchAndCheck(tree, config); err != nil {
		return nil, nil, "", err
	}
	used := helperUses{}
	ast.Walk(&tree.Node, used)
	for _, name := range boundNames {
		if used[name] {
			tree.Node = &ast.VariableDeclaratorNode{Name: boundVar(name), Value: &ast.IdentifierNode{Value: name}, Expr: tree.Node}
		}
	}
	if _, err := checker.Check(tree, config); err != nil {
		return nil, nil, "", err
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, nil, "", fe.Bind(tree.Source)
			}
			return nil, nil, "", err
		}
	}
	prog, err := compiler.Compile(tree, config)
	if err != nil {
		return nil, nil, "", err
	}
	fast, why := compileFast(tree.Node, config)
	return prog, fast, why, nil
}

// boundNames are the env fields compileTree binds to variables when the program uses them:
// the helpers the rewriter calls, the three variables of the contract, and the functions
// vars provides (string is called on every iteration of a loop that builds keys).
var boundNames = append([]string{"input", "env", "context", "string", "result"}, helperNames...)

// helperUses records which bound names a rewritten program uses, and points the uses at the
// variables (a variable cannot take the name of an env field). A program cannot declare a
// variable named like an env field either, so no user variable is renamed.
type helperUses map[string]bool

func (h helperUses) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok && slices.Contains(boundNames, id.Value) {
		h[id.Value] = true
		id.Value = boundVar(id.Value)
	}
}

func boundVar(name string) string {
	if strings.HasPrefix(name, helperPrefix) {
		return name + "_v"
	}
	return helperPrefix + name + "_v"
}

// FastPath reports whether runs take the fast path (see fastframe.go), and if not, the construct
// that keeps the program on expr's VM: the results are the same, only the speed differs.
func (p *Program) FastPath() (ok bool, why string) {
	return p.fast != nil, p.slow
}

// File is the name the program was compiled under.
func (p *Program) File() string { return p.file }

// Hash is the hex prefix of the SHA-256 of the source.
func (p *Program) Hash() string { return p.hash }

// UsesState reports whether the program refers to env (directly, through context.env or
// $env) or calls result; a program that does not can run in parallel with itself.
func (p *Program) UsesState() bool { return p.usesState }

// Limits returns the limits the program was compiled with.
func (p *Program) Limits() Limits { return p.lim }

func toCompileError(name, source string, err error) *CompileError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &CompileError{File: name, Message: oneLine(err.Error())}
	}
	var off int
	if fe.Line > 0 {
		off = offsetOf(source, fe.Line, fe.Column)
	} else {
		off = runeOffset(source, fe.From)
	}
	return compileErrorAt(name, source, off, fe.Message)
}

// contextFields lists context's fields for error messages.
const contextFields = "host, port, input_key, output_key, function_getmtime, last_execution, env, trigger, entry_id, function"

// ctxTypeName is how the checker names the type of context ("exprengine.ctxView").
var ctxTypeName = reflect.TypeFor[ctxView]().String()

func compileErrorAt(name, source string, off int, msg string) *CompileError {
	if strings.Contains(msg, ctxTypeName) {
		// The checker names Go types; a user knows this one as context.
		msg = strings.ReplaceAll(msg, "type "+ctxTypeName, "context")
		msg = strings.ReplaceAll(msg, ctxTypeName, "context") + " (context has: " + contextFields + ")"
	}
	line, col := codec.Position(source, off)
	return &CompileError{File: name, Line: line, Column: col, Message: oneLine(msg), Snippet: snippet(source, off)}
}

// offsetOf is the byte offset of 1-based line and 0-based rune column.
func offsetOf(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	for ; col > 0 && off < len(src) && src[off] != '\n'; col-- {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	return off
}

func runeOffset(src string, runes int) int {
	for off := range src {
		if runes == 0 {
			return off
		}
		runes--
	}
	return len(src)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// deepNesting returns the offset where src nests deeper than limit (brackets, and chains of
// prefix operators, which the parser also handles by recursion), or -1. It knows just enough
// of expr's lexical syntax (strings, comments) not to count brackets inside them.
func deepNesting(src string, limit int) int {
	depth, unary := 0, 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"', '\'':
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '`':
			for i++; i < len(src) && src[i] != '`'; i++ {
			}
		case '/':
			if i+1 < len(src) && src[i+1] == '/' {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			if i+1 < len(src) && src[i+1] == '*' {
				end := strings.Index(src[i+2:], "*/")
				if end < 0 {
					return -1
				}
				i += end + 3
				continue
			}
		case '(', '[', '{':
			depth++
			if depth+unary > limit {
				return i
			}
			unary = 0
			continue
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		case '!', '-', '+':
			if i+1 < len(src) && src[i+1] == '=' {
				break
			}
			unary++
			if depth+unary > limit {
				return i
			}
			continue
		default:
			if strings.HasPrefix(src[i:], "not") && (i+3 == len(src) || !isIdentByte(src[i+3])) && (i == 0 || !isIdentByte(src[i-1])) {
				unary++
				if depth+unary > limit {
					return i
				}
				i += 2
				continue
			}
		}
		unary = 0
	}
	return -1
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf
}

// observer records whether the program can touch the state. It runs before the rewriter, on
// the tree as written.
type observer struct {
	state    bool
	contexts []*ast.IdentifierNode
	safe     map[*ast.IdentifierNode]bool // context identifiers only used as context.<field>
}

func (o *observer) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "env", "$env", "result":
			o.state = true
		case "context":
			o.contexts = append(o.contexts, n)
		}
	case *ast.MemberNode:
		if readsContextField(n, "context") {
			o.safe[n.Node.(*ast.IdentifierNode)] = true
		}
	}
}

// readsContextField reports whether m is context.<field> for a field other than env, context
// being the identifier name: a read that reaches no part of the state.
func readsContextField(m *ast.MemberNode, name string) bool {
	id, ok := m.Node.(*ast.IdentifierNode)
	s, isField := m.Property.(*ast.StringNode)
	return ok && id.Value == name && isField && s.Value != "env"
}

func (o *observer) usesState() bool {
	if o.state {
		return true
	}
	for _, c := range o.contexts {
		if !o.safe[c] {
			return true // context used whole, or context.env, or context[expr]
		}
	}
	return false
}

// rewriter makes the limits hold and takes the hot paths off reflection. expr cannot be
// interrupted and does not count string bytes or the cost of walking shared nested arrays,
// so:
//   - every closure body b becomes tick(b), which fails once the deadline passed (closures
//     are the only way an expr program loops);
//   - a + that may join strings becomes a call that checks the length first;
//   - == and in between values that may be arrays become bounded comparisons;
//   - method calls that may return strings (time formatting) get their length checked;
//   - a[b] and a.b on maps and arrays of unknown type skip expr's reflection-based fetch;
//   - round(x, n) becomes Python's rounding.
//
// Numeric and typed scalar operations are left alone, so they keep expr's fast opcodes.
type rewriter struct {
	lib      *library
	loops    int
	matchers int           // matches operators made bounded calls
	err      *patternError // the first constant pattern matches refuses
}

func (r *rewriter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		r.loops++
		body := n.Node
		wrapped := call(tickFor(body.Type()), body)
		wrapped.SetLocation(body.Location())
		n.Node = wrapped
	case *ast.BinaryNode:
		if isNil(n.Left) || isNil(n.Right) {
			return
		}
		lt, rt := n.Left.Type().Kind(), n.Right.Type().Kind()
		switch n.Operator {
		case "+":
			if (lt == reflect.String || lt == reflect.Interface) && (rt == reflect.String || rt == reflect.Interface) {
				ast.Patch(node, call(addName, n.Left, n.Right))
			}
		case "==", "!=":
			if mayBeArray(lt) && mayBeArray(rt) {
				eq := call(eqName, n.Left, n.Right)
				if n.Operator == "==" {
					ast.Patch(node, eq)
				} else {
					eq.SetLocation(n.Location())
					ast.Patch(node, &ast.UnaryNode{Operator: "!", Node: eq})
				}
			}
		case "in":
			if (mayBeArray(lt) && mayBeArray(rt)) || (rt == reflect.Interface && lt == reflect.String) {
				ast.Patch(node, call(inName, n.Left, n.Right))
			}
		case "matches":
			r.matches(node, n)
		}
	case *ast.MemberNode:
		if n.Optional || n.Method {
			return
		}
		if t := n.Node.Type(); t.Kind() == reflect.Interface || t == mapType || t == sliceType {
			ast.Patch(node, call(getName, n.Node, n.Property))
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "round" {
			args := make([]reflect.Type, len(n.Arguments))
			for i, a := range n.Arguments {
				args[i] = a.Type()
			}
			if _, err := validateRound(args); err != nil {
				return // left for the checker to report
			}
			if len(n.Arguments) == 2 {
				ast.Patch(node, call(roundName, n.Arguments...))
			} else {
				ast.Patch(node, &ast.BuiltinNode{Name: "round", Arguments: n.Arguments})
			}
			return
		}
		if _, ok := n.Callee.(*ast.MemberNode); ok {
			switch n.Type().Kind() {
			case reflect.String:
				ast.Patch(node, call(strName, n))
			case reflect.Interface:
				ast.Patch(node, call(strAnyName, n))
			}
		}
	}
}

type untypeCalls struct{}

func (untypeCalls) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.CallNode); ok {
		n.SetNature(nature.Nature{})
	}
}

// tickFor picks the tick whose type matches the body's, so that a body keeps its static
// type: filter still sees a bool predicate, and type errors stay as precise as without the
// rewrite.
func tickFor(t reflect.Type) string {
	switch t {
	case boolType:
		return tickBoolName
	case intType:
		return tickIntName
	case floatType:
		return tickFloatName
	case stringType:
		return tickStrName
	}
	return tickName
}

func call(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: args}
}

func isNil(n ast.Node) bool {
	_, ok := n.(*ast.NilNode)
	return ok
}

func mayBeArray(k reflect.Kind) bool {
	return k == reflect.Interface || k == reflect.Slice || k == reflect.Array
}
