package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/exec/pyengine"
	"github.com/eventrt/eventrt/internal/quote"
)

const testUsage = `
Usage: eventrt test [flags] PATH

Runs the test cases the bundle at PATH ships, without Redis, and prints a diff
for each case whose output or env differs from what it expects. Cases live
next to their function: <module>/<function>.test.yaml tests
<module>/<function>.expr, handler.test.yaml tests handler.expr. A minimal file:

  cases:
    - name: first run
      input: {a: 1}
      env: {count: 2}          # context.env before the run (default {})
      output: {b: 2}           # expected output; null expects none
      env_after: {count: 3}    # expected context.env after the run

A Python handler's cases are in <stem>.test.yaml beside the .py file (for a
directory or zip of packages: <module path>.test.yaml, e.g. handler_module.test.yaml
for handler_module.handler), in the same format. Each case runs in a fresh
worker, so module globals do not carry from one case to the next.

` + pathHelp + `

Exit status: 0 when every case passed, 1 when one failed or none was found, 2
when the command line is wrong.

Examples:
  eventrt test ./functions
  eventrt test --function metrics.classic --run 'second' ./functions
  eventrt test examples/python/usermodule.py
`

// Test is `eventrt test`.
func Test(args []string, stdout, stderr io.Writer) int {
	c := newCommand("test", testUsage, stdout, stderr)
	var function, runPattern string
	var verbose bool
	c.fs.StringVar(&function, "function", "", "only the cases of this `module.function`; for Python, the function to import")
	c.fs.StringVar(&runPattern, "run", "", "only the cases whose name matches this `regexp`")
	c.fs.BoolVar(&verbose, "v", false, "also list the cases that pass")
	c.addTimeout()
	pos, status, ok := c.parse(args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return c.usageError("want one PATH, got %d arguments", len(pos))
	}
	var match *regexp.Regexp
	if runPattern != "" {
		re, err := regexp.Compile(runPattern)
		if err != nil {
			return c.usageError("--run: %v", err)
		}
		match = re
	}
	t := tester{lim: c.limits(), stdout: stdout, verbose: verbose, match: match}
	if c.isPython(pos[0]) {
		if status := c.testPython(&t, pos[0], function); status != ExitOK {
			return status
		}
		return t.summary(pos[0])
	}
	b, fns, err := c.loadFunctions(pos[0], function)
	if err != nil {
		return c.fail("%v", err)
	}

	t.b = b
	for _, fn := range fns {
		t.function(fn)
	}
	if function == "" {
		t.badFiles += reportOrphanTests(b, map[string]bool{}, stdout)
	}
	return t.summary(b.Origin)
}

// testPython runs the cases of the Python handler at p; a status other than ExitOK ends the
// command, the handler not being usable at all.
func (c *command) testPython(t *tester, p, function string) int {
	h, err := c.openPython(p, function)
	if err != nil {
		return c.fail("%v", err)
	}
	defer h.close()
	suite, err := h.tests()
	switch {
	case err != nil:
		t.badFiles++
		fmt.Fprintf(t.stdout, "--- FAIL: %s (%s)\n%s\n", h.name, h.userPath(h.testFile), indent(err.Error(), "    "))
		return ExitOK
	case suite == nil:
		return ExitOK // summary says how to add cases
	}
	e, err := c.startPython(h, t.verbose)
	if err != nil {
		t.total += len(suite.Cases)
		t.failed += len(suite.Cases)
		why := "cannot start"
		if pyengine.IsImport(err) {
			why = "does not import"
		}
		fmt.Fprintf(t.stdout, "--- FAIL: %s: %s, %d case(s) not run\n%s\n", h.name, why, len(suite.Cases), indent(h.describe(err), "    "))
		return ExitOK
	}
	s, runs := c.pythonSubject(h, e, t.verbose)
	defer runs.close()
	t.cases(s, suite, h.userPath(h.testFile))
	return ExitOK
}

// summary prints the last line and returns the exit status.
func (t *tester) summary(origin string) int {
	stdout := t.stdout
	switch {
	case t.total == 0 && t.badFiles == 0:
		fmt.Fprintf(stdout, "no test cases found in %s: add <module>/<function>%s next to a function (<stem>%s next to a .py file).\n%s\n",
			origin, bundle.TestExt, bundle.TestExt, docsHint)
		return ExitFail
	case t.badFiles > 0:
		fmt.Fprintf(stdout, "FAIL  %d of %d case(s) failed; %d test file(s) could not be used\n", t.failed, t.total, t.badFiles)
		return ExitFail
	case t.failed > 0:
		fmt.Fprintf(stdout, "FAIL  %d of %d case(s) failed\n", t.failed, t.total)
		return ExitFail
	}
	fmt.Fprintf(stdout, "PASS  %d case(s)\n", t.total)
	return ExitOK
}

type tester struct {
	b       *bundle.Bundle
	lim     exprengine.Limits
	stdout  io.Writer
	verbose bool
	match   *regexp.Regexp

	total, failed int
	// badFiles counts test files that could not be used: unparsable, or for no function.
	badFiles int
}

func (t *tester) function(fn *bundle.Function) {
	if fn.TestFile == "" {
		return
	}
	file := t.b.Path(fn.TestFile)
	suite, err := t.b.Tests(fn)
	if err != nil {
		t.badFiles++
		fmt.Fprintf(t.stdout, "--- FAIL: %s (%s)\n%s\n", fn.Name, file, indent(err.Error(), "    "))
		return
	}
	prog, err := fn.Compile(t.lim)
	if err != nil {
		t.total += len(suite.Cases)
		t.failed += len(suite.Cases)
		fmt.Fprintf(t.stdout, "--- FAIL: %s: does not compile, %d case(s) not run\n%s\n", fn.Name, len(suite.Cases), indent(describe(t.b, err), "    "))
		return
	}
	t.cases(exprSubject(t.b, fn, prog), suite, file)
}

// cases runs the cases of suite (read from file) that --run selects, and reports them.
func (t *tester) cases(s subject, suite *bundle.TestSuite, file string) {
	for i := range suite.Cases {
		tc := &suite.Cases[i]
		if t.match != nil && !t.match.MatchString(tc.Name) {
			continue
		}
		t.total++
		problems := t.run(s, suite, tc)
		if len(problems) == 0 {
			if t.verbose {
				fmt.Fprintf(t.stdout, "--- PASS: %s: %s\n", s.name, tc.Name)
			}
			continue
		}
		t.failed++
		fmt.Fprintf(t.stdout, "--- FAIL: %s: %s (%s)\n", s.name, tc.Name, file)
		for _, p := range problems {
			fmt.Fprintln(t.stdout, indent(p, "    "))
		}
	}
}

// run executes one case and returns what differs from its expectations.
func (t *tester) run(s subject, suite *bundle.TestSuite, tc *bundle.TestCase) []string {
	env := tc.Env
	if env == nil {
		env = map[string]json.RawMessage{}
	}
	o := s.run(tc.InputBytes(), env, tc.Context)
	if tc.Error != "" {
		switch {
		case o.err == nil:
			return []string{fmt.Sprintf("the run succeeded, want an error containing %s; output: %s", quote.Value(tc.Error), showRaw(o.output))}
		case !strings.Contains(s.describe(o.err), tc.Error):
			return []string{fmt.Sprintf("error: got %s, want one containing %s", quote.Value(s.describe(o.err)), quote.Value(tc.Error))}
		}
		return nil
	}
	if o.err != nil {
		return []string{"the run failed: " + s.describe(o.err)}
	}
	tol := suite.ToleranceFor(tc)
	var problems []string
	if tc.Output != nil {
		switch {
		case string(tc.Output) == "null" && o.output != nil:
			problems = append(problems, fmt.Sprintf("output: got %s, want none (null)", showRaw(o.output)))
		case string(tc.Output) != "null" && o.output == nil:
			problems = append(problems, fmt.Sprintf("output: got none, want %s", showRaw(tc.Output)))
		case o.output != nil:
			lines, err := diffJSON("output", tc.Output, o.output, tol)
			if err != nil {
				lines = []string{err.Error()}
			}
			problems = append(problems, lines...)
		}
	}
	if tc.EnvAfter != nil {
		got, err := json.Marshal(o.env)
		if err == nil {
			var lines []string
			lines, err = diffJSON("env", tc.EnvAfter, got, tol)
			problems = append(problems, lines...)
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

func showRaw(b json.RawMessage) string {
	if b == nil {
		return "none"
	}
	s := []rune(string(b))
	if len(s) > maxValueChars {
		return string(s[:maxValueChars]) + "..."
	}
	return string(s)
}
