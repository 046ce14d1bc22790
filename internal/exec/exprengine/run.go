package exprengine

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/eventrt/eventrt/internal/quote"
)

// runState is what one run needs besides the program; pooled per Program.
type runState struct {
	vm    vm.VM
	vars  vars
	ctx   ctxView
	guard guard
	keys  keyCache // the keys the program builds (keys.go)
	enc   codec.Encoder
	spans []codec.Span
	frame frame
	// envOwned: the caller handed vars.Env over (Call.EnvOwned); see inPlaceEnvMerges.
	envOwned bool
	bufs     *exec.Buffers // Call.Buffers
	input    inputDecoder  // for json.RawMessage inputs
	mem      runBudget     // the run's byte budget (budget.go)
	regex    regexCache    // dynamic patterns compiled by this state's runs (regex.go)
}

// Run executes the program once; it changes call.Env only when call.EnvOwned. A failure is an
// [*exec.Error]: kind handler (the program failed, or broke the memory budget or the string limit),
// timeout (still running at the deadline), or output (the output or env cannot be encoded, or
// is too large). A failed run has no effect: the caller writes nothing and keeps the state.
func (p *Program) Run(call exec.Call) (res exec.Result, err error) {
	timeout := p.lim.Timeout
	if !call.Deadline.IsZero() {
		timeout = time.Until(call.Deadline)
		if timeout <= 0 {
			return exec.Result{}, &exec.Error{Kind: exec.KindTimeout, Err: fmt.Errorf("%s: deadline passed before the run started: %w", p.file, ErrDeadline)}
		}
	}
	env := call.Env
	if env == nil {
		env = map[string]any{}
	}
	st := p.pool.Get().(*runState)
	defer func() {
		// The VM recovers panics inside the program; this covers encoding, so that no
		// value a program returns can take the process down: a panic here is eventrt's bug.
		if r := recover(); r != nil {
			bug := &exec.PanicError{Value: r, Stack: debug.Stack()}
			res, err = exec.Result{}, &exec.Error{Kind: exec.KindInternal, Err: fmt.Errorf("%s: internal error handling the program's value: %w", p.file, bug)}
		}
	}()
	input := call.Input
	if raw, ok := input.(json.RawMessage); ok {
		if input, err = st.input.decode(raw, p.fast != nil); err != nil {
			p.pool.Put(st)
			return exec.Result{}, err
		}
	}
	st.vars.Input, st.vars.Env, st.vars.Context = input, env, &st.ctx
	st.envOwned = call.EnvOwned && call.Env != nil
	st.bufs = call.Buffers
	st.ctx.set(call.Context, env)
	if p.matches {
		st.regex.deadline = time.Now().Add(timeout)
	}
	if p.loops {
		st.guard.arm(timeout)
	}
	out, rerr := p.eval(st)
	if p.loops {
		st.guard.disarm()
	}
	if rerr != nil {
		// The VM may still reference this run's values (scopes, stack); let it go.
		err := p.runError(rerr, timeout)
		if exec.IsMemory(err) {
			// The run left up to its budget of garbage: collected now, it cannot stack up
			// with the next run's (which may be the same hostile input again).
			runtime.GC()
		}
		return exec.Result{}, err
	}
	// Encoding comes before the state is reset: the value may be the context itself.
	res, err = p.result(st, out, call.EnvOnly)
	// Drop references into this run's data so the pool does not keep them alive.
	st.vars.Input, st.vars.Env, st.vars.Context = nil, nil, nil
	st.envOwned, st.bufs = false, nil
	st.input.doc.reset()
	st.ctx = ctxView{}
	clear(st.vm.Variables)
	st.enc.Reset("", 0, false)
	st.enc.Trim(maxKeptEncoding) // one large output should not pin its buffer in the pool
	p.pool.Put(st)
	return res, err
}

// fastCheck, when set, gets every value the fast path produced, with the VM's value or error
// for the same run. This package's tests set it (fast_test.go) so that every program they
// run checks the fast path against the VM; it is nil otherwise.
var fastCheck func(p *Program, fast, vm any, vmErr error)

// eval runs the program on the fast path, or on the VM when the fast path cannot (see
// fastframe.go).
func (p *Program) eval(st *runState) (any, error) {
	st.mem.reset(p.lim.MaxRunBytes)
	fp := p.fast
	if fp == nil {
		p.fellBack(fallbackUnsupported)
		return p.vmRun(st)
	}
	n := fp.bails.Load()
	if n >= maxFastBails && n%fastProbe != 0 {
		fp.bails.Add(1)
		p.fellBack(fallbackBackoff)
		return p.vmRun(st)
	}
	var before map[string]any
	if fastCheck != nil && st.envOwned {
		before = maps.Clone(st.vars.Env) // the VM's check runs on the env as given
	}
	out, reason, bug := fp.run(st, vmMemoryBudget(p.lim))
	if reason == fallbackNone {
		if n != 0 {
			fp.bails.Store(0)
		}
		if fastCheck != nil {
			if before != nil {
				st.vars.Env, st.ctx.Env = before, before
			}
			st.mem.reset(p.lim.MaxRunBytes)
			v, err := p.vmRun(st)
			fastCheck(p, out, v, err)
		}
		return out, nil
	}
	fp.bails.Add(1)
	if reason == fallbackBudget || st.mem.exceeded {
		// The fast path stopped at a budget, and the VM is about to allocate as much again
		// to report the error where it happens: collect the fast path's garbage first, so
		// that a run never holds twice its budget.
		runtime.GC()
	}
	st.mem.reset(p.lim.MaxRunBytes) // what the fast path charged was not kept
	v, err := p.vmRun(st)
	if bug != nil && err == nil {
		// The VM ran what the fast path panicked on: the panic was the fast path's bug.
		return nil, &exec.Error{Kind: exec.KindInternal, Err: fmt.Errorf("%s: fast path: %w", p.file, bug)}
	}
	p.fellBack(reason)
	return v, err
}

func (p *Program) vmRun(st *runState) (any, error) {
	st.vmInput()
	return st.vm.Run(p.prog, &st.vars)
}

// vmInput gives the VM the input as a map where the fast path had a document.
func (st *runState) vmInput() {
	if d, ok := st.vars.Input.(*document); ok {
		st.vars.Input = d.asMap()
	}
}

func (p *Program) runError(err error, timeout time.Duration) error {
	if exec.KindOf(err) == exec.KindInternal {
		return err
	}
	var fe *file.Error
	if !errors.As(err, &fe) {
		kind := exec.KindHandler
		if errors.Is(err, ErrHandlerMemory) || errors.Is(err, ErrMemoryBudget) {
			kind = exec.KindMemory
		}
		return &exec.Error{Kind: kind, Err: fmt.Errorf("%s: %w", p.file, err)}
	}
	re := &RuntimeError{File: p.file, Line: fe.Line, Column: fe.Column + 1, Message: quote.Text(oneLine(fe.Message)), Err: fe.Unwrap()}
	if re.Line == 0 {
		re.Line = 1
	}
	kind := exec.KindHandler
	switch {
	case errors.Is(re.Err, ErrDeadline):
		kind = exec.KindTimeout
		re.Message = fmt.Sprintf("still running at the deadline (%s): stopped", timeout)
	case errors.Is(re.Err, ErrHandlerMemory) || errors.Is(re.Err, ErrMemoryBudget):
		kind = exec.KindMemory
	case errors.Is(re.Err, ErrRegexCost):
		kind = exec.KindTimeout
	case re.Err == nil && fe.Message == "memory budget exceeded":
		// expr panics with a plain string here.
		kind = exec.KindMemory
		re.Err = ErrMemoryBudget
		re.Message = fmt.Sprintf("memory budget of %d collection elements exceeded", vmMemoryBudget(p.lim))
	}
	return &exec.Error{Kind: kind, Err: re}
}

// result turns the program's value into a Result: result(output, env) or a plain output.
func (p *Program) result(st *runState, out any, envOnly bool) (exec.Result, error) {
	var res exec.Result
	if rv, ok := out.(*resultValue); ok {
		out = rv.output
		env, fields, err := p.encodeEnv(st, rv.env, envOnly, rv.ownEnv)
		if err != nil {
			return exec.Result{}, &exec.Error{Kind: exec.KindOutput, Err: err}
		}
		res.StateSet, res.Env, res.EnvFields = true, env, fields
	}
	if out == nil {
		return res, nil
	}
	st.enc.Reset("output", p.lim.MaxOutputBytes, false)
	if err := st.enc.Encode(out); err != nil {
		return exec.Result{}, &exec.Error{Kind: exec.KindOutput, Err: err}
	}
	res.Output = st.bufs.Keep(st.enc.Bytes())
	res.Value = out
	return res, nil
}

// encodeEnv encodes every value of the new env (one field each, MaxOutputBytes in total) and
// returns the env normalised to what decoding those fields gives. With envOnly the fields are
// encoded (that is the check) but not returned.
func (p *Program) encodeEnv(st *runState, v any, envOnly, own bool) (map[string]any, exec.Fields, error) {
	e := &st.enc
	e.Reset("env", p.lim.MaxOutputBytes, false)
	m, _, err := codec.StringMap(v) // v itself, or a copy when it is another kind of map
	if err != nil {
		return nil, nil, &codec.OutputError{Path: "env", Message: err.Error()}
	}
	if envOnly {
		if env, ok := p.scalarEnv(m, own); ok {
			return env, nil, nil
		}
	}
	spans, err := e.AppendFields(m, st.spans[:0])
	defer func() {
		clear(spans)
		st.spans = spans[:0]
	}()
	if err != nil {
		return nil, nil, err
	}
	keep := true
	for _, s := range spans {
		keep = keep && s.Canonical
	}
	var fields exec.Fields
	buf := e.Bytes() // until the next encoding with this run state, which is after the last use
	if !envOnly {
		buf = st.bufs.Keep(buf)
		fields = exec.AppendSpans(st.bufs.Fields(len(spans)), buf, spans)
	}
	if keep {
		return m, fields, nil
	}
	// Cloning copies the table wholesale; only the values that do not survive a round trip
	// (typically a float that happens to be integral) are replaced.
	env := m
	if !own {
		env = maps.Clone(m)
	}
	for _, s := range spans {
		if s.Canonical {
			continue
		}
		if f, ok := m[s.Key].(float64); ok && math.Abs(f) <= 1<<53 {
			// What decoding its encoding gives: canonical says it is integral, the encoder
			// writes such a float without a fraction, and up to 2^53 the shortest decimal of
			// an integral float is its exact value. Beyond, it may be another integer
			// (18017000000000008 is written 18017000000000010): that one is decoded below.
			env[s.Key] = int(f)
			continue
		}
		val, err := codec.Decode(buf[s.Start:s.End])
		if err != nil { // cannot happen: the encoder wrote valid JSON
			return nil, nil, &codec.OutputError{Path: "env[" + quote.Value(s.Key) + "]", Message: err.Error(), Err: err}
		}
		env[s.Key] = val
	}
	return env, fields, nil
}

// scalarEnv is encodeEnv's check without the encoding, for an env of scalars whose encoding
// cannot reach the size limit (the common state of a stream batch's runs but its last, whose
// fields nobody reads): every such value encodes, except a NaN or infinite float, and what
// decoding its encoding gives is known without making it. It returns the normalised env, or
// false when the values need the encoder (to check them, or to report an error).
func (p *Program) scalarEnv(m map[string]any, own bool) (map[string]any, bool) {
	// Upper bounds of the encoded sizes: a float64 takes at most 24 bytes
	// (-2.2250738585072014e-308), an int 20, a string 6 per byte (\u00XX) and its quotes.
	size, keep := 0, true
	for _, v := range m {
		switch x := v.(type) {
		case nil, bool:
			size += 5
		case int:
			size += 20
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, false
			}
			if !codec.Canonical(x) && math.Abs(x) > 1<<53 {
				return nil, false // see encodeEnv: the encoding decides what it decodes to
			}
			size += 24
			keep = keep && codec.Canonical(x)
		case string:
			size += 6*len(x) + 2
		default:
			return nil, false
		}
	}
	if size > p.lim.MaxOutputBytes {
		return nil, false
	}
	if keep {
		return m, true
	}
	env := m
	if !own {
		env = maps.Clone(m)
	}
	for k, v := range m {
		if f, ok := v.(float64); ok && !codec.Canonical(f) {
			env[k] = int(f) // what decoding an integral float's encoding gives, as in encodeEnv
		}
	}
	return env, true
}

// maxKeptEncoding is the most memory a pooled run state's encoder keeps across runs.
const maxKeptEncoding = 1 << 16
