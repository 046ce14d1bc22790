package bundle

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRuntimeFollowsTheFiles: a bundle's runtime is the one its files call for, and a Python
// bundle names the function it runs by default the way the daemon and the CLI both print it.
func TestRuntimeFollowsTheFiles(t *testing.T) {
	for _, c := range []struct {
		name    string
		files   map[string]string
		runtime string
		fn      string
	}{
		{"expr", map[string]string{"maxcpu.expr": "1"}, RuntimeExpr, ""},
		{"expr beside python", map[string]string{"maxcpu.expr": "1", "helper.py": ""}, RuntimeExpr, ""},
		{"course modules", map[string]string{"handler_module.py": "", "helpers.py": ""}, RuntimePython, "handler_module.handler"},
		{"package", map[string]string{"handler_module/__init__.py": "", "other.py": ""}, RuntimePython, "handler_module.handler"},
		{"one module", map[string]string{"usermodule.py": "", "usermodule.test.yaml": "cases: []"}, RuntimePython, "usermodule.handler"},
		{"several modules", map[string]string{"a.py": "", "b.py": ""}, RuntimePython, "handler_module.handler"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTree(t, t.TempDir(), c.files)
			zipPath := filepath.Join(t.TempDir(), "h.zip")
			if err := os.WriteFile(zipPath, zipMap(t, c.files), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{dir, zipPath} {
				b, err := Load(context.Background(), Source{Path: p})
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if b.Runtime != c.runtime || b.PythonFunction != c.fn {
					t.Errorf("%s: runtime %q function %q, want %q %q", p, b.Runtime, b.PythonFunction, c.runtime, c.fn)
				}
				if p == zipPath && c.runtime == RuntimePython && len(b.Archive()) == 0 {
					t.Errorf("%s: a Python zip keeps no archive to import from", p)
				}
			}
		})
	}
}

func TestPythonFileFunction(t *testing.T) {
	for p, want := range map[string]string{
		"/opt/usermodule.py": "usermodule.handler",
		"maxcpu.PY":          "maxcpu.handler",
		"/app/pyfile/pyfile": "handler_module.handler",
	} {
		if got := PythonFileFunction(p); got != want {
			t.Errorf("PythonFileFunction(%q) = %q, want %q", p, got, want)
		}
	}
	p := filepath.Join(t.TempDir(), "maxcpu.py")
	if err := os.WriteFile(p, []byte("def handler(i, c): return i\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), Source{Path: p})
	if err != nil || b.Runtime != RuntimePython || b.PythonFunction != "maxcpu.handler" {
		t.Fatalf("Load(%s): %+v, %v", p, b, err)
	}
}

func TestPythonBundleRefusesAManifest(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"handler_module.py": "", ManifestFile: "functions: []"})
	if _, err := Load(context.Background(), Source{Path: dir}); !IsManifest(err) {
		t.Fatalf("a manifest beside Python modules: %v, want a manifest error", err)
	}
}
