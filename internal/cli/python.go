package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/pyengine"
	"github.com/eventrt/eventrt/internal/quote"
)

// Values of --runtime, as HANDLER_RUNTIME takes them.
const (
	RuntimeExpr   = "expr"
	RuntimePython = "python"
)

// PythonExt marks a handler file as Python when --runtime is not given.
const PythonExt = ".py"

// runtimeFlag is --runtime: empty until set, then expr or python.
type runtimeFlag string

func (r *runtimeFlag) String() string { return string(*r) }

func (r *runtimeFlag) Set(v string) error {
	if v != RuntimeExpr && v != RuntimePython {
		return fmt.Errorf("want %s or %s", RuntimeExpr, RuntimePython)
	}
	*r = runtimeFlag(v)
	return nil
}

// isPython reports whether PATH names a Python handler: --runtime python, or, without
// --runtime, a .py file or a directory or zip holding Python modules and no .expr programs
// (the daemon's rule: the runtime follows from the files).
func (c *command) isPython(p string) bool {
	switch string(c.runtime) {
	case RuntimePython:
		return true
	case RuntimeExpr:
		return false
	}
	if strings.EqualFold(filepath.Ext(p), PythonExt) {
		return true
	}
	if st, err := os.Stat(p); err != nil || !(st.IsDir() || pyengine.IsZip(p)) {
		return false
	}
	b, err := c.load(p)
	return err == nil && b.Runtime == bundle.RuntimePython
}

// pyHandler is a Python handler named on the command line, and where its test cases live:
// <stem>.test.yaml beside a .py file; <module path>.test.yaml (pkg/mod.test.yaml for
// pkg.mod.handler) at the root of a directory or zip, beside the module's file.
type pyHandler struct {
	path     string // the .py file, directory or zip, as given
	function string // what the worker imports: "handler", "usermodule.handler", "pkg.mod.fn"
	name     string // module.function: reports and context.function
	modTime  time.Time
	root     string // what a relative file name in the handler's errors is relative to
	zip      bool
	files    fs.FS  // the test file and its input files are read from here
	testFile string // the test cases' slash path in files; "" when there are none
	closeFS  func() error
}

// openPython resolves the Python handler at p; function is --function ("" for the default).
func (c *command) openPython(p, function string) (*pyHandler, error) {
	switch {
	case strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://"):
		return nil, fmt.Errorf("python handler %s: give a local file, directory or zip; download it first", bundle.Redact(p))
	case c.sha256 != "":
		return nil, fmt.Errorf("python handler %s: --sha256 pins only expr bundles", p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("python handler: %w", err)
	}
	h := &pyHandler{path: p, modTime: st.ModTime(), closeFS: func() error { return nil }}
	switch {
	case st.IsDir() || pyengine.IsZip(p):
		h.function = function
		if h.function == "" {
			// The daemon's default: handler_module.handler, or the only module's handler.
			h.function = pyengine.DefaultBundleFunction
			if b, err := c.load(p); err == nil && b.Runtime == bundle.RuntimePython {
				h.function = b.PythonFunction
			}
		}
		h.name = h.function
		if mod := moduleOf(h.function); mod != "" { // else the worker refuses the function
			h.testFile = strings.ReplaceAll(mod, ".", "/") + bundle.TestExt
		}
		h.root = p
		if st.IsDir() {
			h.files = os.DirFS(p)
			break
		}
		zr, err := zip.OpenReader(p)
		if err != nil {
			return nil, fmt.Errorf("python handler %s: %w", p, err)
		}
		h.zip, h.files, h.closeFS = true, zr, zr.Close
	default:
		// The daemon's name for the file: --function (HANDLER_FUNCTION) when given, else
		// <stem>.handler for a .py file, handler_module.handler for a file without the
		// suffix. The worker loads the file as the module that name holds.
		h.name = bundle.PythonFileFunction(p)
		switch {
		case strings.Contains(function, "."):
			h.name = function
		case function != "":
			h.name = moduleOf(h.name) + "." + function
		}
		h.function = h.name
		stem := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		h.root = filepath.Dir(p)
		h.files = os.DirFS(h.root)
		h.testFile = stem + bundle.TestExt
	}
	if h.testFile != "" {
		if _, err := fs.Stat(h.files, h.testFile); errors.Is(err, fs.ErrNotExist) {
			h.testFile = ""
		} else if err != nil {
			_ = h.closeFS()
			return nil, fmt.Errorf("python handler %s: test cases %s: %w", p, h.userPath(h.testFile), err)
		}
	}
	return h, nil
}

func (h *pyHandler) close() {
	_ = h.closeFS() // a zip opened for reading: nothing is lost if closing fails
}

// moduleOf returns "a.b" for "a.b.c", "" for "c".
func moduleOf(function string) string {
	i := strings.LastIndexByte(function, '.')
	if i < 0 {
		return ""
	}
	return function[:i]
}

// userPath turns a slash path of h.files, or a file name from the worker, into one a user can
// open.
func (h *pyHandler) userPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	if h.zip {
		return h.path + "/" + name
	}
	return filepath.Join(h.root, filepath.FromSlash(name))
}

// tests parses the handler's test cases, reading each input_file (relative to the test file,
// inside the handler's directory); nil without error when there are none.
func (h *pyHandler) tests() (*bundle.TestSuite, error) {
	if h.testFile == "" {
		return nil, nil
	}
	file := h.userPath(h.testFile)
	data, err := readLimited(h.files, h.testFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	s, err := bundle.ParseTestSuite(file, data)
	if err != nil {
		return nil, err
	}
	for i := range s.Cases {
		c := &s.Cases[i]
		if c.InputFile == "" {
			continue
		}
		p := path.Join(path.Dir(h.testFile), c.InputFile)
		if !fs.ValidPath(p) || path.IsAbs(c.InputFile) {
			return nil, fmt.Errorf("%s: case %s: input_file %s: outside %s: %w", file, quote.Value(c.Name), quote.Value(c.InputFile), h.root, bundle.ErrTestFile)
		}
		in, err := readLimited(h.files, p)
		if err != nil {
			return nil, fmt.Errorf("%s: case %s: input_file %s: %v: %w", file, quote.Value(c.Name), quote.Value(c.InputFile), err, bundle.ErrTestFile)
		}
		c.Input = in
	}
	return s, nil
}

// readLimited reads a file of fsys up to the size a bundle file may have.
func readLimited(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, bundle.DefaultMaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > bundle.DefaultMaxFileBytes {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", name, bundle.DefaultMaxFileBytes, bundle.ErrTooLarge)
	}
	return data, nil
}

// startPython starts a worker for h and imports the handler in it. verbose also shows the
// tracebacks of handler exceptions on stderr.
func (c *command) startPython(h *pyHandler, verbose bool) (*pyengine.Engine, error) {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	lim := c.limits()
	return pyengine.Start(context.Background(), pyengine.Options{
		Python: c.python, File: h.path, Function: h.function, Name: h.name,
		Timeout: lim.Timeout, MaxOutputBytes: lim.MaxOutputBytes,
		Logger: slog.New(&printHandler{w: c.stderr, level: level}),
	})
}

// describe renders a Python handler's error for a terminal: an import error as
// file:line:column with the offending line and the traceback, the others as they are.
func (h *pyHandler) describe(err error) string {
	var ie *pyengine.ImportError
	switch {
	case errors.As(err, &ie):
		var b strings.Builder
		b.WriteString(h.userPath(ie.File))
		if ie.Line > 0 {
			fmt.Fprintf(&b, ":%d", ie.Line)
			if ie.Column > 0 {
				fmt.Fprintf(&b, ":%d", ie.Column)
			}
		}
		fmt.Fprintf(&b, ": %s", ie.Message)
		if ie.Snippet != "" {
			fmt.Fprintf(&b, "\n | %s", ie.Snippet)
		}
		// A traceback without frames (a missing function) only repeats the message.
		if tb := strings.TrimSpace(ie.Traceback); strings.Contains(tb, "\n  File ") {
			fmt.Fprintf(&b, "\n%s", indent(tb, "    "))
		}
		return b.String()
	case pyengine.IsNoPython(err):
		return err.Error() + "; name it with --python PATH (Debian: apt-get install -y python3)"
	}
	return err.Error()
}

// pythonSubject runs h through e, then through a fresh worker for each further run: module
// globals do not carry from one test case into the next, so a case passes or fails alone,
// as an expr case does.
func (c *command) pythonSubject(h *pyHandler, e *pyengine.Engine, verbose bool) (subject, *pyRuns) {
	runs := &pyRuns{c: c, h: h, spare: e, verbose: verbose}
	return subject{
		name:     h.name,
		base:     baseContext(h.name, h.modTime),
		open:     runs.open,
		describe: h.describe,
	}, runs
}

// pyRuns hands out the workers of a pythonSubject.
type pyRuns struct {
	c       *command
	h       *pyHandler
	spare   *pyengine.Engine // started and not yet used
	verbose bool
}

func (r *pyRuns) open() (exec.Handler, func(), error) {
	e := r.spare
	r.spare = nil
	if e == nil {
		var err error
		if e, err = r.c.startPython(r.h, r.verbose); err != nil {
			return nil, nil, err
		}
	}
	return e, func() { _ = e.Close() }, nil // Close reports nothing: it only stops the worker
}

// close stops a worker that was started and never used.
func (r *pyRuns) close() {
	if r.spare != nil {
		_ = r.spare.Close()
		r.spare = nil
	}
}

// printHandler writes a Python handler's print() output to the terminal as "function: line"
// (the daemon logs it with the function's name), and the engine's own messages as
// "eventrt: message key=value", a multi-line value (a traceback) indented below.
type printHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h *printHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *printHandler) Handle(_ context.Context, r slog.Record) error {
	var fn, stream string
	var rest []slog.Attr
	collect := func(a slog.Attr) bool {
		switch a.Key {
		case "function":
			fn = a.Value.String()
		case "stream":
			stream = a.Value.String()
		default:
			rest = append(rest, a)
		}
		return true
	}
	for _, a := range h.attrs {
		collect(a)
	}
	r.Attrs(collect)
	var b bytes.Buffer
	if stream != "" {
		fmt.Fprintf(&b, "%s: %s\n", fn, r.Message)
	} else {
		fmt.Fprintf(&b, "eventrt: %s", r.Message)
		if fn != "" {
			fmt.Fprintf(&b, " function=%s", fn)
		}
		var long []string
		for _, a := range rest {
			v := a.Value.String()
			if strings.Contains(v, "\n") {
				long = append(long, v)
				continue
			}
			fmt.Fprintf(&b, " %s=%s", a.Key, v)
		}
		b.WriteByte('\n')
		for _, v := range long {
			fmt.Fprintf(&b, "%s\n", indent(v, "    "))
		}
	}
	_, err := h.w.Write(b.Bytes()) // one write per record: lines do not interleave
	return err
}

func (h *printHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *printHandler) WithGroup(string) slog.Handler { return h }
