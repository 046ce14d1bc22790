package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/eventrt/eventrt/internal/bundle"
)

const evalUsage = `
Usage: eventrt eval --input FILE [--env FILE] [--function module.function] [flags] PATH

Runs one function of the bundle at PATH once, on the input in FILE, without
Redis, and prints what the daemon would store:

  {"output": <the output, null when none>, "env": <context.env after the run>}

The env is the one --env gave when the handler returned a plain value, and the
new one when it returned result(output, env) (a Python handler: the context.env
it left). Feed the result back with --env to play the next run: a file holding
exactly "output" and "env" is taken as eval's result and its "env" is used.
A Python handler's print() output and the traceback of an exception go to
stderr.

` + pathHelp + `

Exit status: 0 when the run succeeded, 1 when it failed (the error is printed
with file:line:column), 2 when the command line is wrong.

Examples:
  eventrt eval --input metrics.json examples/classic
  eventrt eval --input-json '{"a": 1}' handler.expr
  eventrt eval --input metrics.json --env env.json --function metrics.classic ./functions
  eventrt eval --input metrics.json usermodule.py
`

// Eval is `eventrt eval`.
func Eval(args []string, stdout, stderr io.Writer) int {
	c := newCommand("eval", evalUsage, stdout, stderr)
	var inputFile, inputJSON, envFile, function string
	var spec bundle.ContextSpec
	var oneLine bool
	c.fs.StringVar(&inputFile, "input", "", "`FILE` holding the input key's value (JSON)")
	c.fs.StringVar(&inputJSON, "input-json", "", "the input as inline `JSON`, instead of --input")
	c.fs.StringVar(&envFile, "env", "", "`FILE` holding context.env before the run, a JSON object (default {})")
	c.fs.StringVar(&function, "function", "", "function to run, `module.function` (HANDLER_FUNCTION); needed when the bundle has several; for Python, the function to import")
	c.fs.StringVar(&spec.Trigger, "trigger", "", "context.trigger: keyspace, pubsub, poll, catchup or stream (default keyspace)")
	c.fs.StringVar(&spec.InputKey, "input-key", "", "context.input_key (default: the manifest's, else "+DefaultInputKey+")")
	c.fs.StringVar(&spec.OutputKey, "output-key", "", "context.output_key (default: the manifest's, else "+DefaultOutputKey+")")
	c.fs.StringVar(&spec.LastExecution, "last-execution", "", "context.last_execution, RFC 3339 `time` (default nil: a first run)")
	c.fs.StringVar(&spec.EntryID, "entry-id", "", "context.entry_id, a stream entry `id`")
	c.fs.BoolVar(&oneLine, "compact", false, "print the result on one line")
	c.addTimeout()
	pos, status, ok := c.parse(args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return c.usageError("want one PATH, got %d arguments", len(pos))
	}
	var input []byte
	switch {
	case inputFile != "" && inputJSON != "":
		return c.usageError("give --input or --input-json, not both")
	case inputFile != "":
		data, err := os.ReadFile(inputFile)
		if err != nil {
			return c.fail("--input: %v", err)
		}
		input = data
	case inputJSON != "":
		input = []byte(inputJSON)
	default:
		return c.usageError("--input FILE (or --input-json) is required: it is what the input key would hold")
	}
	env := map[string]json.RawMessage{}
	if envFile != "" {
		m, err := readJSONObject(envFile)
		if err != nil {
			return c.fail("--env: %v", err)
		}
		if inner, ok := evalResultEnv(m); ok {
			// eval's own output, fed back to play the next run: its "env" is the state.
			fmt.Fprintf(c.stderr, "eventrt eval: --env %s is an eval result; using its \"env\"\n", envFile)
			m = inner
		}
		env = m
	}
	if err := spec.Validate(); err != nil {
		return c.usageError("%v", err)
	}

	s, done, status := c.evalSubject(pos[0], function)
	if status != ExitOK {
		return status
	}
	o := s.run(input, env, spec)
	done()
	if o.err != nil {
		return c.fail("%s: %s", s.name, s.describe(o.err))
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if !oneLine {
		enc.SetIndent("", "  ")
	}
	out := struct {
		Output json.RawMessage            `json:"output"`
		Env    map[string]json.RawMessage `json:"env"`
	}{o.output, o.env}
	if out.Output == nil {
		out.Output = json.RawMessage("null")
	}
	if err := enc.Encode(out); err != nil {
		return c.fail("writing the result: %v", err)
	}
	return ExitOK
}

// evalSubject loads the function eval runs and returns what releases it after the run, or
// the exit status of a failure it has reported.
func (c *command) evalSubject(p, function string) (subject, func(), int) {
	if c.isPython(p) {
		h, err := c.openPython(p, function)
		if err != nil {
			return subject{}, nil, c.fail("%v", err)
		}
		e, err := c.startPython(h, true)
		if err != nil {
			h.close()
			return subject{}, nil, c.fail("%s", h.describe(err))
		}
		s, runs := c.pythonSubject(h, e, true)
		return s, func() { runs.close(); h.close() }, ExitOK
	}
	b, err := c.loadExpr(p)
	if err != nil {
		return subject{}, nil, c.fail("%v", err)
	}
	fn, err := pickFunction(b, function)
	if err != nil {
		return subject{}, nil, c.fail("%v", err)
	}
	prog, err := fn.Compile(c.limits())
	if err != nil {
		return subject{}, nil, c.fail("%s", describe(b, err))
	}
	return exprSubject(b, fn, prog), func() {}, ExitOK
}

// pickFunction selects the function to run: the named one, or the only one.
func pickFunction(b *bundle.Bundle, name string) (*bundle.Function, error) {
	if name != "" {
		return namedFunction(b, name)
	}
	if len(b.Functions) == 1 {
		return b.Functions[0], nil
	}
	return nil, fmt.Errorf("%s has %d functions; choose one with --function (one of: %s)", b.Origin, len(b.Functions), strings.Join(b.Names(), ", "))
}

// evalResultEnv recognises eval's own result, {"output": ..., "env": {...}} and nothing else,
// and returns its env.
func evalResultEnv(m map[string]json.RawMessage) (map[string]json.RawMessage, bool) {
	raw, hasEnv := m["env"]
	if _, hasOutput := m["output"]; len(m) != 2 || !hasEnv || !hasOutput {
		return nil, false
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil || env == nil {
		return nil, false
	}
	return env, true
}
