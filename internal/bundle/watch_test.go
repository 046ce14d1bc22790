package bundle

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// waitTimeout bounds every wait for a callback; it is a failure bound, not a timing claim.
const waitTimeout = 10 * time.Second

// startWatch watches p and returns a channel that receives once per callback.
func startWatch(t *testing.T, p string) (<-chan struct{}, *Watcher, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{}, 64)
	w, err := WatchWith(ctx, p, WatchOptions{Debounce: 20 * time.Millisecond, OnError: func(err error) { t.Logf("watch error: %v", err) }},
		func() { ch <- struct{}{} })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-w.Done()
	})
	return ch, w, cancel
}

func waitChange(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("no callback after %s", what)
	}
	// Later events of the same change may produce one more callback; drop it so that the
	// next wait sees the next change.
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestWatchDirectory(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"m/f.expr": "1", "eventrt.yaml": "functions: []"})
	ch, _, _ := startWatch(t, dir)

	writeFile(t, filepath.Join(dir, "m", "f.expr"), []byte("2"))
	waitChange(t, ch, "editing a function in a module directory")

	writeFile(t, filepath.Join(dir, "eventrt.yaml"), []byte("functions: [{}]"))
	waitChange(t, ch, "editing the manifest")

	if err := os.Mkdir(filepath.Join(dir, "n"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitChange(t, ch, "creating a module directory")
	// The new directory is watched by the time its creation was reported.
	writeFile(t, filepath.Join(dir, "n", "g.expr"), []byte("3"))
	waitChange(t, ch, "writing a function in the new module directory")

	if err := os.Remove(filepath.Join(dir, "m", "f.expr")); err != nil {
		t.Fatal(err)
	}
	waitChange(t, ch, "removing a function")
}

func TestWatchSingleFileReplacedByRename(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"handler.expr": "1"})
	p := filepath.Join(dir, "handler.expr")
	ch, _, _ := startWatch(t, p)

	// Editors and deploy tools write a new file and rename it over the old one, which ends
	// a watch held on the file itself.
	for i, content := range []string{"2", "3"} {
		tmp := filepath.Join(dir, "handler.expr.new")
		writeFile(t, tmp, []byte(content))
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		waitChange(t, ch, "replacing the file, round "+string(rune('1'+i)))
	}
	writeFile(t, p, []byte("4"))
	waitChange(t, ch, "writing the file in place")
}

func TestWatchZip(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "b.zip"), zipMap(t, map[string]string{"m.expr": "1"}))
	ch, _, _ := startWatch(t, p)
	writeFile(t, p, zipMap(t, map[string]string{"m.expr": "2"}))
	waitChange(t, ch, "rewriting the zip")
	b := mustLoad(t, Source{Path: p})
	if f, _ := b.Function("m.handler"); string(f.Source) != "2" {
		t.Fatalf("source after reload %q", f.Source)
	}
}

// configMap lays out dir the way the kubelet's atomic writer does and returns a function
// that publishes a new version the same way: a new timestamped directory, a `..data_tmp`
// symlink to it renamed over `..data`, the old directory removed.
func configMap(t *testing.T, dir string, files map[string]string) func(files map[string]string) {
	t.Helper()
	version := 0
	publish := func(files map[string]string) {
		version++
		ts := "..2026_11_25_12_00_0" + string(rune('0'+version)) + ".000000001"
		writeTree(t, filepath.Join(dir, ts), files)
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		tmp := filepath.Join(dir, "..data_tmp")
		symlink(t, ts, tmp)
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		for k := range files {
			link := filepath.Join(dir, k)
			if _, err := os.Lstat(link); os.IsNotExist(err) {
				symlink(t, filepath.Join("..data", k), link)
			}
		}
		// Keys that were removed lose their symlink.
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			if _, keep := files[de.Name()]; !keep && de.Type()&os.ModeSymlink != 0 && de.Name()[0] != '.' {
				if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(files)
	return publish
}

func TestWatchConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	manifest := "functions:\n  - {name: handler_module.handler, input_key: i, output_key: o}\n"
	publish := configMap(t, dir, map[string]string{"handler_module.expr": "1", "eventrt.yaml": manifest})
	ch, _, _ := startWatch(t, dir)

	publish(map[string]string{"handler_module.expr": "2", "eventrt.yaml": manifest})
	waitChange(t, ch, "the ..data symlink swap")
	b := mustLoad(t, Source{Path: dir})
	if f, _ := b.Function("handler_module.handler"); string(f.Source) != "2" || b.Manifest == nil {
		t.Fatalf("after the first swap: %q, manifest %v", f.Source, b.Manifest)
	}
	// A version that drops a key (the manifest) and adds another.
	publish(map[string]string{"handler_module.expr": "3", "extra.expr": "4"})
	waitChange(t, ch, "a second swap")
	b = mustLoad(t, Source{Path: dir})
	if f, _ := b.Function("handler_module.handler"); string(f.Source) != "3" || b.Manifest != nil || len(b.Functions) != 2 {
		t.Fatalf("after the second swap: %q, manifest %v, functions %v", f.Source, b.Manifest, b.Names())
	}
}

// A single program file mounted from a ConfigMap is a symlink into ..data: the swap changes
// ..data, never the file's own directory entry.
func TestWatchConfigMapSingleFile(t *testing.T) {
	dir := t.TempDir()
	publish := configMap(t, dir, map[string]string{"handler.expr": "1"})
	p := filepath.Join(dir, "handler.expr")
	ch, _, _ := startWatch(t, p)
	publish(map[string]string{"handler.expr": "2"})
	waitChange(t, ch, "the ..data swap under a single file")
	f, _ := mustLoad(t, Source{Path: p}).Function("")
	if string(f.Source) != "2" {
		t.Fatalf("source %q", f.Source)
	}
}

func TestWatchStops(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{"m.expr": "1"})
	_, w, cancel := startWatch(t, dir)
	cancel()
	select {
	case <-w.Done():
	case <-time.After(waitTimeout):
		t.Fatal("watch did not stop after cancel")
	}
}

func TestWatchErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Watch(ctx, filepath.Join(t.TempDir(), "missing"), func() {}); err == nil {
		t.Fatal("missing path accepted")
	}
	if _, err := Watch(ctx, t.TempDir(), nil); err == nil {
		t.Fatal("nil callback accepted")
	}
	if _, err := WatchWith(ctx, t.TempDir(), WatchOptions{Debounce: -1}, func() {}); err == nil {
		t.Fatal("negative debounce accepted")
	}
}

func TestWatchRelevant(t *testing.T) {
	root := "/cfg"
	ev := func(name string) fsnotify.Event { return fsnotify.Event{Name: name, Op: fsnotify.Create} }
	for _, tc := range []struct {
		only, name string
		want       bool
	}{
		{"", "/cfg/m.expr", true},
		{"", "/cfg/m/f.expr", true},
		{"", "/cfg/..data", true},
		{"", "/cfg/..data_tmp", true},
		{"", "/cfg/.m.expr.swp", false},
		{"", "/cfg/m/.f.expr.swp", false},
		{"", "/cfg/m/..data", false},
		{"handler.expr", "/cfg/handler.expr", true},
		{"handler.expr", "/cfg/..data", true},
		{"handler.expr", "/cfg/other.expr", false},
		{"handler.expr", "/cfg/handler.expr.new", false},
	} {
		if got := relevant(root, tc.only, ev(tc.name)); got != tc.want {
			t.Errorf("relevant(only=%q, %s) = %v, want %v", tc.only, tc.name, got, tc.want)
		}
	}
}
