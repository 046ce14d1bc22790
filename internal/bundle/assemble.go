package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

type fnFile struct {
	module, fn, file string
}

// assemble applies the layout rules to the files read from a directory or archive.
func assemble(form Form, origin string, files map[string]entry) (*Bundle, error) {
	b := &Bundle{Form: form, Origin: origin, files: files, Runtime: RuntimeExpr}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("bundle %s: %s: %s: %w", origin, name, fmt.Sprintf(format, args...), ErrInvalid))
	}
	var fns []fnFile
	var bundleShared string
	moduleShared := map[string]string{}
	addShared := func(module, name string) {
		if prev, ok := moduleShared[module]; ok {
			bad(name, "module %q already has shared bindings in %s", module, prev)
			return
		}
		moduleShared[module] = name
	}
	for _, name := range b.Files() {
		if !strings.HasSuffix(name, ProgramExt) {
			continue
		}
		parts := strings.Split(name, "/")
		switch len(parts) {
		case 1:
			segs := strings.Split(strings.TrimSuffix(name, ProgramExt), ".")
			switch {
			case len(segs) == 1 && segs[0] == SharedStem:
				bundleShared = name
			case len(segs) == 1:
				fns = append(fns, fnFile{segs[0], DefaultFunction, name})
			case len(segs) == 2 && segs[1] == SharedStem:
				addShared(segs[0], name)
			case len(segs) == 2:
				fns = append(fns, fnFile{segs[0], segs[1], name})
			default:
				bad(name, "too many dots; name a function <module>.expr, <module>.<function>.expr or <module>/<function>.expr")
			}
		case 2:
			stem := strings.TrimSuffix(parts[1], ProgramExt)
			switch {
			case stem == SharedStem:
				addShared(parts[0], name)
			case strings.Contains(stem, "."):
				bad(name, "a function file inside a module directory is <module>/<function>.expr, without dots in <function>")
			default:
				fns = append(fns, fnFile{parts[0], stem, name})
			}
		default:
			bad(name, "too deep; functions live at <module>/<function>.expr")
		}
	}
	for m, name := range moduleShared {
		if !nameRE.MatchString(m) {
			bad(name, "module name %q: use letters, digits, '_' and '-', not starting with '_' or '-'", m)
		}
	}
	// Shared files are validated once, not once per function in their scope.
	sharedOK := map[string][]byte{}
	sharedBad := false
	for _, name := range append([]string{bundleShared}, sortedValues(moduleShared)...) {
		if name == "" {
			continue
		}
		text, err := sharedText(origin, name, files[name].data)
		if err != nil {
			errs = append(errs, err)
			sharedBad = true
			continue
		}
		sharedOK[name] = text
	}
	seen := map[string]string{}
	for _, f := range fns {
		if !nameRE.MatchString(f.module) {
			bad(f.file, "module name %q: use letters, digits, '_' and '-', not starting with '_' or '-'", f.module)
			continue
		}
		if !nameRE.MatchString(f.fn) {
			bad(f.file, "function name %q: use letters, digits, '_' and '-', not starting with '_' or '-'", f.fn)
			continue
		}
		name := f.module + "." + f.fn
		if prev, ok := seen[name]; ok {
			bad(f.file, "function %s is also defined by %s", name, prev)
			continue
		}
		seen[name] = f.file
		if !sharedBad {
			b.Functions = append(b.Functions, b.function(f, sharedOK, bundleShared, moduleShared[f.module]))
		}
	}
	if _, ok := files["eventrt.yml"]; ok {
		bad("eventrt.yml", "the manifest must be named %s", ManifestFile)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(b.Functions) == 0 && len(fns) == 0 {
		if py := pythonModules(files); len(py) > 0 {
			if _, ok := files[ManifestFile]; ok {
				return nil, fmt.Errorf("bundle %s: %s lists expr functions, and the bundle holds only Python modules; a Python bundle runs the one function HANDLER_FUNCTION names: %w", origin, ManifestFile, ErrManifest)
			}
			b.Runtime, b.PythonFunction = RuntimePython, pythonDefault(py)
			return b, nil
		}
	}
	if len(b.Functions) == 0 {
		return nil, fmt.Errorf("bundle %s: no functions found; expected <module>/<function>.expr or <module>.expr files, or Python modules (.py): %w", origin, ErrInvalid)
	}
	sort.Slice(b.Functions, func(i, j int) bool { return b.Functions[i].Name < b.Functions[j].Name })
	if data, ok := files[ManifestFile]; ok {
		m, err := ParseManifest(ManifestFile, data.data)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", origin, err)
		}
		for _, spec := range m.Functions {
			if _, err := b.Function(spec.Name); err != nil {
				return nil, fmt.Errorf("bundle %s: %s: function %q is not in the bundle (it has: %s): %w",
					origin, ManifestFile, spec.Name, strings.Join(b.Names(), ", "), ErrManifest)
			}
		}
		b.Manifest = m
	}
	return b, nil
}

func sortedValues(m map[string]string) []string {
	vs := make([]string, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}

func (b *Bundle) function(f fnFile, sharedText map[string][]byte, shared ...string) *Function {
	own := b.files[f.file]
	fn := &Function{Name: f.module + "." + f.fn, Module: f.module, File: f.file, ModTime: own.mod}
	var src bytes.Buffer
	for _, s := range shared {
		if s == "" {
			continue
		}
		e := b.files[s]
		text := sharedText[s]
		src.Write(text)
		fn.segments = append(fn.segments, segment{file: s, lines: bytes.Count(text, []byte("\n"))})
		fn.Shared = append(fn.Shared, s)
		if e.mod.After(fn.ModTime) {
			fn.ModTime = e.mod
		}
	}
	if len(fn.Shared) == 0 {
		fn.Source = own.data
	} else {
		src.Write(own.data)
		fn.Source = src.Bytes()
	}
	fn.segments = append(fn.segments, segment{file: f.file})
	testName := strings.TrimSuffix(f.file, ProgramExt) + TestExt
	if _, ok := b.files[testName]; ok {
		fn.TestFile = testName
	}
	return fn
}

// sharedText validates a shared file and returns the text to prepend. It must hold only let
// bindings, so that prepending it cannot change what a program returns. The `;` after the
// last binding may be left out: it is then added on a line of its own, which keeps the
// file's line numbers. Syntax errors name the shared file.
func sharedText(origin, name string, data []byte) ([]byte, error) {
	text := data
	if !bytes.HasSuffix(text, []byte("\n")) {
		text = append(append([]byte(nil), text...), '\n')
	}
	tree, err := parser.Parse(string(text) + "nil")
	if err != nil {
		closed := append(append([]byte(nil), text...), ";\n"...)
		if tree2, err2 := parser.Parse(string(closed) + "nil"); err2 == nil {
			tree, err, text = tree2, nil, closed
		}
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			line, col := fe.Line, fe.Column+1
			if line > lines {
				line, col = lines, 1
			}
			return nil, fmt.Errorf("bundle %s: %s:%d:%d: %s: %w%s", origin, name, line, col, fe.Message, ErrInvalid, snippet(data, line, col))
		}
		return nil, fmt.Errorf("bundle %s: %s: %v: %w", origin, name, err, ErrInvalid)
	}
	n := tree.Node
	for {
		switch v := n.(type) {
		case *ast.VariableDeclaratorNode:
			n = v.Expr
			continue
		case *ast.NilNode:
			return text, nil
		}
		line, col := lineCol(text, n.Location().From)
		return nil, fmt.Errorf("bundle %s: %s:%d:%d: a shared file may hold only `let name = value;` bindings: %w%s",
			origin, name, line, col, ErrInvalid, snippet(data, line, col))
	}
}

// snippet shows line of data with a caret under col, in the form exec uses for programs.
func snippet(data []byte, line, col int) string {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	text := strings.ReplaceAll(lines[line-1], "\t", " ")
	if strings.TrimSpace(text) == "" {
		return ""
	}
	return "\n | " + text + "\n | " + strings.Repeat(".", max(col-1, 0)) + "^"
}

// lineCol turns a rune offset into a 1-based line and column.
func lineCol(data []byte, runeOff int) (int, int) {
	line, col := 1, 1
	for _, r := range string(data) {
		if runeOff == 0 {
			break
		}
		runeOff--
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// isPython reports whether a bundle path is a Python module (or a package's file).
func isPython(name string) bool { return strings.EqualFold(path.Ext(name), PythonExt) }

// pythonModules lists the Python files of a bundle.
func pythonModules(files map[string]entry) []string {
	var py []string
	for name := range files {
		if isPython(name) {
			py = append(py, name)
		}
	}
	sort.Strings(py)
	return py
}

// pythonDefault is the function a Python bundle runs when HANDLER_FUNCTION is not set.
func pythonDefault(py []string) string {
	var top []string
	for _, name := range py {
		first, _, nested := strings.Cut(name, "/")
		if first == DefaultPythonModule || first == DefaultPythonModule+PythonExt {
			return DefaultPythonModule + "." + DefaultFunction
		}
		if !nested && name != "__init__.py" && name != "setup.py" {
			top = append(top, strings.TrimSuffix(name, path.Ext(name)))
		}
	}
	if len(top) == 1 {
		return top[0] + "." + DefaultFunction
	}
	return DefaultPythonModule + "." + DefaultFunction
}
