package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"
)

// DefaultTolerance is the relative difference under which two numbers compare equal in a
// test case, so that a moving average computed in another order still matches.
const DefaultTolerance = 1e-9

// TestSuite is a parsed test-case file, <function file stem>.test.yaml.
type TestSuite struct {
	// File is the suite's path inside the bundle.
	File string `json:"-"`
	// Tolerance is the relative tolerance for numbers; nil means DefaultTolerance.
	Tolerance *float64   `json:"tolerance,omitempty"`
	Cases     []TestCase `json:"cases"`
}

// TestCase is one run of a function and what it must produce.
type TestCase struct {
	// Name identifies the case in reports; required, unique in its file.
	Name string `json:"name"`
	// Exactly one of Input (any YAML/JSON value), InputFile (a .json file of the bundle,
	// relative to the test file) and InputRaw (the input key's bytes, verbatim) is set.
	Input     json.RawMessage `json:"input,omitempty"`
	InputFile string          `json:"input_file,omitempty"`
	InputRaw  *string         `json:"input_raw,omitempty"`
	// Env is context.env before the run, one value per key; empty means {}.
	Env map[string]json.RawMessage `json:"env,omitempty"`
	// Context overrides fields of the context the run sees.
	Context ContextSpec `json:"context,omitempty"`
	// Output is the expected output; `null` expects no output. Omitted: not checked.
	Output json.RawMessage `json:"output,omitempty"`
	// EnvAfter is the expected env after the run (the env before when the handler returned a
	// plain value). Omitted: not checked.
	EnvAfter json.RawMessage `json:"env_after,omitempty"`
	// Error, when set, expects the run to fail with a message containing it.
	Error string `json:"error,omitempty"`
	// Tolerance overrides the suite's tolerance for this case.
	Tolerance *float64 `json:"tolerance,omitempty"`
}

// ContextSpec overrides context fields in a test case or `eventrt eval`. Empty fields keep
// their defaults (see docs/bundles.md).
type ContextSpec struct {
	Host             string `json:"host,omitempty"`
	Port             int    `json:"port,omitempty"`
	InputKey         string `json:"input_key,omitempty"`
	OutputKey        string `json:"output_key,omitempty"`
	FunctionGetmtime string `json:"function_getmtime,omitempty"`
	// LastExecution is RFC 3339 ("2026-11-25T16:40:00Z"); empty means nil, a first run.
	LastExecution string `json:"last_execution,omitempty"`
	// Trigger is keyspace, pubsub, poll, catchup or stream.
	Trigger string `json:"trigger,omitempty"`
	EntryID string `json:"entry_id,omitempty"`
}

// Triggers lists the values context.trigger takes.
var Triggers = []string{"keyspace", "pubsub", "poll", "catchup", "stream"}

// Validate checks the fields that have a closed set of values.
func (c ContextSpec) Validate() error {
	if c.Trigger != "" && !contains(Triggers, c.Trigger) {
		return fmt.Errorf("trigger %q is not one of %v", c.Trigger, Triggers)
	}
	if c.LastExecution != "" {
		if _, err := time.Parse(time.RFC3339Nano, c.LastExecution); err != nil {
			return fmt.Errorf("last_execution %q: want RFC 3339 such as 2026-11-25T16:40:00Z", c.LastExecution)
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port %d: out of range", c.Port)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ToleranceFor returns the tolerance that applies to c.
func (s *TestSuite) ToleranceFor(c *TestCase) float64 {
	switch {
	case c.Tolerance != nil:
		return *c.Tolerance
	case s.Tolerance != nil:
		return *s.Tolerance
	}
	return DefaultTolerance
}

// InputBytes returns the case's input as the bytes the input key would hold.
func (c *TestCase) InputBytes() []byte {
	if c.InputRaw != nil {
		return []byte(*c.InputRaw)
	}
	return c.Input
}

// Tests parses and validates the test cases of fn; nil without error when it has none.
// An input_file is resolved inside the bundle and its content moved into Input.
func (b *Bundle) Tests(fn *Function) (*TestSuite, error) {
	if fn.TestFile == "" {
		return nil, nil
	}
	data, _ := b.File(fn.TestFile)
	s, err := ParseTestSuite(fn.TestFile, data)
	if err != nil {
		return nil, err
	}
	for i := range s.Cases {
		c := &s.Cases[i]
		if c.InputFile == "" {
			continue
		}
		p := path.Join(path.Dir(fn.TestFile), c.InputFile)
		in, ok := b.File(p)
		if !ok {
			return nil, fmt.Errorf("%s: case %q: input_file %q: %s is not in the bundle (only .json, .yaml and .expr files are read): %w",
				fn.TestFile, c.Name, c.InputFile, p, ErrTestFile)
		}
		c.Input = in
	}
	return s, nil
}

// ParseTestSuite parses and validates one test-case file. Unknown fields are errors; every
// error names the file and the case.
func ParseTestSuite(name string, data []byte) (*TestSuite, error) {
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrTestFile)
	}
	var top struct {
		Tolerance *float64          `json:"tolerance"`
		Cases     []json.RawMessage `json:"cases"`
	}
	if err := strictJSON(js, &top); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrTestFile)
	}
	if len(top.Cases) == 0 {
		return nil, fmt.Errorf("%s: cases: the list is empty; add at least one case: %w", name, ErrTestFile)
	}
	s := &TestSuite{File: name, Tolerance: top.Tolerance}
	var errs []error
	fail := func(i int, cs, format string, args ...any) {
		who := fmt.Sprintf("cases[%d]", i)
		if cs != "" {
			who = fmt.Sprintf("case %q", cs)
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s: %w", name, who, fmt.Sprintf(format, args...), ErrTestFile))
	}
	if top.Tolerance != nil && *top.Tolerance < 0 {
		errs = append(errs, fmt.Errorf("%s: tolerance: must not be negative: %w", name, ErrTestFile))
	}
	seen := map[string]bool{}
	for i, raw := range top.Cases {
		var peek struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &peek) // only to name the case in errors
		var c TestCase
		if err := strictJSON(raw, &c); err != nil {
			fail(i, peek.Name, "%v", err)
			continue
		}
		switch {
		case c.Name == "":
			fail(i, "", "name: required")
		case seen[c.Name]:
			fail(i, c.Name, "name: listed twice")
		}
		seen[c.Name] = true
		n := 0
		for _, set := range []bool{c.Input != nil, c.InputFile != "", c.InputRaw != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			fail(i, c.Name, "set exactly one of input, input_file, input_raw")
		}
		if c.Error != "" && (c.Output != nil || c.EnvAfter != nil) {
			fail(i, c.Name, "error expects the run to fail, so output and env_after cannot be checked too")
		}
		if c.Error == "" && c.Output == nil && c.EnvAfter == nil {
			fail(i, c.Name, "nothing to check: set output, env_after or error")
		}
		if c.EnvAfter != nil {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(c.EnvAfter, &m); err != nil || m == nil {
				fail(i, c.Name, "env_after: want a mapping ({} for an empty env)")
			}
		}
		if c.Tolerance != nil && *c.Tolerance < 0 {
			fail(i, c.Name, "tolerance: must not be negative")
		}
		if err := c.Context.Validate(); err != nil {
			fail(i, c.Name, "context: %v", err)
		}
		s.Cases = append(s.Cases, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}
