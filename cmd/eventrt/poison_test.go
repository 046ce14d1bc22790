package main

import (
	"fmt"
	"os"
	osexec "os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
)

// A value whose runs kill the daemon (SIGKILL here, as the OOM killer would) is run at most
// KEY_MAX_ATTEMPTS times across restarts, then dead-lettered by the next start, which goes on
// with the next value instead of crash-looping.
func TestPoisonValueIsDeadLetteredAfterMaxAttempts(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := redistest.Start(t)
	bin := buildBinary(t)
	handler := writePython(t, `
import time
def handler(input, context):
    if input.get("poison"):
        print("poison run started", flush=True)
        time.sleep(60)
    return {"ok": input["n"]}
`)
	const maxAttempts = 2
	env := append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
		"HANDLER_RUNTIME=python", "PYFILE_PATH="+handler, "PYTHON="+python(t), "HANDLER_TIMEOUT=120s",
		"HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "MONITORING_PERIOD=1h", fmt.Sprintf("KEY_MAX_ATTEMPTS=%d", maxAttempts))
	srv.Do("SET", "metrics", `{"n": 1, "poison": true}`)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		cmd := osexec.Command(bin)
		cmd.Env = env
		_, await := startLogged(t, cmd)
		await("poison run started") // the catch-up run of the value at start
		// A run is recorded as an attempt once it has lasted AttemptMarkAfter (5 ms): kill
		// the process after that, as an out-of-memory kill would.
		for deadline := time.Now().Add(10 * time.Second); srv.Do("HGET", "{output}:env:meta", "attempts") != fmt.Sprint(attempt); {
			if time.Now().After(deadline) {
				t.Fatalf("run %d was not recorded as an attempt while it ran", attempt)
			}
			runtime.Gosched()
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if got := srv.Do("HGET", "{output}:env:meta", "attempts"); got != fmt.Sprint(attempt) {
			t.Fatalf("after kill %d: attempts = %q", attempt, got)
		}
	}
	cmd := osexec.Command(bin)
	cmd.Env = env
	_, await := startLogged(t, cmd)
	await("value moved to the dead-letter stream")
	dead := srv.Do("XRANGE", "{output}:env:dead", "-", "+")
	for _, want := range []string{"eventrt:key", "metrics", `"poison": true`, "eventrt:attempts", fmt.Sprint(maxAttempts)} {
		if !strings.Contains(dead, want) {
			t.Fatalf("dead letter lacks %q: %s", want, dead)
		}
	}
	out := watchOutput(t, srv, "output") // the daemon enabled keyspace notifications
	srv.Do("SET", "metrics", `{"n": 2}`)
	if got := out.next(); got["ok"] != 2.0 {
		t.Fatalf("the next value's output %v, want {ok: 2}", got)
	}
}

// eventrt state reset while the daemon runs: the next run sees an empty env and the hash
// holds its whole env, not only the fields it changed.
func TestStateResetCommandWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := redistest.Start(t)
	h := writeHandler(t, `let n = (env.n ?? 0) + 1; result({n: n, seen: keys(env)}, merge(env, {n: n, ("k" + string(n)): true}))`)
	d := startDaemon(t, srv, map[string]string{"HANDLER_PATH": h, "MONITORING_PERIOD": "1h"})
	d.awaitReady()
	out := watchOutput(t, srv, "output")
	for i := 1; i <= 3; i++ {
		srv.Do("SET", "metrics", fmt.Sprintf(`{"i": %d}`, i))
		out.next()
	}
	var stdout, stderr strings.Builder
	getenv := func(k string) string {
		return map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": fmt.Sprint(srv.Port)}[k]
	}
	if code := run(t.Context(), []string{"state", "reset"}, getenv, &stdout, &stderr); code != 0 {
		t.Fatalf("state reset: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "reset {output}:env (2 of its 2 keys existed)") {
		t.Fatalf("state reset printed %q", stdout.String())
	}
	srv.Do("SET", "metrics", `{"i": 4}`)
	if got := out.next(); got["n"] != 1.0 || fmt.Sprint(got["seen"]) != "[]" {
		t.Fatalf("the run after the reset: %v, want n 1 on an empty env", got)
	}
	if got := srv.Do("HLEN", "{output}:env"); got != "2" {
		t.Fatalf("state hash holds %s fields after the reset, want the whole env of 2", got)
	}
}

// A 10 MB input that is not a valid JSON number fails with an error whose log line quotes
// the value's first bytes and its length, not the value; the next good input runs.
func TestHugeBadInputMakesAShortLogLine(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := redistest.Start(t)
	d := startDaemon(t, srv, nil)
	huge := "1" + strings.Repeat("9", 10_000_180) + "e999999999"
	c := srv.Client()
	if err := c.Do(t.Context(), c.B().Set().Key("metrics").Value(huge).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	d.awaitMetric(`eventrt_errors_total{function="handler_module.handler",kind="decode"}`, 1)
	d.awaitLog(fmt.Sprintf("(%d bytes)", len(huge)))
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if len(line) > 4096 {
			t.Fatalf("a log line of %d bytes: %.300s…", len(line), line)
		}
	}
	out := watchOutput(t, srv, "output")
	srv.Do("SET", "metrics", string(sampleMetrics(t)))
	if o := out.next(); o["executions"] != 1.0 {
		t.Fatalf("the next good input: output %v", o)
	}
}
