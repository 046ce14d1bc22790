package exprengine

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
)

// vars is the environment a program runs against. A struct (rather than a map) gives the
// checker the types of input, env and context, and costs no allocation per run: one is
// pooled with each VM. It must have no exported methods, which expr would expose as
// functions.
//
// The function fields are bound once per pooled state. Functions reached through typed env
// fields are called by expr's OpCallTyped, which passes arguments on the VM stack; functions
// registered with expr.Function get a fresh argument slice for every call inside a loop.
type vars struct {
	Input   any            `expr:"input"`
	Env     map[string]any `expr:"env"`
	Context *ctxView       `expr:"context"`

	Result func(any, any) any `expr:"result"`
	String func(any) any      `expr:"string"`

	// Only code inserted by the rewriter calls these; the names are not meant for users.
	Tick      func(any) any         `expr:"__eventrt_tick"`
	TickBool  func(bool) bool       `expr:"__eventrt_tick_bool"`
	TickInt   func(int) int         `expr:"__eventrt_tick_int"`
	TickFloat func(float64) float64 `expr:"__eventrt_tick_float"`
	TickStr   func(string) string   `expr:"__eventrt_tick_string"`
	Add       func(any, any) any    `expr:"__eventrt_add"`
	Eq        func(any, any) bool   `expr:"__eventrt_eq"`
	In        func(any, any) bool   `expr:"__eventrt_in"`
	Get       func(any, any) any    `expr:"__eventrt_get"`
	Round     func(any, any) any    `expr:"__eventrt_round"`
	Str       func(string) string   `expr:"__eventrt_str"`
	StrAny    func(any) any         `expr:"__eventrt_str_any"`
	Match     func(any, any) bool   `expr:"__eventrt_matches"`
	// Mem is the run's byte budget, the hidden last argument of the budgeted functions.
	Mem memRef `expr:"__eventrt_mem"`
}

// Names of the fields above that the rewriter calls.
const (
	helperPrefix  = "__eventrt_"
	tickName      = "__eventrt_tick"
	tickBoolName  = "__eventrt_tick_bool"
	tickIntName   = "__eventrt_tick_int"
	tickFloatName = "__eventrt_tick_float"
	tickStrName   = "__eventrt_tick_string"
	addName       = "__eventrt_add"
	eqName        = "__eventrt_eq"
	inName        = "__eventrt_in"
	getName       = "__eventrt_get"
	roundName     = "__eventrt_round"
	strName       = "__eventrt_str"
	strAnyName    = "__eventrt_str_any"
	matchName     = "__eventrt_matches"
	memName       = "__eventrt_mem"
)

var helperNames = []string{tickName, tickBoolName, tickIntName, tickFloatName, tickStrName,
	addName, eqName, inName, getName, roundName, strName, strAnyName, matchName, memName}

// bind sets the function fields: the library's for this program, ticks reading g, and the
// string functions using the run state's key cache k, the budget b and the regex cache r.
func (v *vars) bind(l *library, g *guard, k *keyCache, b *runBudget, r *regexCache) {
	k.lib, k.mem = l, b
	v.Result = result
	v.String = k.toString
	v.Tick = func(x any) any { g.check(); return x }
	v.TickBool = func(x bool) bool { g.check(); return x }
	v.TickInt = func(x int) int { g.check(); return x }
	v.TickFloat = func(x float64) float64 { g.check(); return x }
	v.TickStr = func(x string) string { g.check(); return x }
	v.Add = k.add
	v.Eq = l.eq
	v.In = l.in
	v.Get = get
	v.Round = roundTo
	v.Str = func(s string) string { b.charge("method call", len(s)); return l.checkString(s) }
	v.StrAny = func(x any) any {
		if s, ok := x.(string); ok {
			b.charge("method call", len(s))
		}
		return l.checkAny(x)
	}
	v.Match = func(s, pattern any) bool { return r.match(l, b, s, pattern) }
	v.Mem = memRef{b}
}

// ctxView is `context` as a program sees it, with the course runtime's field names.
type ctxView struct {
	Host             string         `expr:"host"`
	Port             int            `expr:"port"`
	InputKey         string         `expr:"input_key"`
	OutputKey        string         `expr:"output_key"`
	FunctionGetmtime string         `expr:"function_getmtime"`
	LastExecution    any            `expr:"last_execution"` // nil or time.Time
	Env              map[string]any `expr:"env"`
	Trigger          string         `expr:"trigger"`
	EntryID          string         `expr:"entry_id"`
	Function         string         `expr:"function"`
}

func (c *ctxView) set(x exec.Context, env map[string]any) {
	*c = ctxView{
		Host:             x.Host,
		Port:             x.Port,
		InputKey:         x.InputKey,
		OutputKey:        x.OutputKey,
		FunctionGetmtime: x.FunctionGetmtime,
		Env:              env,
		Trigger:          x.Trigger,
		EntryID:          x.EntryID,
		Function:         x.Function,
	}
	if x.LastExecution != nil {
		c.LastExecution = *x.LastExecution
	}
}

// asMap is the context as a value, when a program returns or encodes it whole.
// JSONValue encodes context as its fields.
func (c *ctxView) JSONValue() (any, error) { return c.asMap(), nil }

func (c *ctxView) asMap() map[string]any {
	return map[string]any{
		"host":              c.Host,
		"port":              c.Port,
		"input_key":         c.InputKey,
		"output_key":        c.OutputKey,
		"function_getmtime": c.FunctionGetmtime,
		"last_execution":    c.LastExecution,
		"env":               c.Env,
		"trigger":           c.Trigger,
		"entry_id":          c.EntryID,
		"function":          c.Function,
	}
}

// resultValue is what result(output, env) returns: a marker Run recognises as the final
// value.
type resultValue struct {
	output any
	env    any
	// ownEnv: env is a map this run made for this call alone (the fast path knows when the
	// argument is a merge call), so normalising it may change it in place instead of copying.
	ownEnv bool
}

// errNested is what encoding a result(...) that is not the final value gives.
var errNested = errors.New("result(output, env) must be the program's final value, not part of a value")

// JSONValue refuses: only Run unwraps a result(...), which must be the program's value.
func (*resultValue) JSONValue() (any, error) { return nil, errNested }

// guard carries one run's deadline to the rewritten closure bodies. The flag is set by a
// timer rather than read from the clock on every call: a closure body may run millions of
// times, and an atomic load is far cheaper than time.Now. Each guard lives in a pooled run
// state and re-arms its timer for every run.
type guard struct {
	expired *atomic.Bool
	timer   *time.Timer
}

// arm starts the countdown for one run.
func (g *guard) arm(d time.Duration) {
	if g.timer == nil {
		flag := new(atomic.Bool)
		g.expired = flag
		g.timer = time.AfterFunc(d, func() { flag.Store(true) })
		return
	}
	g.timer.Reset(d)
}

// disarm stops the countdown. When the timer has already fired (or is firing) its callback
// may still be about to store into the flag, so the pair is dropped and the next run gets a
// fresh one instead of racing with it.
func (g *guard) disarm() {
	if g.timer == nil {
		return
	}
	if !g.timer.Stop() {
		g.timer = nil
		g.expired = nil
	}
}

// check is called at the start of every closure call: it stops the run (expr turns the panic
// into an error) once the deadline has passed.
func (g *guard) check() {
	if g.expired != nil && g.expired.Load() {
		panic(ErrDeadline)
	}
}
