package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
)

// configMapDir lays out a directory the way Kubernetes mounts a ConfigMap: the keys are
// symlinks into ..data, itself a symlink to a timestamped directory, and an update swaps ..data
// atomically.
type configMapDir struct {
	t    *testing.T
	root string
	gen  int
}

func newConfigMapDir(t *testing.T, files map[string]string) *configMapDir {
	c := &configMapDir{t: t, root: t.TempDir()}
	c.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(c.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *configMapDir) update(files map[string]string) {
	c.t.Helper()
	c.gen++
	dir := fmt.Sprintf("..2026_11_25_%02d", c.gen)
	if err := os.Mkdir(filepath.Join(c.root, dir), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(c.root, dir, name), []byte(body), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	tmp := filepath.Join(c.root, "..data_tmp")
	if err := os.Symlink(dir, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.root, "..data")); err != nil {
		c.t.Fatal(err)
	}
}

// Hot reload through a ConfigMap symlink swap while events keep arriving: a good version is
// swapped in between executions, a bad one is rejected and the good one keeps running, and
// the last value written is executed.
func TestHotReloadWhileEventsArrive(t *testing.T) {
	srv := redistest.Start(t)
	cm := newConfigMapDir(t, map[string]string{"handler_module.expr": `{"v": 1, "n": input.n, "mtime": context.function_getmtime}`})
	d := startDaemon(t, srv, map[string]string{"HANDLER_PATH": cm.root})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	last := 0
	wg.Add(1)
	go func() { // a writer that keeps the function busy for the whole test
		defer wg.Done()
		c := srv.Client()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.Do(t.Context(), c.B().Set().Key("metrics").Value(fmt.Sprintf(`{"n": %d}`, i)).Build()).Error(); err != nil {
				return
			}
			mu.Lock()
			last = i
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // pacing of the load, not synchronisation
		}
	}()
	out := watchOutput(t, srv, "output")
	awaitVersion := func(v float64) map[string]any {
		t.Helper()
		for {
			o := out.next()
			if o["v"] == v {
				return o
			}
		}
	}
	first := awaitVersion(1)
	cm.update(map[string]string{"handler_module.expr": `{"v": 2, "n": input.n, "mtime": context.function_getmtime}`})
	second := awaitVersion(2)
	if second["mtime"] == first["mtime"] {
		// The new files are newer only by the resolution of the file system clock.
		t.Logf("function_getmtime unchanged (%v): same second", second["mtime"])
	}
	d.awaitMetric(`eventrt_reloads_total{function="handler_module.handler",outcome="success"}`, 1)
	if strings.Contains(d.logs.String(), "stopping function") {
		t.Fatal("a program change restarted the function instead of swapping its handler")
	}

	cm.update(map[string]string{"handler_module.expr": `{"v": 3, "n": input.n +* 1}`})
	d.awaitMetric(`eventrt_reloads_total{function="handler_module.handler",outcome="failure"}`, 1)
	if !strings.Contains(d.logs.String(), "handler_module.expr:1:") {
		t.Errorf("rejected reload not logged with file:line:column:\n%s", d.logs.String())
	}
	// The good version keeps running.
	if o := out.next(); o["v"] != 2.0 {
		t.Fatalf("after a bad reload the output is %v", o)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	want := float64(last)
	mu.Unlock()
	// No event is lost: the last value written is the last executed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n float64
		fmt.Sscan(strings.TrimSuffix(strings.SplitN(srv.Do("GET", "output"), `"n":`, 2)[1], "}"), &n)
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last value %v never executed (output %s)", want, srv.Do("GET", "output"))
		}
		out.next()
	}
}

// A manifest runs two functions side by side; one failing does not stop or delay the other,
// and metrics carry each function's name.
func TestManifestRunsFunctionsIndependently(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	files := map[string]string{
		"eventrt.yaml": `functions:
  - name: good.handler
    input_key: in:a
    output_key: out:a
  - name: bad.handler
    input_key: in:b
    output_key: out:b
`,
		"good.expr": `result({"n": input.n, "count": (env.count ?? 0) + 1}, {"count": (env.count ?? 0) + 1})`,
		"bad.expr":  `{"x": input.n.field}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, srv, map[string]string{"HANDLER_PATH": dir})
	outA := watchOutput(t, srv, "out:a")
	for i := 1; i <= 3; i++ {
		srv.Do("SET", "in:b", fmt.Sprintf(`{"n": %d}`, i))
		srv.Do("SET", "in:a", fmt.Sprintf(`{"n": %d}`, i))
		if o := outA.next(); o["count"] != float64(i) {
			t.Fatalf("good function output %v", o)
		}
	}
	d.awaitMetric(`eventrt_errors_total{function="bad.handler",kind="handler"}`, 3)
	if got := srv.Do("EXISTS", "out:b"); got != "0" {
		t.Fatal("failing function wrote output")
	}
	if v := d.metric(`eventrt_executions_total{function="good.handler",outcome="success",trigger="keyspace"}`); v != 3 {
		t.Fatalf("good function executions = %v", v)
	}
	if got := srv.Do("HGET", "{out:a}:env", "count"); got != "3" {
		t.Fatalf("good function state = %s", got)
	}
	if got, _ := d.running.Load().([2]int); got != [2]int{2, 0} {
		t.Errorf("running hook reported %v, want two key-mode functions (main leaves GOMAXPROCS to Go)", got)
	}
}
