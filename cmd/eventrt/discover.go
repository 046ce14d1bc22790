package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/config"
)

// layout lists where eventrt looks for a handler when nothing names one, in this order: its
// own bundle directory, the custom course runtime's PYFILE_PATH, the course runtime's file.
// Tests point it at temporary files.
type layout struct {
	handlerPath string // an expr file, bundle directory or zip; or Python modules
	pyfilePath  string // a Python file without .py, loaded as the module HANDLER_FUNCTION names
	usermodule  string // a Python file, run as usermodule.handler
}

func defaultLayout() layout {
	return layout{handlerPath: config.DefaultHandlerPath, pyfilePath: config.DefaultPyfilePath, usermodule: config.DefaultPythonFile}
}

// errNoHandler: nothing names a handler and none of the layouts' paths exists.
var errNoHandler = errors.New("no handler found")

// handlerSource is the handler the daemon runs, decided once at start from the settings and
// the layouts present: where it is, the engine if the settings fix it, and the function's name
// if the settings (or a layout's documented default) fix it.
type handlerSource struct {
	path string // a file, directory or zip; "" with url
	url  string // ZIP_URL
	// runtime is "expr" or "python" when the settings or the layout decide it; "" lets the
	// bundle's files decide.
	runtime string
	// name is HANDLER_FUNCTION when set, or the layout's default; "" derives it from the
	// handler (bundle.PythonFileFunction, a bundle's single function).
	name string
	// from says what chose the handler, for the start-up line: a variable or "default".
	from string
}

// discover decides which handler the daemon runs: ZIP_URL, then PYFILE_PATH, then
// HANDLER_PATH, and with none of them set the first layout path that exists.
func discover(o config.Options, l layout) (handlerSource, error) {
	var s handlerSource
	if o.Given("HANDLER_RUNTIME") {
		s.runtime = o.HandlerRuntime
	}
	if o.Given("HANDLER_FUNCTION") {
		s.name = o.HandlerFunction
	}
	python := func(what string) error {
		if s.runtime == bundle.RuntimeExpr {
			return fmt.Errorf("%s names a Python handler, but HANDLER_RUNTIME=expr", what)
		}
		s.runtime = bundle.RuntimePython
		return nil
	}
	switch {
	case o.ZipURL != "":
		s.url, s.from = o.ZipURL, "ZIP_URL"
		return s, nil
	case o.Given("PYFILE_PATH") && o.PythonFile != "":
		s.path, s.from = o.PythonFile, "PYFILE_PATH"
		return s, python("PYFILE_PATH")
	case o.Given("HANDLER_PATH"):
		s.path, s.from = o.HandlerPath, "HANDLER_PATH"
		return s, nil
	}
	s.from = "default"
	switch {
	case exists(l.handlerPath):
		s.path = l.handlerPath
	case exists(l.pyfilePath):
		s.path = l.pyfilePath
		if s.name == "" {
			s.name = config.DefaultHandlerFunction
		}
		return s, python(l.pyfilePath)
	case exists(l.usermodule):
		s.path = l.usermodule
		return s, python(l.usermodule)
	default:
		return s, fmt.Errorf("%w: set HANDLER_PATH (an expr program, a bundle directory or a .zip), PYFILE_PATH (a Python file) or ZIP_URL (a zip to download); nothing is at %s",
			errNoHandler, strings.Join([]string{l.handlerPath, l.pyfilePath, l.usermodule}, ", "))
	}
	return s, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// exprName is the function a bundle without a manifest runs: the name fixed by the settings,
// else the bundle's only function, else handler_module.handler if the bundle has it.
func exprName(b *bundle.Bundle, fixed string) (string, error) {
	switch {
	case fixed != "":
		return fixed, nil
	case len(b.Functions) == 1:
		return b.Functions[0].Name, nil
	}
	for _, f := range b.Functions {
		if f.Name == config.DefaultHandlerFunction {
			return f.Name, nil
		}
	}
	return "", fmt.Errorf("bundle %s has %d functions (%s): set HANDLER_FUNCTION to the one to run, or add an %s manifest to run several",
		b.Origin, len(b.Functions), strings.Join(b.Names(), ", "), bundle.ManifestFile)
}
