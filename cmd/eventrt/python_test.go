package main

import (
	"os"
	osexec "os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
)

// The course's Python handler runs unchanged, gives the same outputs as its expr twin, and its
// env survives a restart of eventrt.
func TestPythonClassicHandlerMatchesExprTwin(t *testing.T) {
	second := strings.Replace(string(sampleMetrics(t)), `"cpu_percent-0": 32.4`, `"cpu_percent-0": 92.4`, 1)
	second = strings.Replace(second, "1764085200.123456", "1764085205.5", 1)

	outputs := func(env map[string]string, restart bool) []map[string]any {
		srv := redistest.Start(t)
		d := startDaemon(t, srv, env)
		out := watchOutput(t, srv, "output")
		srv.Do("SET", "metrics", string(sampleMetrics(t)))
		first := out.next()
		if restart {
			if code := d.stop(); code != 0 {
				t.Fatalf("exit %d", code)
			}
			startDaemon(t, srv, env)
		}
		srv.Do("SET", "metrics", second)
		return []map[string]any{first, out.next()}
	}
	py := outputs(map[string]string{"HANDLER_RUNTIME": "python", "PYFILE_PATH": "../../examples/python/usermodule.py", "PYTHON": python(t)}, true)
	ex := outputs(nil, false)
	for i := range py {
		if !reflect.DeepEqual(py[i], ex[i]) {
			t.Errorf("run %d: python %v\nexpr %v", i+1, py[i], ex[i])
		}
	}
	if py[1]["executions"] != 2.0 || py[1]["avg-util-cpu0-60sec"] != 33.4 {
		t.Fatalf("python state lost across restart: %v", py[1])
	}
}

func TestPythonHandlerFailuresLoseNothing(t *testing.T) {
	srv := redistest.Start(t)
	d := startDaemon(t, srv, map[string]string{"HANDLER_RUNTIME": "python", "HANDLER_TIMEOUT": "300ms", "PYTHON": python(t),
		"PYFILE_PATH": writePython(t, `
import os, sys
def handler(input, context):
    mode = input.get("mode")
    context.env["runs"] = context.env.get("runs", 0) + 1
    if mode == "raise":
        raise ValueError("boom")
    if mode == "loop":
        while True:
            pass
    if mode == "exit":
        os._exit(3)
    if mode == "set":
        return {"bad": {1, 2}}
    if mode == "print":
        print("hello from the handler")
    return {"ok": mode, "runs": context.env["runs"]}
`)})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"mode": "first"}`)
	if o := out.next(); o["runs"] != 1.0 {
		t.Fatalf("first output %v", o)
	}
	for i, mode := range []string{"raise", "loop", "exit", "set"} {
		srv.Do("SET", "metrics", `{"mode": "`+mode+`"}`)
		d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="error",trigger="keyspace"}`, float64(i+1))
	}
	srv.Do("SET", "metrics", `{"mode": "print"}`)
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 2)
	o := out.next()
	if o["ok"] != "print" || o["runs"] != 2.0 {
		t.Fatalf("after failures: %v (a failed run must leave env as it was)", o)
	}
	if got := srv.Do("GET", "output"); !strings.Contains(got, `"runs":2`) {
		t.Fatalf("output %s", got)
	}
	d.awaitLog("hello from the handler")
	d.awaitMetric(`eventrt_worker_restarts_total{function="handler_module.handler",reason="timeout"}`, 1)
	d.awaitMetric(`eventrt_worker_restarts_total{function="handler_module.handler",reason="crash"}`, 1)
}

// python prefers Debian's interpreter: a version manager's shim in PATH can take a second to
// start.
func python(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := osexec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found (make test installs it): %v", err)
	}
	return p
}

func writePython(t *testing.T, src string) string {
	t.Helper()
	p := writeHandler(t, src)
	py := strings.TrimSuffix(p, ".expr") + ".py"
	if err := renameFile(p, py); err != nil {
		t.Fatal(err)
	}
	return py
}

// A Python handler file that changes on disk is reloaded: a new worker takes over between
// executions and the old one is closed.
func TestPythonHotReload(t *testing.T) {
	srv := redistest.Start(t)
	file := writePython(t, "def handler(input, context):\n    return {\"v\": 1}\n")
	d := startDaemon(t, srv, map[string]string{"HANDLER_RUNTIME": "python", "PYFILE_PATH": file, "PYTHON": python(t)})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 1}`)
	if o := out.next(); o["v"] != 1.0 {
		t.Fatalf("output %v", o)
	}
	tmp := file + ".new"
	if err := os.WriteFile(tmp, []byte("def handler(input, context):\n    return {\"v\": 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	d.awaitMetric(`eventrt_reloads_total{function="handler_module.handler",outcome="success"}`, 1)
	srv.Do("SET", "metrics", `{"n": 2}`)
	if o := out.next(); o["v"] != 2.0 {
		t.Fatalf("output after reload %v", o)
	}
	_, body := d.get("/metrics")
	if n := strings.Count(body, `eventrt_handler_info{function="handler_module.handler"`); n != 1 {
		t.Fatalf("%d handler_info series after the reload, want 1:\n%s", n, body)
	}
}

// Readiness waits for the first catch-up run: a value written before the start is executed by
// then, so a write after readiness gets a run of its own.
func TestReadyAfterTheFirstCatchUpRan(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("SET", "metrics", `{"n": 1}`)
	d := startDaemon(t, srv, map[string]string{"HANDLER_RUNTIME": "python", "PYTHON": python(t),
		"HANDLER_TIMEOUT": "10s", "PYFILE_PATH": writePython(t, `
import time
def handler(input, context):
    time.sleep(0.3)
    return {"n": input["n"]}
`)})
	const catchup = `eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="catchup"}`
	if v := d.metric(catchup); v != 1 {
		t.Fatalf("ready with %v catch-up runs done, want 1", v)
	}
	if got := srv.Do("GET", "output"); got != `{"n":1}` {
		t.Fatalf("output %q at readiness, want the value written before the start", got)
	}
}
