package pyengine

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/eventrt/eventrt/internal/clock"
)

// maxSourceBytes bounds a single-file handler, which is read into memory and sent to the worker.
const maxSourceBytes = 8 << 20

// spec is where the worker finds the handler.
type spec struct {
	path     string // the file, directory or zip as configured (absolute)
	root     string // put first on sys.path
	module   string // imported (bundle) or the name given to the single file's module
	function string
	source   []byte // a single file's content, compiled from memory; nil for bundles
}

// resolve fills defaults, validates o and works out the spec.
func resolve(o Options) (Options, spec, error) {
	if o.Python == "" {
		o.Python = DefaultPython
	}
	if o.File == "" {
		o.File = DefaultFile
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.MaxOutputBytes == 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if o.RestartBackoff == 0 {
		o.RestartBackoff = DefaultRestartBackoff
	}
	if o.MaxRestartBackoff == 0 {
		o.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	switch {
	case o.Timeout < 0:
		return o, spec{}, fmt.Errorf("pyengine: timeout %v is negative", o.Timeout)
	case o.StartTimeout < 0:
		return o, spec{}, fmt.Errorf("pyengine: start timeout %v is negative", o.StartTimeout)
	case o.MaxOutputBytes < 0:
		return o, spec{}, fmt.Errorf("pyengine: max output bytes %d is negative", o.MaxOutputBytes)
	case o.RestartBackoff < 0 || o.MaxRestartBackoff < 0:
		return o, spec{}, errors.New("pyengine: restart backoff is negative")
	}

	path, err := filepath.Abs(o.File)
	if err != nil {
		return o, spec{}, fmt.Errorf("pyengine: handler path %s: %w", o.File, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return o, spec{}, fmt.Errorf("pyengine: handler path: %w", err)
	}
	s := spec{path: path}
	if fi.IsDir() || IsZip(path) {
		if o.Function == "" {
			o.Function = DefaultBundleFunction
		}
		mod, fn, ok := cutLast(o.Function)
		if !ok || !validDotted(o.Function) {
			return o, spec{}, fmt.Errorf("pyengine: function %q for bundle %s: want module.function, e.g. %s", o.Function, o.File, DefaultBundleFunction)
		}
		s.root, s.module, s.function = path, mod, fn
	} else {
		if o.Function == "" {
			o.Function = DefaultFunction
		}
		if !validDotted(o.Function) {
			return o, spec{}, fmt.Errorf("pyengine: function %q for %s: want a function name, e.g. %s", o.Function, o.File, DefaultFunction)
		}
		mod, fn, _ := cutLast(o.Function)
		if mod == "" {
			// The course runtime imported the file under the name usermodule, whatever its
			// name; a module named by the function (handler_module.handler, the custom course
			// runtime's PYFILE_PATH) is the name it is loaded as.
			mod = "usermodule"
		}
		if fi.Size() > maxSourceBytes {
			return o, spec{}, fmt.Errorf("pyengine: handler file %s is %d bytes, more than %d", o.File, fi.Size(), maxSourceBytes)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return o, spec{}, fmt.Errorf("pyengine: handler file: %w", err)
		}
		s.root, s.module, s.function, s.source = filepath.Dir(path), mod, fn, src
	}
	if o.Name == "" {
		mod := s.module
		if s.source != nil {
			mod = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		}
		o.Name = mod + "." + s.function
	}
	return o, s, nil
}

// IsZip reports whether path is a zip archive, by extension or by content: how a handler
// bundle of Python packages is recognised.
func IsZip(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".zip") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "PK\x03\x04"
}

// cutLast splits "a.b.c" into "a.b" and "c".
func cutLast(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

// validDotted accepts dotted Python identifiers (ASCII letters, digits, underscores).
func validDotted(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || (part[0] >= '0' && part[0] <= '9') {
			return false
		}
		for _, c := range part {
			if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
				return false
			}
		}
	}
	return true
}

// hashHandler identifies the handler: its files' paths and contents, and the function.
func hashHandler(s spec, function string) (string, error) {
	h := sha256.New()
	switch {
	case s.source != nil:
		h.Write(s.source)
	case IsZip(s.path):
		if err := hashZip(h, s.path); err != nil {
			return "", err
		}
	default:
		err := filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// A mounted ConfigMap is a directory of symlinks into a hidden ..data directory:
			// follow the links, and skip the hidden copies so that each file counts once.
			if d.IsDir() && p != s.path && (d.Name() == "__pycache__" || strings.HasPrefix(d.Name(), "..")) {
				return fs.SkipDir
			}
			if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			fi, statErr := os.Stat(p)
			if statErr != nil || !fi.Mode().IsRegular() {
				return nil // a dangling link or a link to a directory: not a module file
			}
			rel, _ := filepath.Rel(s.path, p)
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), fi.Size())
			_, err = io.Copy(h, f)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("pyengine: hashing bundle %s: %w", s.path, err)
		}
	}
	fmt.Fprintf(h, "\x00%s", function)
	return hex.EncodeToString(h.Sum(nil))[:16], nil // as long as an expr program's
}

func hashZip(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pyengine: bundle %s: %w", path, err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("pyengine: bundle %s: %w", path, err)
	}
	// Refuse what zipimport cannot read now rather than at import with a vaguer message.
	z, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("pyengine: bundle %s: %w", path, err)
	}
	return z.Close()
}
