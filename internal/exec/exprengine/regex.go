package exprengine

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
)

// Regular expressions within the deadline and the byte budget. Go's regexp runs in time
// linear in the input, but the factor is the compiled program's size, and neither compiling
// nor matching can be interrupted: a 7,000-instruction pattern over a 1 MB string runs for
// minutes, and a pattern with many groups takes gigabytes to compile and run. So before a
// match (the only regex operation expr offers):
//
//   - the pattern's source is at most Limits.MaxRegexBytes;
//   - it is parsed and compiled to a program (cheap and linear), whose instructions (insts)
//     and capture groups give the memory regexp will take, insts × (64 + 16 × (groups+1))
//     bytes (twice what was measured), charged to the run's byte budget before regexp
//     compiles it;
//   - the match's work, insts × (input bytes + 1) steps at regexNsPerStep each, must fit in
//     the time the run has left; otherwise the match is refused (ErrRegexCost, kind timeout)
//     without starting.
//
// Constant patterns are checked and compiled once, at compile time; dynamic ones are cached
// per pooled run state.

// regexNsPerStep is the cost of one step of regexp's matching (one instruction × one input
// byte), in wall-clock time, measured on the project's 2-vCPU machine under the load of other
// builds (load average 11-13, 2026-12-07): 9.6-47 ns for most patterns, 63 ns for the worst
// seen (a{1000}b; \w* and [^b]* repeated reached 47). The bound takes 80 for a margin, so
// a match the bound lets start ends before the deadline even on a loaded machine.
const regexNsPerStep = 80

// compiledRegex is a pattern ready to match, with its size.
type compiledRegex struct {
	re    *regexp.Regexp
	insts int
	mem   int // estimated bytes regexp takes for it
}

// patternError is a constant pattern matches refuses at compile time.
type patternError struct {
	node ast.Node
	err  error
}

func (e *patternError) compileError(name, source string) *CompileError {
	loc := e.node.Location()
	fe := &file.Error{Location: loc, Message: e.err.Error()}
	return toCompileError(name, source, fe.Bind(file.NewSource(source)))
}

// matches rewrites a matches b into a call of the bounded matcher. A constant pattern is
// checked and compiled now: one that regexp refuses is left for expr's compiler to report
// (with its message); one too large for the limits is a compile error.
func (r *rewriter) matches(node *ast.Node, n *ast.BinaryNode) {
	if s, ok := n.Right.(*ast.StringNode); ok {
		c, err := r.lib.prepareRegex(s.Value)
		var serr *syntax.Error
		switch {
		case errors.As(err, &serr):
			return
		case err != nil:
			if r.err == nil {
				r.err = &patternError{node: n, err: err}
			}
			return
		}
		if c.mem > r.lib.lim.MaxRunBytes {
			if r.err == nil {
				r.err = &patternError{node: n, err: fmt.Errorf("pattern needs about %d bytes to compile and run, more than the memory budget of %d", c.mem, r.lib.lim.MaxRunBytes)}
			}
			return
		}
		if c.re, err = regexp.Compile(s.Value); err != nil {
			return
		}
		r.lib.regex[s.Value] = c
	}
	ast.Patch(node, call(matchName, n.Left, n.Right))
	r.matchers++
}

// prepareRegex checks the pattern's size and compiles it to a program to size it, without
// compiling the regexp itself.
func (l *library) prepareRegex(pattern string) (*compiledRegex, error) {
	if len(pattern) > l.lim.MaxRegexBytes {
		return nil, fmt.Errorf("matches: pattern of %d bytes exceeds the limit of %d: %w", len(pattern), l.lim.MaxRegexBytes, ErrRegexCost)
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, err
	}
	groups := re.MaxCap()
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	insts := len(prog.Inst)
	return &compiledRegex{insts: insts, mem: mulBytes(insts, 64+16*(groups+1))}, nil
}

// regexCache holds the dynamic patterns a pooled run state compiled, so that a loop matching
// against the same pattern compiles it once per run state, not once per iteration. The
// budget is charged for a pattern when it is compiled; the cache keeps at most
// maxCachedRegexBytes of the estimated memory of its patterns.
type regexCache struct {
	m        map[string]*compiledRegex
	mem      int
	deadline time.Time // the run's, set by Run
}

const (
	maxCachedPatterns   = 64
	maxCachedRegexBytes = 4 << 20
)

// match is a matches pattern, bounded: see the top of this file.
func (c *regexCache) match(l *library, b *runBudget, a, p any) bool {
	if a == nil || p == nil {
		return false
	}
	s, ok1 := a.(string)
	pattern, ok2 := p.(string)
	if !ok1 || !ok2 {
		panic(fmt.Errorf("matches: operands are %s and %s, not strings", typeName(a), typeName(p)))
	}
	re := l.regex[pattern]
	if re == nil {
		re = c.m[pattern]
	}
	if re == nil {
		var err error
		if re, err = l.prepareRegex(pattern); err != nil {
			panic(err)
		}
		workFits(re, s, c.deadline)
		b.charge("matches: compiling the pattern", re.mem)
		if re.re, err = regexp.Compile(pattern); err != nil {
			panic(err)
		}
		if re.mem <= maxCachedRegexBytes/8 {
			if c.m == nil || len(c.m) >= maxCachedPatterns || c.mem+re.mem > maxCachedRegexBytes {
				c.m, c.mem = map[string]*compiledRegex{}, 0
			}
			c.m[pattern], c.mem = re, c.mem+re.mem
		}
	}
	workFits(re, s, c.deadline)
	return re.re.MatchString(s)
}

// workFits refuses a match whose estimated work does not fit in the time left.
func workFits(re *compiledRegex, s string, deadline time.Time) {
	steps := mulBytes(re.insts, len(s)+1)
	need := time.Duration(mulBytes(steps, regexNsPerStep))
	if left := time.Until(deadline); steps < 0 || need < 0 || need > left {
		panic(fmt.Errorf("matches: a pattern of %d instructions over %d bytes is %d steps, about %s at %d ns a step, more than the %s left before the deadline: %w",
			re.insts, len(s), steps, need.Round(time.Millisecond), regexNsPerStep, max(left, 0).Round(time.Millisecond), ErrRegexCost))
	}
}
