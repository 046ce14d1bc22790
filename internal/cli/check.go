package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/eventrt/eventrt/internal/bundle"
)

const checkUsage = `
Usage: eventrt check [flags] PATH

Compiles every function of the bundle at PATH and reports each error as
file:line:column with the offending line, the way a compiler does. It also
validates the manifest (eventrt.yaml) and the test-case files (*.test.yaml).
Nothing runs and Redis is not needed: use it in CI or before a deploy.

For a Python handler it starts the worker and imports the handler, which runs
the module's top-level code (Python handlers are trusted code), and reports a
syntax error or an exception as file:line:column with the line and traceback.

` + pathHelp + `

Exit status: 0 when everything is valid, 1 when something is not, 2 when the
command line is wrong.

Examples:
  eventrt check handler.expr
  eventrt check ./functions
  eventrt check --sha256 9f86d08... https://example.com/functions.zip
  eventrt check usermodule.py
  eventrt check --runtime python --function handler_module.handler ./packages
`

// Check is `eventrt check`.
func Check(args []string, stdout, stderr io.Writer) int {
	c := newCommand("check", checkUsage, stdout, stderr)
	var function string
	c.fs.StringVar(&function, "function", "", "check only this `module.function` (HANDLER_FUNCTION); for Python, the function to import")
	pos, status, ok := c.parse(args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return c.usageError("want one PATH, got %d arguments", len(pos))
	}
	if c.isPython(pos[0]) {
		return c.checkPython(pos[0], function)
	}
	b, fns, err := c.loadFunctions(pos[0], function)
	if err != nil {
		return c.fail("%v", err)
	}
	lim := c.limits()
	failed := 0
	claimed := map[string]bool{}
	for _, fn := range fns {
		p, err := fn.Compile(lim)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s\n", describe(b, err))
			fmt.Fprintf(stdout, "FAIL  %s (%s)\n", fn.Name, b.Path(fn.File))
			continue
		}
		note := ""
		if fast, why := p.FastPath(); !fast {
			// Not a problem: the same results, at expr's VM speed.
			note = fmt.Sprintf("; runs on expr's VM, not the fast path (%s)", why)
		}
		fmt.Fprintf(stdout, "ok    %s (%s%s)\n", fn.Name, b.Path(fn.File), note)
		if fn.TestFile != "" {
			claimed[fn.TestFile] = true
			if _, err := b.Tests(fn); err != nil {
				failed++
				fmt.Fprintf(stderr, "%v\n", err)
			}
		}
	}
	failed += reportOrphanTests(b, claimed, stderr)
	if b.Manifest != nil {
		fmt.Fprintf(stdout, "manifest %s: %d functions\n", bundle.ManifestFile, len(b.Manifest.Functions))
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d problem(s) in %s\n", failed, b.Origin)
		return ExitFail
	}
	fmt.Fprintf(stdout, "%d function(s) compiled\n", len(fns))
	return ExitOK
}

// checkPython imports the Python handler at p and validates its test cases.
func (c *command) checkPython(p, function string) int {
	h, err := c.openPython(p, function)
	if err != nil {
		return c.fail("%v", err)
	}
	defer h.close()
	e, err := c.startPython(h, false)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s\n", h.describe(err))
		fmt.Fprintf(c.stdout, "FAIL  %s (%s)\n", h.name, p)
		return ExitFail
	}
	_ = e.Close() // Close reports nothing: it only stops the worker
	fmt.Fprintf(c.stdout, "ok    %s (%s)\n", h.name, p)
	if _, err := h.tests(); err != nil {
		fmt.Fprintf(c.stderr, "%v\n", err)
		fmt.Fprintf(c.stdout, "1 problem(s) in %s\n", p)
		return ExitFail
	}
	fmt.Fprintln(c.stdout, "1 function(s) imported")
	return ExitOK
}

// reportOrphanTests reports test files no function claims, which would otherwise be skipped
// in silence (a typo in the file name).
func reportOrphanTests(b *bundle.Bundle, claimed map[string]bool, stderr io.Writer) int {
	for _, fn := range b.Functions {
		if fn.TestFile != "" {
			claimed[fn.TestFile] = true
		}
	}
	n := 0
	for _, f := range b.Files() {
		if strings.HasSuffix(f, bundle.TestExt) && !claimed[f] {
			n++
			fmt.Fprintf(stderr, "%s: no function for these tests; name the file after its function: <module>/<function>%s next to <module>/<function>%s\n",
				b.Path(f), bundle.TestExt, bundle.ProgramExt)
		}
	}
	return n
}
