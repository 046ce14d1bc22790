// Package cli owns eventrt's offline commands, which work on a handler without Redis:
// `eventrt check` compiles every function (or imports a Python handler), `eventrt eval` runs
// one function once, and `eventrt test` runs the test cases shipped beside it. The commands are
// engine-independent: an expr bundle and a Python handler (run by internal/exec/pyengine) both
// become a subject whose runs go through exec.Handler, so eval prints and test diffs the same
// way for both. Each command parses its own flags, writes its report to stdout and its
// diagnostics to stderr, and returns the process exit status (ExitOK, ExitFail, ExitUsage), so
// cmd/eventrt only dispatches.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/pyengine"
)

// Exit statuses of the commands.
const (
	ExitOK    = 0 // everything compiled, ran or passed
	ExitFail  = 1 // a function failed to compile or run, a case failed, the bundle is broken
	ExitUsage = 2 // the command line is wrong; the usage was printed
)

// Defaults of the context a function sees in eval and test, the daemon's own defaults.
const (
	DefaultHost      = "localhost"
	DefaultPort      = 6379
	DefaultInputKey  = "metrics"
	DefaultOutputKey = "output"
	DefaultTrigger   = "keyspace"
	// mtimeLayout is how the course runtime formatted function_getmtime.
	mtimeLayout = "2006-01-02 15:04:05"
)

// docsHint points newcomers at the reference of the formats the commands read.
const docsHint = "Bundle layout, manifest and test-case format: docs/bundles.md."

// pathHelp describes PATH, the same for every command.
const pathHelp = `PATH is a program file (handler.expr), a directory of functions
(<module>/<function>.expr, <module>.expr), a .zip of such a directory, or an
https:// URL of a zip. A Python handler is a .py file (function
<stem>.handler), a directory or .zip holding Python modules and no .expr
programs (function handler_module.handler, or <module>.handler when it holds a
single module), or, with --runtime python, a file without the .py suffix
(function handler_module.handler, as the custom course runtime's
/app/pyfile/pyfile). --function names another. These are the names the daemon
gives the same handler. It runs in a python3 worker, as in the daemon.`

// command holds what every command shares: its flag set and how it loads a bundle.
type command struct {
	name   string
	fs     *flag.FlagSet
	stdout io.Writer
	stderr io.Writer

	sha256    string
	allowHTTP bool
	timeout   time.Duration
	runtime   runtimeFlag
	python    string
}

func newCommand(name, usage string, stdout, stderr io.Writer) *command {
	// A Python worker's print() output reaches stderr from the engine's goroutines while the
	// command writes its own diagnostics there.
	stderr = &syncWriter{w: stderr}
	c := &command{name: name, stdout: stdout, stderr: stderr, fs: flag.NewFlagSet("eventrt "+name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", strings.TrimSpace(usage))
		c.fs.PrintDefaults()
		fmt.Fprintf(stderr, "\n%s\n", docsHint)
	}
	c.fs.StringVar(&c.sha256, "sha256", "", "refuse a zip archive whose SHA-256 (hex, as sha256sum prints it) differs")
	c.fs.BoolVar(&c.allowHTTP, "allow-http", false, "allow a plain http:// URL for PATH (https is the default)")
	c.fs.Var(&c.runtime, "runtime", "handler `engine`, expr or python (HANDLER_RUNTIME); default: from the files (.py: python)")
	c.fs.StringVar(&c.python, "python", pyengine.DefaultPython, "`interpreter` of Python handlers (PYTHON)")
	return c
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (c *command) addTimeout() {
	c.fs.DurationVar(&c.timeout, "timeout", exprengine.DefaultTimeout, "deadline of one run (HANDLER_TIMEOUT)")
}

// parse parses flags placed before or after the positional arguments, which Go's flag
// package alone does not, and returns the positional arguments. ok is false when the
// command must stop with status.
func (c *command) parse(args []string) (pos []string, status int, ok bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, ExitOK, false
			}
			return nil, ExitUsage, false
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError prints a one-line problem and the usage.
func (c *command) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "eventrt %s: %s\n\n", c.name, fmt.Sprintf(format, args...))
	c.fs.Usage()
	return ExitUsage
}

// fail prints a problem that is not a usage error.
func (c *command) fail(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "eventrt %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return ExitFail
}

func (c *command) limits() exprengine.Limits {
	lim := exprengine.DefaultLimits()
	if c.timeout > 0 {
		lim.Timeout = c.timeout
	}
	return lim
}

// load reads the bundle at path, a file system path or a URL.
func (c *command) load(path string) (*bundle.Bundle, error) {
	src := bundle.Source{SHA256: c.sha256, AllowHTTP: c.allowHTTP}
	if strings.HasPrefix(path, "https://") || strings.HasPrefix(path, "http://") {
		src.URL = path
	} else {
		src.Path = path
	}
	return bundle.Load(context.Background(), src)
}

// loadExpr loads the bundle at path for the expr engine: one of Python modules is refused
// (only --runtime expr brings one here).
func (c *command) loadExpr(path string) (*bundle.Bundle, error) {
	b, err := c.load(path)
	if err == nil && b.Runtime == bundle.RuntimePython {
		return nil, fmt.Errorf("%s holds Python modules and no .expr programs; run it without --runtime expr", b.Origin)
	}
	return b, err
}

// loadFunctions loads the bundle at path and selects the named function, or all of them when
// function is empty.
func (c *command) loadFunctions(path, function string) (*bundle.Bundle, []*bundle.Function, error) {
	b, err := c.loadExpr(path)
	if err != nil {
		return nil, nil, err
	}
	if function == "" {
		return b, b.Functions, nil
	}
	fn, err := namedFunction(b, function)
	if err != nil {
		return nil, nil, err
	}
	return b, []*bundle.Function{fn}, nil
}

// namedFunction returns the function called name. A single program file answers to any
// name, and takes it, as the daemon does with HANDLER_FUNCTION: reports and context.function
// then use the name the daemon's logs and metrics use.
func namedFunction(b *bundle.Bundle, name string) (*bundle.Function, error) {
	fn, err := b.Function(name)
	if err != nil || fn.Name == name {
		return fn, err
	}
	named := *fn
	named.Name = name
	return &named, nil
}

// describe renders an error for a terminal: a compile or run error of a function gets the
// path a user can open (bundle.Path) and the offending line.
func describe(b *bundle.Bundle, err error) string {
	var ce *exprengine.CompileError
	if errors.As(err, &ce) {
		c := *ce
		c.File = b.Path(ce.File)
		return c.Error()
	}
	var re *exprengine.RuntimeError
	if errors.As(err, &re) {
		kind := exec.KindOf(err)
		r := *re
		r.File = b.Path(re.File)
		if kind != "" {
			return fmt.Sprintf("%s error: %s", kind, r.Error())
		}
		return r.Error()
	}
	return err.Error()
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// baseContext is the context of a run before the manifest's keys and the overrides of a case
// or of the command line: the daemon's defaults.
func baseContext(name string, modTime time.Time) exec.Context {
	return exec.Context{
		Host: DefaultHost, Port: DefaultPort, InputKey: DefaultInputKey, OutputKey: DefaultOutputKey,
		FunctionGetmtime: modTime.Local().Format(mtimeLayout),
		Trigger:          DefaultTrigger,
		Function:         name,
	}
}

// exprContext is the base context of fn: the daemon's defaults, then the manifest's keys for
// the function if it has one.
func exprContext(b *bundle.Bundle, fn *bundle.Function) exec.Context {
	c := baseContext(fn.Name, fn.ModTime)
	if b.Manifest != nil {
		for _, s := range b.Manifest.Functions {
			if s.Name == fn.Name {
				c.InputKey, c.OutputKey = s.InputKey, s.OutputKey
				if s.InputMode == bundle.InputStream {
					c.Trigger = "stream"
				}
			}
		}
	}
	return c
}

// withSpec applies the overrides of spec to c.
func withSpec(c exec.Context, spec bundle.ContextSpec) (exec.Context, error) {
	if err := spec.Validate(); err != nil {
		return exec.Context{}, err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Host, spec.Host)
	set(&c.InputKey, spec.InputKey)
	set(&c.OutputKey, spec.OutputKey)
	set(&c.FunctionGetmtime, spec.FunctionGetmtime)
	set(&c.Trigger, spec.Trigger)
	set(&c.EntryID, spec.EntryID)
	if spec.Port != 0 {
		c.Port = spec.Port
	}
	if spec.LastExecution != "" {
		t, _ := time.Parse(time.RFC3339Nano, spec.LastExecution) // checked by Validate
		c.LastExecution = &t
	}
	return c, nil
}

// envFields turns an env given as a JSON object into the state hash's fields.
func envFields(env map[string]json.RawMessage) map[string]string {
	f := make(map[string]string, len(env))
	for k, v := range env {
		f[k] = string(v)
	}
	return f
}

// outcome is one run: the output and the env after, as JSON, or the error.
type outcome struct {
	output json.RawMessage            // nil: no output
	env    map[string]json.RawMessage // the env after the run
	err    error
}

// subject is one function as eval and test run it, whatever its engine.
type subject struct {
	name string // module.function
	// base is the context of its runs before the overrides of a case or the command line.
	base exec.Context
	// open returns the handler for one run and what releases it after the run.
	open func() (exec.Handler, func(), error)
	// describe renders an error of open or of a run for a terminal, naming the user's files.
	describe func(error) string
}

// exprSubject is fn of b, compiled as prog.
func exprSubject(b *bundle.Bundle, fn *bundle.Function, prog *exprengine.Program) subject {
	return subject{
		name: fn.Name,
		base: exprContext(b, fn),
		open: func() (exec.Handler, func(), error) { return prog, func() {}, nil },
		// A run's error positions are in the compiled source, shared files included.
		describe: func(err error) string { return describe(b, fn.Locate(err)) },
	}
}

// run executes the subject once the way the daemon does: decode the input and the env fields,
// run, take the new env if the handler set one, else keep the old one.
func (s subject) run(input []byte, env map[string]json.RawMessage, spec bundle.ContextSpec) outcome {
	ctx, err := withSpec(s.base, spec)
	if err != nil {
		return outcome{err: err}
	}
	fields := envFields(env)
	in, err := exec.DecodeInput(input)
	if err != nil {
		return outcome{err: err}
	}
	decoded, err := exec.DecodeEnv(fields)
	if err != nil {
		return outcome{err: fmt.Errorf("env: %w", err)}
	}
	h, release, err := s.open()
	if err != nil {
		return outcome{err: err}
	}
	defer release()
	res, err := h.Run(exec.Call{Input: in, Env: decoded, Context: ctx})
	if err != nil {
		return outcome{err: err}
	}
	o := outcome{output: res.Output, env: env}
	if res.StateSet {
		o.env = make(map[string]json.RawMessage, len(res.EnvFields))
		for _, f := range res.EnvFields {
			o.env[f.Key] = f.Value
		}
	}
	if o.env == nil {
		o.env = map[string]json.RawMessage{}
	}
	return o
}

// readJSONObject reads a file holding one JSON object, keeping each value's JSON.
func readJSONObject(path string) (map[string]json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s: want a JSON object such as {\"count\": 1}: %v", path, jsonProblem(err))
	}
	return m, nil
}

func jsonProblem(err error) string {
	if err == nil {
		return "got null"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
