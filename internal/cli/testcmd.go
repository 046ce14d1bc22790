package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/exec"
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

` + pathHelp + `

Exit status: 0 when every case passed, 1 when one failed or none was found, 2
when the command line is wrong.

Examples:
  eventrt test ./functions
  eventrt test --function metrics.classic --run 'second' ./functions
`

// Test is `eventrt test`.
func Test(args []string, stdout, stderr io.Writer) int {
	c := newCommand("test", testUsage, stdout, stderr)
	var function, runPattern string
	var verbose bool
	c.fs.StringVar(&function, "function", "", "only the cases of this `module.function`")
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
	b, err := c.load(pos[0])
	if err != nil {
		return c.fail("%v", err)
	}
	fns := b.Functions
	if function != "" {
		fn, err := b.Function(function)
		if err != nil {
			return c.fail("%v", err)
		}
		fns = []*bundle.Function{fn}
	}

	t := tester{b: b, lim: c.limits(), stdout: stdout, verbose: verbose, match: match}
	for _, fn := range fns {
		t.function(fn)
	}
	if function == "" {
		t.badFiles += reportOrphanTests(b, map[string]bool{}, stdout)
	}
	switch {
	case t.total == 0 && t.badFiles == 0:
		fmt.Fprintf(stdout, "no test cases found in %s: add <module>/<function>%s next to a function.\n%s\n", b.Origin, bundle.TestExt, docsHint)
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
	lim     exec.Limits
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
	for i := range suite.Cases {
		tc := &suite.Cases[i]
		if t.match != nil && !t.match.MatchString(tc.Name) {
			continue
		}
		t.total++
		problems := t.run(prog, fn, suite, tc)
		if len(problems) == 0 {
			if t.verbose {
				fmt.Fprintf(t.stdout, "--- PASS: %s: %s\n", fn.Name, tc.Name)
			}
			continue
		}
		t.failed++
		fmt.Fprintf(t.stdout, "--- FAIL: %s: %s (%s)\n", fn.Name, tc.Name, file)
		for _, p := range problems {
			fmt.Fprintln(t.stdout, indent(p, "    "))
		}
	}
}

// run executes one case and returns what differs from its expectations.
func (t *tester) run(prog *exec.Program, fn *bundle.Function, suite *bundle.TestSuite, tc *bundle.TestCase) []string {
	ctx, err := runContext(t.b, fn, tc.Context)
	if err != nil {
		return []string{err.Error()}
	}
	env := tc.Env
	if env == nil {
		env = map[string]json.RawMessage{}
	}
	o := run(prog, fn, tc.InputBytes(), env, ctx)
	if tc.Error != "" {
		switch {
		case o.err == nil:
			return []string{fmt.Sprintf("the run succeeded, want an error containing %q; output: %s", tc.Error, showRaw(o.output))}
		case !strings.Contains(describe(t.b, o.err), tc.Error):
			return []string{fmt.Sprintf("error: got %q, want one containing %q", describe(t.b, o.err), tc.Error)}
		}
		return nil
	}
	if o.err != nil {
		return []string{"the run failed: " + describe(t.b, o.err)}
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
