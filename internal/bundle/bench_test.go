package bundle

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

const exampleBundle = "../../examples/bundle"

// exampleFiles reads examples/bundle into a map, for building an archive of it.
func exampleFiles(b *testing.B) map[string]string {
	files := map[string]string{}
	err := filepath.WalkDir(exampleBundle, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(exampleBundle, p)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return files
}

// Hot reload loads the bundle again on every change: this is its cost for the example.
func BenchmarkLoadDir(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(context.Background(), Source{Path: exampleBundle}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadZip(b *testing.B) {
	p := filepath.Join(b.TempDir(), "b.zip")
	if err := os.WriteFile(p, zipMap(b, exampleFiles(b)), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(context.Background(), Source{Path: p}); err != nil {
			b.Fatal(err)
		}
	}
}
