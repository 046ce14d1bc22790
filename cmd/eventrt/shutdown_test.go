package main

import (
	"bufio"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
)

// SIGTERM to the real binary while an execution is in progress: the triggers stop, the
// execution finishes and commits, and the process exits 0.
func TestSIGTERMFinishesTheRunningExecution(t *testing.T) {
	srv := redistest.Start(t)
	bin := filepath.Join(t.TempDir(), "eventrt")
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
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
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	await := func(text string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("eventrt exited before logging %q", text)
				}
				if strings.Contains(l, text) {
					return
				}
			case <-timeout:
				t.Fatalf("eventrt never logged %q", text)
			}
		}
	}
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
	err = cmd.Wait()
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if got := srv.Do("GET", "output"); got != `{"done":7}` {
		t.Fatalf("the execution in progress was not committed: output %q", got)
	}
}
