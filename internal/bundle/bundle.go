package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Form says what a bundle was loaded from.
type Form string

const (
	FormFile Form = "file" // a single program file
	FormDir  Form = "dir"  // a directory (a ConfigMap mount included)
	FormZip  Form = "zip"  // a local zip archive
	FormURL  Form = "url"  // a zip archive downloaded from ZIP_URL
)

// File names with a meaning inside a bundle.
const (
	ManifestFile = "eventrt.yaml"
	ProgramExt   = ".expr"
	TestExt      = ".test.yaml"
	// SharedStem is the stem of a file of let bindings prepended to other functions:
	// _shared.expr for the whole bundle, <module>/_shared.expr or <module>._shared.expr for
	// one module.
	SharedStem = "_shared"
	// DefaultFunction is the function name a single-function module file gets:
	// <module>.expr holds "module.handler", like the course runtime's usermodule.handler.
	DefaultFunction = "handler"
)

// Limits bound what Load reads. A zero field takes its Default value.
type Limits struct {
	// MaxArchiveBytes bounds a zip archive, on disk or downloaded, before decompression.
	MaxArchiveBytes int64
	// MaxEntries bounds the entries of an archive or the files found in a directory tree.
	MaxEntries int
	// MaxFileBytes bounds one file after decompression.
	MaxFileBytes int64
	// MaxTotalBytes bounds all files read after decompression.
	MaxTotalBytes int64
	// MaxRatio bounds how much one archive entry may expand (uncompressed/compressed); it is
	// enforced while reading, on the bytes actually produced, once an entry is past 1 MiB.
	MaxRatio int64
}

// Defaults of Limits.
const (
	DefaultMaxArchiveBytes int64 = 16 << 20
	DefaultMaxEntries            = 1000
	DefaultMaxFileBytes    int64 = 4 << 20
	DefaultMaxTotalBytes   int64 = 64 << 20
	DefaultMaxRatio        int64 = 100
	// ratioFloor lets small, very repetitive files (a test fixture of zeros) through: the
	// ratio matters only once an entry could hurt.
	ratioFloor int64 = 1 << 20
)

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxArchiveBytes < 0 || l.MaxEntries < 0 || l.MaxFileBytes < 0 || l.MaxTotalBytes < 0 || l.MaxRatio < 0 {
		return l, fmt.Errorf("bundle: limits must not be negative: %+v", l)
	}
	if l.MaxArchiveBytes == 0 {
		l.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	return l, nil
}

// Sentinel errors; Load wraps them with the file, entry or function involved.
var (
	// ErrUnknownFunction: the requested function is not in the bundle.
	ErrUnknownFunction = errors.New("unknown function")
	// ErrInvalid: the bundle's layout is wrong (a bad file name, a duplicate function, no
	// function at all, a shared file that is not only let bindings).
	ErrInvalid = errors.New("invalid bundle")
	// ErrManifest: eventrt.yaml cannot be parsed or fails validation.
	ErrManifest = errors.New("invalid manifest")
	// ErrTestFile: a test-case file cannot be parsed or fails validation.
	ErrTestFile = errors.New("invalid test file")
	// ErrTooLarge: an archive, a download or a file exceeds its size limit.
	ErrTooLarge = errors.New("too large")
	// ErrTooManyEntries: an archive or a directory holds more entries than allowed.
	ErrTooManyEntries = errors.New("too many entries")
	// ErrUnsafePath: an archive entry is absolute, climbs out with "..", or is a symlink.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrBomb: an archive entry expands beyond the ratio or total limit, or beyond the size
	// its header declares.
	ErrBomb = errors.New("decompression bomb")
	// ErrChecksum: the archive does not match its SHA-256 pin.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrInsecureURL: ZIP_URL is not https and plain http was not allowed.
	ErrInsecureURL = errors.New("insecure url")
)

// IsUnknownFunction reports whether err says a requested function is not in the bundle.
func IsUnknownFunction(err error) bool { return errors.Is(err, ErrUnknownFunction) }

// IsInvalid reports whether err is a layout error of the bundle.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// IsManifest reports whether err is a manifest error.
func IsManifest(err error) bool { return errors.Is(err, ErrManifest) }

// IsTestFile reports whether err is a test-case file error.
func IsTestFile(err error) bool { return errors.Is(err, ErrTestFile) }

// IsChecksum reports whether err is a SHA-256 pin mismatch.
func IsChecksum(err error) bool { return errors.Is(err, ErrChecksum) }

// IsRefused reports whether err is an archive or download refused for safety: too large,
// too many entries, an unsafe path, a decompression bomb, a checksum mismatch or an
// insecure URL.
func IsRefused(err error) bool {
	for _, s := range []error{ErrTooLarge, ErrTooManyEntries, ErrUnsafePath, ErrBomb, ErrChecksum, ErrInsecureURL} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// Source says where to load a bundle from: exactly one of Path and URL.
type Source struct {
	// Path is a program file, a directory or a zip archive (recognised by its content).
	Path string
	// URL is a zip archive to download (ZIP_URL); https unless AllowHTTP.
	URL string
	// SHA256 optionally pins the archive (hex, optionally prefixed "sha256:"); it applies to
	// URL and to a zip Path, and is refused for other forms.
	SHA256 string
	// AllowHTTP permits a plain http URL (and redirects to one).
	AllowHTTP bool
	// Fetch configures the download of URL.
	Fetch  FetchOptions
	Limits Limits
}

type entry struct {
	data []byte
	mod  time.Time
}

// Bundle is a loaded bundle: its functions, its manifest and the other files it carries.
// It is immutable once loaded.
type Bundle struct {
	Form Form
	// Origin is the path, or the URL without credentials and query, for messages.
	Origin string
	// SHA256 is the hex digest of the archive (zip and url forms), empty otherwise.
	SHA256 string
	// Functions are sorted by name.
	Functions []*Function
	// Manifest is nil when the bundle has no eventrt.yaml.
	Manifest *Manifest
	// Runtime is the engine the bundle's files call for: RuntimeExpr when it holds .expr
	// programs, RuntimePython when it holds only Python modules (.py files), which the
	// Python engine imports from the directory or archive itself; Functions is then empty.
	Runtime string
	// PythonFunction is, for a Python bundle, the function run when HANDLER_FUNCTION is not
	// set: handler_module.handler when the bundle has a handler_module, else
	// <module>.handler when it holds one top-level module, else handler_module.handler.
	PythonFunction string

	files   map[string]entry
	archive []byte // the zip of the zip and url forms
}

// Runtimes a bundle's files call for.
const (
	RuntimeExpr   = "expr"
	RuntimePython = "python"
)

// PythonExt marks a Python module; a bundle of them runs on the Python engine.
const PythonExt = ".py"

// DefaultPythonModule is the module a Python handler is loaded as when nothing else names
// it: the custom course runtime's HANDLER_FUNCTION default is handler_module.handler.
const DefaultPythonModule = "handler_module"

// PythonFileFunction is the name of the function a single Python file runs when
// HANDLER_FUNCTION is not set: <stem>.handler for a .py file (usermodule.py runs
// usermodule.handler, as in the course runtime), and handler_module.handler for a file
// without the suffix (the custom course runtime's /app/pyfile/pyfile).
func PythonFileFunction(p string) string {
	base := filepath.Base(p)
	if ext := filepath.Ext(base); strings.EqualFold(ext, PythonExt) {
		return strings.TrimSuffix(base, ext) + "." + DefaultFunction
	}
	return DefaultPythonModule + "." + DefaultFunction
}

// Archive returns the zip a bundle of the zip or url form was read from (a Python bundle
// downloaded from ZIP_URL is imported from a copy of it), nil for the other forms.
func (b *Bundle) Archive() []byte { return b.archive }

// Function is one program of a bundle.
type Function struct {
	// Name is "module.function".
	Name   string
	Module string
	// File is the program's path inside the bundle (slash-separated), for messages.
	File string
	// Source is what to compile: the shared files' let bindings (if any) followed by the
	// program's own text. Position maps its line numbers back to files.
	Source []byte
	// ModTime is the latest modification time of the program and its shared files.
	ModTime time.Time
	// Shared lists the shared files prepended to Source, in order.
	Shared []string
	// TestFile is the path inside the bundle of the function's test cases, "" if none.
	TestFile string

	segments []segment
}

type segment struct {
	file  string
	lines int // lines the segment occupies in Source; the last segment's is unused
}

// Position maps a 1-based line of Source to the file it comes from and the line inside that
// file, so an error in a shared binding names _shared.expr and not the function.
func (f *Function) Position(line int) (string, int) {
	for i, s := range f.segments {
		if line <= s.lines || i == len(f.segments)-1 {
			return s.file, line
		}
		line -= s.lines
	}
	return f.File, line
}

// Function returns the function called name ("module.function"). A single-file bundle
// returns its only function whatever the name. An unknown name is an ErrUnknownFunction
// that lists the functions the bundle has.
func (b *Bundle) Function(name string) (*Function, error) {
	if b.Form == FormFile && len(b.Functions) == 1 {
		return b.Functions[0], nil
	}
	for _, f := range b.Functions {
		if f.Name == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("bundle %s: function %q: %w; the bundle has: %s", b.Origin, name,
		ErrUnknownFunction, strings.Join(b.Names(), ", "))
}

// Names lists the bundle's function names, sorted.
func (b *Bundle) Names() []string {
	names := make([]string, len(b.Functions))
	for i, f := range b.Functions {
		names[i] = f.Name
	}
	return names
}

// File returns the content of a file read from the bundle (programs, YAML and JSON files are
// read; Python modules are listed with no content; other files are only counted).
func (b *Bundle) File(name string) ([]byte, bool) {
	e, ok := b.files[name]
	return e.data, ok
}

// Files lists the paths of the files read from the bundle and of its Python modules, sorted.
func (b *Bundle) Files() []string {
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Path turns a path inside the bundle into one a user can open: joined to the directory for
// the dir and file forms, prefixed by the archive for zip, unchanged for url.
func (b *Bundle) Path(name string) string {
	switch b.Form {
	case FormDir:
		return filepath.Join(b.Origin, filepath.FromSlash(name))
	case FormFile:
		return filepath.Join(filepath.Dir(b.Origin), filepath.FromSlash(name))
	case FormZip:
		return b.Origin + "/" + name
	}
	return name
}

// Load reads a bundle from src, validates its layout and manifest, and returns it.
func Load(ctx context.Context, src Source) (*Bundle, error) {
	lim, err := src.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	pin, err := parsePin(src.SHA256)
	if err != nil {
		return nil, err
	}
	switch {
	case src.URL != "" && src.Path != "":
		return nil, fmt.Errorf("bundle: both a path (%s) and a URL are set; use one", src.Path)
	case src.URL != "":
		data, origin, err := fetch(ctx, src.URL, src.AllowHTTP, src.Fetch, lim)
		if err != nil {
			return nil, err
		}
		return loadZip(FormURL, origin, data, time.Now(), pin, lim)
	case src.Path == "":
		return nil, errors.New("bundle: no path or URL given")
	}
	p := src.Path
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if info.IsDir() {
		if pin != "" {
			return nil, fmt.Errorf("bundle %s: a SHA-256 pin applies only to zip archives, this is a directory", p)
		}
		files, err := readDir(ctx, p, lim)
		if err != nil {
			return nil, err
		}
		return assemble(FormDir, p, files)
	}
	data, err := readFileLimited(p, lim.MaxArchiveBytes)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if isZip(p, data) {
		return loadZip(FormZip, p, data, info.ModTime(), pin, lim)
	}
	if pin != "" {
		return nil, fmt.Errorf("bundle %s: a SHA-256 pin applies only to zip archives, this is a program file", p)
	}
	if isPython(p) {
		// A Python file is imported by the Python engine, not read here.
		return &Bundle{Form: FormFile, Origin: p, Runtime: RuntimePython, PythonFunction: PythonFileFunction(p),
			files: map[string]entry{filepath.Base(p): {mod: info.ModTime()}}}, nil
	}
	if int64(len(data)) > lim.MaxFileBytes {
		return nil, fmt.Errorf("bundle %s: %d bytes, limit %d: %w", p, len(data), lim.MaxFileBytes, ErrTooLarge)
	}
	return loadSingle(p, data, info.ModTime(), lim)
}

func isZip(p string, data []byte) bool {
	return bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06")) ||
		strings.EqualFold(filepath.Ext(p), ".zip")
}

func loadZip(form Form, origin string, data []byte, mod time.Time, pin string, lim Limits) (*Bundle, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if pin != "" && pin != digest {
		return nil, fmt.Errorf("bundle %s: sha256 is %s, pinned %s: %w", origin, digest, pin, ErrChecksum)
	}
	files, err := readZip(origin, data, mod, lim)
	if err != nil {
		return nil, err
	}
	b, err := assemble(form, origin, files)
	if err != nil {
		return nil, err
	}
	b.SHA256 = digest
	b.archive = data
	return b, nil
}

// loadSingle builds the bundle of one program file, with its sibling test file if present.
func loadSingle(p string, data []byte, mod time.Time, lim Limits) (*Bundle, error) {
	base := filepath.Base(p)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	files := map[string]entry{base: {data: data, mod: mod}}
	testName := stem + TestExt
	if td, err := readFileLimited(filepath.Join(filepath.Dir(p), testName), lim.MaxFileBytes); err == nil {
		files[testName] = entry{data: td}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	f := &Function{
		Name:     stem + "." + DefaultFunction,
		Module:   stem,
		File:     base,
		Source:   data,
		ModTime:  mod,
		segments: []segment{{file: base}},
	}
	if _, ok := files[testName]; ok {
		f.TestFile = testName
	}
	return &Bundle{Form: FormFile, Origin: p, Functions: []*Function{f}, files: files}, nil
}

func readFileLimited(p string, limit int64) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", p, limit, ErrTooLarge)
	}
	return data, nil
}

// wanted says whether a bundle file's content is read; the rest is only counted, so a large
// asset in a directory or archive costs nothing.
func wanted(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".expr", ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// hidden reports whether any element of a slash path starts with '.', which Load skips.
func hidden(name string) bool {
	for _, el := range strings.Split(name, "/") {
		if strings.HasPrefix(el, ".") {
			return true
		}
	}
	return false
}

// maxDepth bounds directory recursion, so a symlink loop ends in an error.
const maxDepth = 16

func readDir(ctx context.Context, root string, lim Limits) (map[string]entry, error) {
	files := map[string]entry{}
	var count int
	var total int64
	var walk func(dir, rel string, depth int) error
	walk = func(dir, rel string, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if depth > maxDepth {
			return fmt.Errorf("bundle %s: %s: deeper than %d directories (a symlink loop?): %w", root, rel, maxDepth, ErrInvalid)
		}
		des, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		for _, de := range des {
			name := de.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			full := filepath.Join(dir, name)
			relName := path.Join(rel, name)
			// Stat follows symlinks: a ConfigMap's keys are symlinks into ..data.
			info, err := os.Stat(full)
			if err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			if info.IsDir() {
				if err := walk(full, relName, depth+1); err != nil {
					return err
				}
				continue
			}
			if !info.Mode().IsRegular() {
				continue
			}
			count++
			if count > lim.MaxEntries {
				return fmt.Errorf("bundle %s: more than %d files: %w", root, lim.MaxEntries, ErrTooManyEntries)
			}
			if !wanted(name) {
				if isPython(relName) {
					files[relName] = entry{mod: info.ModTime()}
				}
				continue
			}
			data, err := readFileLimited(full, lim.MaxFileBytes)
			if err != nil {
				return fmt.Errorf("bundle: %w", err)
			}
			total += int64(len(data))
			if total > lim.MaxTotalBytes {
				return fmt.Errorf("bundle %s: files total more than %d bytes: %w", root, lim.MaxTotalBytes, ErrTooLarge)
			}
			files[relName] = entry{data: data, mod: info.ModTime()}
		}
		return nil
	}
	if err := walk(root, "", 0); err != nil {
		return nil, err
	}
	return files, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
