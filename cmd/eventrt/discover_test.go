package main

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/redistest"
)

// testLayout is a layout in a temporary directory with none of its paths present.
func testLayout(t *testing.T) layout {
	dir := t.TempDir()
	return layout{
		handlerPath: filepath.Join(dir, "opt", "eventrt"),
		pyfilePath:  filepath.Join(dir, "app", "pyfile", "pyfile"),
		usermodule:  filepath.Join(dir, "opt", "usermodule.py"),
	}
}

func writeAt(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDiscover(t *testing.T) {
	type want struct{ path, runtime, name, from string }
	for _, c := range []struct {
		what    string
		env     map[string]string
		present []string // layout paths that exist: handler, pyfile, usermodule
		want    want
	}{
		{"own directory first", nil, []string{"handler", "pyfile", "usermodule"}, want{"handler", "", "", "default"}},
		{"custom course runtime", nil, []string{"pyfile", "usermodule"}, want{"pyfile", "python", "handler_module.handler", "default"}},
		{"custom course runtime, function set", map[string]string{"HANDLER_FUNCTION": "mymod.run"}, []string{"pyfile"}, want{"pyfile", "python", "mymod.run", "default"}},
		{"course runtime", nil, []string{"usermodule"}, want{"usermodule", "python", "", "default"}},
		{"python image", map[string]string{"HANDLER_RUNTIME": "python"}, []string{"pyfile"}, want{"pyfile", "python", "handler_module.handler", "default"}},
		{"PYFILE_PATH", map[string]string{"PYFILE_PATH": "/srv/h"}, []string{"handler"}, want{"/srv/h", "python", "", "PYFILE_PATH"}},
		{"HANDLER_PATH", map[string]string{"HANDLER_PATH": "/srv/b"}, []string{"pyfile"}, want{"/srv/b", "", "", "HANDLER_PATH"}},
		{"HANDLER_PATH at the default", map[string]string{"HANDLER_PATH": config.DefaultHandlerPath}, nil, want{config.DefaultHandlerPath, "", "", "HANDLER_PATH"}},
		{"ZIP_URL", map[string]string{"ZIP_URL": "https://example.com/h.zip", "PYFILE_PATH": "/srv/h"}, nil, want{"", "", "", "ZIP_URL"}},
	} {
		t.Run(c.what, func(t *testing.T) {
			l := testLayout(t)
			paths := map[string]string{"handler": l.handlerPath, "pyfile": l.pyfilePath, "usermodule": l.usermodule}
			for _, p := range c.present {
				writeAt(t, paths[p], "x")
			}
			o, err := config.Parse(nil, func(k string) string { return c.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			s, err := discover(o, l)
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := paths[c.want.path]; ok {
				c.want.path = p
			}
			got := want{s.path, s.runtime, s.name, s.from}
			if got != c.want {
				t.Errorf("discover = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestDiscoverNamesTheVariablesToSet(t *testing.T) {
	o, err := config.Parse(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l := testLayout(t)
	_, err = discover(o, l)
	if err == nil {
		t.Fatal("nothing configured and nothing present: no error")
	}
	for _, s := range []string{"HANDLER_PATH", "PYFILE_PATH", "ZIP_URL", l.handlerPath, l.pyfilePath, l.usermodule} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	o, _ = config.Parse(nil, func(k string) string {
		return map[string]string{"HANDLER_RUNTIME": "expr", "PYFILE_PATH": "/srv/h.py"}[k]
	}, io.Discard)
	if _, err := discover(o, l); err == nil || !strings.Contains(err.Error(), "HANDLER_RUNTIME=expr") {
		t.Errorf("PYFILE_PATH with HANDLER_RUNTIME=expr: %v", err)
	}
}

// echoModule is a handler that names the module it was loaded as.
const echoModule = "def handler(input, context):\n    return {'module': __name__, 'n': input['n'], 'function': context.function}\n"

// The custom course runtime's layout: with nothing configured, a Python file without a suffix
// at /app/pyfile/pyfile runs as handler_module.handler, loaded as the module handler_module,
// under that name in the context, the metrics and the start-up line.
func TestCustomCourseLayout(t *testing.T) {
	srv := redistest.Start(t)
	l := testLayout(t)
	writeAt(t, l.pyfilePath, echoModule)
	env := map[string]string{"PYTHON": python(t), "HANDLER_PATH": ""}
	d := startDaemonIn(t, srv, env, &l)
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 1}`)
	if o := out.next(); o["module"] != "handler_module" || o["function"] != "handler_module.handler" {
		t.Fatalf("output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 1)
	d.awaitLog(`"msg":"handler loaded","function":"handler_module.handler","file":"` + l.pyfilePath + `","runtime":"python"`)
}

// The course runtime's layout: /opt/usermodule.py runs as usermodule.handler.
func TestCourseLayout(t *testing.T) {
	srv := redistest.Start(t)
	l := testLayout(t)
	writeAt(t, l.usermodule, echoModule)
	d := startDaemonIn(t, srv, map[string]string{"PYTHON": python(t), "HANDLER_PATH": ""}, &l)
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 2}`)
	if o := out.next(); o["module"] != "usermodule" || o["function"] != "usermodule.handler" {
		t.Fatalf("output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="usermodule.handler",outcome="success",trigger="keyspace"}`, 1)
}

// A directory holding a single expr function runs it under its own name, the one eventrt
// check prints, with HANDLER_FUNCTION unset.
func TestSingleFunctionRunsUnderItsName(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	writeAt(t, filepath.Join(dir, "maxcpu.expr"), `{max: input.n}`)
	d := startDaemon(t, srv, map[string]string{"HANDLER_PATH": dir})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 3}`)
	if o := out.next(); o["max"] != 3.0 {
		t.Fatalf("output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="maxcpu.handler",outcome="success",trigger="keyspace"}`, 1)
	d.awaitLog(`"msg":"handler loaded","function":"maxcpu.handler"`)
}

// ZIP_URL pointing at a zip of several Python modules runs handler_module.handler from it, the
// custom course runtime's convention, importing its sibling modules.
func TestZipURLOfPythonModules(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, src := range map[string]string{
		"handler_module.py": "import helpers\ndef handler(input, context):\n    return {'double': helpers.double(input['n'])}\n",
		"helpers.py":        "def double(n):\n    return 2 * n\n",
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(w, src)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(buf.Bytes()) }))
	defer web.Close()
	srv := redistest.Start(t)
	// HANDLER_RUNTIME=python, as the Python image sets it: the zip is still what runs.
	d := startDaemon(t, srv, map[string]string{"PYTHON": python(t), "HANDLER_PATH": "", "HANDLER_RUNTIME": "python",
		"ZIP_URL": web.URL + "/modules.zip", "ZIP_ALLOW_HTTP": "true"})
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 21}`)
	if o := out.next(); o["double"] != 42.0 {
		t.Fatalf("output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 1)
}

// With nothing configured and nothing present, start-up fails with one line naming the
// variables to set.
func TestNoHandlerNamesTheVariables(t *testing.T) {
	l := testLayout(t)
	o, err := config.Parse(nil, func(k string) string { return map[string]string{"HTTP_ADDR": "127.0.0.1:0"}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if code := runDaemon(t.Context(), o, &logs, &hooks{layout: &l}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, s := range []string{"HANDLER_PATH", "PYFILE_PATH", "ZIP_URL"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("the start-up error does not name %s:\n%s", s, logs.String())
		}
	}
}

// imageEnv reads the ENV instructions of a Dockerfile: the environment the image's eventrt
// starts with.
func imageEnv(t *testing.T, dockerfile string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env
}

// The custom course runtime's test command runs with only the image swapped:
//
//	docker run -e REDIS_HOST=... -v handler_module.py:/app/pyfile/pyfile eventrt-python
//
// Docker is not needed to check what it does: the Python image's environment, Redis' address
// and a handler at the layout's /app/pyfile/pyfile, nothing else.
func TestPythonImageRunsTheCourseCommand(t *testing.T) {
	env := imageEnv(t, "../../Dockerfile.python")
	if env["HTTP_ADDR"] == "" {
		t.Fatalf("no ENV read from Dockerfile.python: %v", env)
	}
	env["HTTP_ADDR"] = "127.0.0.1:0" // the image's :8080, on a free port
	env["HANDLER_PATH"] = ""         // startDaemon's default, not the image's
	env["PYTHON"] = python(t)        // the image's python3 is on its PATH; this machine's may not be
	l := testLayout(t)
	writeAt(t, l.pyfilePath, echoModule)
	srv := redistest.Start(t)
	d := startDaemonIn(t, srv, env, &l)
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", `{"n": 5}`)
	if o := out.next(); o["module"] != "handler_module" || o["n"] != 5.0 {
		t.Fatalf("output %v", o)
	}
	d.awaitMetric(`eventrt_executions_total{function="handler_module.handler",outcome="success",trigger="keyspace"}`, 1)
}
