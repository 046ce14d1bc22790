package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redistest"
)

// SIGTERM to the real binary while an execution is in progress: the triggers stop, the
// execution finishes and commits, and the process exits 0.
func TestSIGTERMFinishesTheRunningExecution(t *testing.T) {
	srv := redistest.Start(t)
	bin := buildBinary(t)
	handler := writePython(t, `
import time
def handler(input, context):
    print("execution started")
    time.sleep(0.5)
    return {"done": input["n"]}
`)
	cmd := osexec.Command(bin)
	cmd.Env = append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
		"HANDLER_RUNTIME=python", "PYFILE_PATH="+handler, "PYTHON="+python(t), "HANDLER_TIMEOUT=10s",
		"HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "MONITORING_PERIOD=1h", "SHUTDOWN_TIMEOUT=5s")
	lines, await := startLogged(t, cmd)
	await("enabled keyspace notifications")
	srv.Do("SET", "metrics", `{"n": 7}`)
	await("execution started")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines { // keep draining so the process never blocks on its log
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if got := srv.Do("GET", "output"); got != `{"done":7}` {
		t.Fatalf("the execution in progress was not committed: output %q", got)
	}
}

// buildBinary builds eventrt into the test's temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eventrt")
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startLogged starts cmd and returns its stderr lines and a function that waits (boundedly)
// for a line containing a text. The process is killed when the test ends.
func startLogged(t *testing.T, cmd *osexec.Cmd) (<-chan string, func(text string)) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines, func(text string) {
		t.Helper()
		awaitLog(t, lines, text, 20*time.Second)
	}
}

// awaitLog waits, at most timeout, for a line of lines containing text, and returns it.
func awaitLog(t *testing.T, lines <-chan string, text string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("eventrt exited before logging %q", text)
			}
			if strings.Contains(l, text) {
				return l
			}
		case <-deadline:
			t.Fatalf("eventrt never logged %q", text)
		}
	}
}

// kill -9 of a lone replica, then a restart on the same host: the new process takes over the
// lease its predecessor left at once. With a lease time of an hour, standing by until it
// expired would never run the second value within the test.
func TestRestartAfterKillTakesOverTheLease(t *testing.T) {
	srv := redistest.Start(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler_module.expr"), []byte("{n: input.n}"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
		"HANDLER_PATH="+dir, "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "MONITORING_PERIOD=1h",
		"LEASE_TTL=1h")
	first := osexec.Command(bin)
	first.Env = env
	_, await := startLogged(t, first)
	await("enabled keyspace notifications")
	srv.Do("SET", "metrics", `{"n": 1}`)
	waitOutput(t, srv, `{"n":1}`)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if got := srv.Do("PTTL", "{output}:env:lease"); strings.HasPrefix(got, "-") {
		t.Fatalf("the killed process left no lease (PTTL %s): nothing to take over", got)
	}

	// Written while no process runs: the new holder's catch-up read runs it.
	srv.Do("SET", "metrics", `{"n": 2}`)
	second := osexec.Command(bin)
	second.Env = env
	_, await = startLogged(t, second)
	await("taking over the lease of this replica's previous process")
	waitOutput(t, srv, `{"n":2}`)
}

// waitOutput waits for the output key to hold want, on its keyspace notifications.
func waitOutput(t *testing.T, srv *redistest.Server, want string) {
	t.Helper()
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	changed := make(chan struct{}, 1)
	sub := c.B().Subscribe().Channel("__keyspace@0__:output").Build()
	go func() {
		_ = c.Receive(ctx, sub, func(rueidis.PubSubMessage) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	for {
		if got := srv.Do("GET", "output"); got == want {
			return
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond): // the subscription may start after the write
		case <-ctx.Done():
			t.Fatalf("output %q, want %q", srv.Do("GET", "output"), want)
		}
	}
}
