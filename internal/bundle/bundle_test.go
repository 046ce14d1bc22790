package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
)

// writeTree writes files (slash paths relative to dir) and returns dir.
func writeTree(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// zipOf builds an archive of deflated entries, in the order given.
func zipOf(t testing.TB, names []string, contents []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(contents[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipMap(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var names, contents []string
	for n, c := range files {
		names = append(names, n)
		contents = append(contents, c)
	}
	return zipOf(t, names, contents)
}

func writeFile(t *testing.T, p string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, src Source) (*Bundle, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Load(ctx, src)
}

func mustLoad(t *testing.T, src Source) *Bundle {
	t.Helper()
	b, err := load(t, src)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return b
}

var layoutFiles = map[string]string{
	"metrics/classic.expr":        "input.a + 1",
	"metrics/stateless.expr":      "input.a * 2",
	"metrics/classic.test.yaml":   "cases: []",
	"handler_module.expr":         "input",
	"flat.fn.expr":                "1",
	"README.md":                   "not read",
	"metrics/notes.txt":           "not read",
	".git/objects/x.expr":         "hidden: never a function",
	"metrics/.classic.expr.swp":   "editor swap file",
	"testdata/sample.json":        `{"a": 1}`,
	"metrics/testdata/other.json": `{"a": 2}`,
}

func TestLoadDirectoryLayout(t *testing.T) {
	dir := writeTree(t, t.TempDir(), layoutFiles)
	b := mustLoad(t, Source{Path: dir})
	if b.Form != FormDir || b.Origin != dir {
		t.Fatalf("form %q origin %q", b.Form, b.Origin)
	}
	want := []string{"flat.fn", "handler_module.handler", "metrics.classic", "metrics.stateless"}
	if got := b.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	f, err := b.Function("metrics.classic")
	if err != nil {
		t.Fatal(err)
	}
	if f.File != "metrics/classic.expr" || string(f.Source) != "input.a + 1" || f.Module != "metrics" {
		t.Fatalf("function %+v", f)
	}
	if f.TestFile != "metrics/classic.test.yaml" {
		t.Fatalf("test file %q", f.TestFile)
	}
	if f.ModTime.IsZero() {
		t.Fatal("zero ModTime")
	}
	if h, _ := b.Function("handler_module.handler"); h.File != "handler_module.expr" || h.TestFile != "" {
		t.Fatalf("single-function module %+v", h)
	}
	if _, ok := b.File("README.md"); ok {
		t.Fatal("README.md was read; only program, YAML and JSON files are")
	}
	if data, ok := b.File("testdata/sample.json"); !ok || string(data) != `{"a": 1}` {
		t.Fatalf("testdata/sample.json: %q %v", data, ok)
	}
	if got := b.Path("metrics/classic.expr"); got != filepath.Join(dir, "metrics", "classic.expr") {
		t.Fatalf("Path: %s", got)
	}
}

func TestUnknownFunctionListsFunctions(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"a/x.expr": "1", "b.expr": "2"})
	b := mustLoad(t, Source{Path: dir})
	_, err := b.Function("a.y")
	if !IsUnknownFunction(err) {
		t.Fatalf("want ErrUnknownFunction, got %v", err)
	}
	for _, s := range []string{`"a.y"`, "a.x, b.handler", dir} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

func TestLoadSingleFile(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"classic.expr":      "input",
		"classic.test.yaml": "cases: []",
		"other.expr":        "not part of the bundle",
	})
	p := filepath.Join(dir, "classic.expr")
	b := mustLoad(t, Source{Path: p})
	if b.Form != FormFile || len(b.Functions) != 1 {
		t.Fatalf("form %q, %d functions", b.Form, len(b.Functions))
	}
	for _, name := range []string{"classic.handler", "handler_module.handler", "anything.at_all"} {
		f, err := b.Function(name)
		if err != nil {
			t.Fatalf("Function(%q): %v", name, err)
		}
		if f.Name != "classic.handler" || f.File != "classic.expr" || string(f.Source) != "input" {
			t.Fatalf("function %+v", f)
		}
	}
	if b.Functions[0].TestFile != "classic.test.yaml" {
		t.Fatalf("sibling test file not found: %q", b.Functions[0].TestFile)
	}
	if b.Path("classic.expr") != p {
		t.Fatalf("Path: %s", b.Path("classic.expr"))
	}
	if _, err := load(t, Source{Path: p, SHA256: strings.Repeat("a", 64)}); err == nil {
		t.Fatal("a pin on a program file was accepted")
	}
}

func TestLoadZip(t *testing.T) {
	files := map[string]string{}
	for k, v := range layoutFiles {
		files[k] = v
	}
	files["metrics/"] = "" // a directory entry, skipped
	data := zipMap(t, files)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	// No .zip extension: the content says it is an archive.
	p := writeFile(t, filepath.Join(t.TempDir(), "bundle"), data)
	b := mustLoad(t, Source{Path: p})
	if b.Form != FormZip || b.SHA256 != digest {
		t.Fatalf("form %q sha %q", b.Form, b.SHA256)
	}
	if got := b.Names(); !reflect.DeepEqual(got, []string{"flat.fn", "handler_module.handler", "metrics.classic", "metrics.stateless"}) {
		t.Fatalf("names %v", got)
	}
	f, _ := b.Function("metrics.classic")
	if !f.ModTime.Equal(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("ModTime %v, want the entry's", f.ModTime)
	}
	if f.TestFile != "metrics/classic.test.yaml" {
		t.Fatalf("test file %q", f.TestFile)
	}
	if b.Path(f.File) != p+"/metrics/classic.expr" {
		t.Fatalf("Path %s", b.Path(f.File))
	}

	if _, err := load(t, Source{Path: p, SHA256: "SHA256:" + strings.ToUpper(digest)}); err != nil {
		t.Fatalf("matching pin refused: %v", err)
	}
	_, err := load(t, Source{Path: p, SHA256: strings.Repeat("0", 64)})
	if !IsChecksum(err) || !IsRefused(err) || !strings.Contains(err.Error(), digest) {
		t.Fatalf("want a checksum error naming the digest, got %v", err)
	}
	if _, err := load(t, Source{Path: p, SHA256: "abc"}); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("malformed pin: %v", err)
	}
}

// TestLoadConfigMapMount reproduces the directory Kubernetes mounts for a ConfigMap: keys are
// symlinks to ..data/<key>, ..data is a symlink to a timestamped directory.
func TestLoadConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	ts := "..2026_11_01_12_00_00.000000001"
	writeTree(t, filepath.Join(dir, ts), map[string]string{
		"handler_module.expr":       "input",
		"metrics.classic.expr":      "input.a",
		"metrics.classic.test.yaml": "cases: []",
		"metrics._shared.expr":      "let k = 1;",
		"eventrt.yaml":              "functions:\n- name: metrics.classic\n  input_key: metrics\n  output_key: out\n",
	})
	symlink(t, ts, filepath.Join(dir, "..data"))
	for _, k := range []string{"handler_module.expr", "metrics.classic.expr", "metrics.classic.test.yaml", "metrics._shared.expr", "eventrt.yaml"} {
		symlink(t, filepath.Join("..data", k), filepath.Join(dir, k))
	}
	b := mustLoad(t, Source{Path: dir})
	if got := b.Names(); !reflect.DeepEqual(got, []string{"handler_module.handler", "metrics.classic"}) {
		t.Fatalf("names %v (the ..data view must not be read twice)", got)
	}
	f, _ := b.Function("metrics.classic")
	if !reflect.DeepEqual(f.Shared, []string{"metrics._shared.expr"}) || f.TestFile != "metrics.classic.test.yaml" {
		t.Fatalf("function %+v", f)
	}
	if b.Manifest == nil || b.Manifest.Functions[0].Name != "metrics.classic" {
		t.Fatalf("manifest %+v", b.Manifest)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestSharedBindings(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"_shared.expr":         "// bundle-wide\nlet scale = 100;\n",
		"metrics/_shared.expr": "let sent = input.sent;\nlet recv = input.recv",
		"metrics/egress.expr":  "let total = sent + recv;\nsent / total * scale",
		"metrics/broken.expr":  "let x = 1;\nsent + nope(",
		"other/plain.expr":     "scale",
	})
	b := mustLoad(t, Source{Path: dir})
	f, _ := b.Function("metrics.egress")
	if !reflect.DeepEqual(f.Shared, []string{"_shared.expr", "metrics/_shared.expr"}) {
		t.Fatalf("shared %v", f.Shared)
	}
	prog, err := expr.Compile(string(f.Source))
	if err != nil {
		t.Fatalf("compile %q: %v", f.Source, err)
	}
	out, err := expr.Run(prog, map[string]any{"input": map[string]any{"sent": 25, "recv": 75}})
	if err != nil || out != float64(25) {
		t.Fatalf("run: %v %v", out, err)
	}
	// Line numbers of the composed source map back to the files they come from.
	for line, want := range map[int]struct {
		file string
		line int
	}{
		1: {"_shared.expr", 1}, 2: {"_shared.expr", 2},
		3: {"metrics/_shared.expr", 1}, 4: {"metrics/_shared.expr", 2},
		// The `;` left out after the module's last binding is added on line 5.
		5: {"metrics/_shared.expr", 3},
		6: {"metrics/egress.expr", 1}, 7: {"metrics/egress.expr", 2},
	} {
		if gf, gl := f.Position(line); gf != want.file || gl != want.line {
			t.Errorf("Position(%d) = %s:%d, want %s:%d", line, gf, gl, want.file, want.line)
		}
	}
	// A compile error in the function's own text points at its own line.
	broken, _ := b.Function("metrics.broken")
	_, err = expr.Compile(string(broken.Source))
	var fe *file.Error
	if !errors.As(err, &fe) {
		t.Fatalf("want a *file.Error, got %v", err)
	}
	if gf, gl := broken.Position(fe.Line); gf != "metrics/broken.expr" || gl != 2 {
		t.Fatalf("error at composed line %d maps to %s:%d, want metrics/broken.expr:2", fe.Line, gf, gl)
	}
	// The bundle-wide file applies to other modules too.
	plain, _ := b.Function("other.plain")
	if !reflect.DeepEqual(plain.Shared, []string{"_shared.expr"}) {
		t.Fatalf("other.plain shared %v", plain.Shared)
	}
}

func TestSharedBindingsRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		shared, want string
	}{
		"not a let":    {"let a = 1;\na + 1", "_shared.expr:2:"},
		"syntax error": {"let a = 1;\nlet b = (;", "_shared.expr:2:"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeTree(t, t.TempDir(), map[string]string{"m/_shared.expr": tc.shared, "m/f.expr": "1"})
			_, err := load(t, Source{Path: dir})
			if !IsInvalid(err) || !strings.Contains(err.Error(), "m/"+tc.want) {
				t.Fatalf("want an invalid-bundle error naming m/%s, got %v", tc.want, err)
			}
		})
	}
}

func TestLayoutErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"too many dots":  {map[string]string{"a.b.c.expr": "1"}, "a.b.c.expr: too many dots"},
		"too deep":       {map[string]string{"a/b/c.expr": "1"}, "a/b/c.expr: too deep"},
		"dot in module":  {map[string]string{"a/b.c.expr": "1"}, "a/b.c.expr"},
		"duplicate":      {map[string]string{"m.expr": "1", "m/handler.expr": "2"}, "function m.handler is also defined by"},
		"duplicate flat": {map[string]string{"m.f.expr": "1", "m/f.expr": "2"}, "function m.f is also defined by"},
		"bad module":     {map[string]string{"-m/f.expr": "1"}, `module name "-m"`},
		"two shared":     {map[string]string{"m._shared.expr": "let a = 1;", "m/_shared.expr": "let a = 1;", "m/f.expr": "1"}, "already has shared bindings"},
		"no functions":   {map[string]string{"README.md": "hi"}, "no functions found"},
		"yml manifest":   {map[string]string{"m.expr": "1", "eventrt.yml": "functions: []"}, "must be named eventrt.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeTree(t, t.TempDir(), tc.files)
			_, err := load(t, Source{Path: dir})
			if !IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an invalid-bundle error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestSourceErrors(t *testing.T) {
	if _, err := load(t, Source{}); err == nil {
		t.Fatal("empty source accepted")
	}
	if _, err := load(t, Source{Path: "x", URL: "https://example.invalid/b.zip"}); err == nil {
		t.Fatal("path and URL together accepted")
	}
	if _, err := load(t, Source{Path: t.TempDir(), Limits: Limits{MaxEntries: -1}}); err == nil {
		t.Fatal("negative limit accepted")
	}
	_, err := load(t, Source{Path: filepath.Join(t.TempDir(), "missing")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing path: %v", err)
	}
	dir := writeTree(t, t.TempDir(), map[string]string{"m.expr": "1"})
	if _, err := load(t, Source{Path: dir, SHA256: strings.Repeat("a", 64)}); err == nil {
		t.Fatal("a pin on a directory was accepted")
	}
}

func TestDirectoryLimits(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"m.expr": "1", "a.txt": "", "b.txt": "", "big.json": strings.Repeat(" ", 2000)})
	_, err := load(t, Source{Path: dir, Limits: Limits{MaxEntries: 3}})
	if !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("want ErrTooManyEntries, got %v", err)
	}
	_, err = load(t, Source{Path: dir, Limits: Limits{MaxFileBytes: 1000}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "big.json") {
		t.Fatalf("want ErrTooLarge naming big.json, got %v", err)
	}
}
