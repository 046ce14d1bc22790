//go:build linux

package pyengine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventrt/eventrt/internal/exec"
)

// pythonPath returns the interpreter the tests use, failing with a hint when there is none.
// Debian's /usr/bin/python3 comes first: a version manager's shim found in PATH (pyenv) can
// take a second or more to start each worker.
func pythonPath(t testing.TB) string {
	t.Helper()
	if p, err := osexec.LookPath("/usr/bin/python3"); err == nil {
		return p
	}
	p, err := osexec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found in PATH (%v): the Python engine's tests run real handlers; install it (Debian: apt-get install -y python3)", err)
	}
	return p
}

// writeFile writes content to dir/name, creating parent directories.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// restarts records OnRestart calls.
type restarts struct {
	mu      sync.Mutex
	reasons []string
}

func (r *restarts) add(reason string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.mu.Unlock()
}

func (r *restarts) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reasons)
}

// startEngine starts an engine on handler source src (a single file), closed at cleanup.
func startEngine(t testing.TB, src string, o Options) (*Engine, *restarts) {
	t.Helper()
	if o.File == "" {
		o.File = writeFile(t, t.TempDir(), "handler.py", src)
	}
	o.Python = pythonPath(t)
	rs := &restarts{}
	if o.OnRestart == nil {
		o.OnRestart = rs.add
	}
	e, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e, rs
}

// run executes one call with a deadline of a few seconds, unless the test gives one.
func run(t testing.TB, e *Engine, input any, env map[string]any) (exec.Result, error) {
	t.Helper()
	if env == nil {
		env = map[string]any{}
	}
	return e.Run(exec.Call{Input: input, Env: env, Deadline: time.Now().Add(10 * time.Second)})
}

// mustRun is run that must succeed.
func mustRun(t testing.TB, e *Engine, input any, env map[string]any) exec.Result {
	t.Helper()
	res, err := run(t, e, input, env)
	if err != nil {
		t.Fatalf("Run(%v): %v", input, err)
	}
	return res
}

// wantKind checks err's kind and that its message contains each of parts.
func wantKind(t testing.TB, err error, kind exec.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got none", kind)
	}
	if got := exec.KindOf(err); got != kind {
		t.Fatalf("want a %s error, got kind %q: %v", kind, got, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// logRecorder is an slog.Handler that sends each record to a channel.
type logRecorder struct {
	ch    chan slog.Record
	attrs []slog.Attr
	seen  []slog.Record // read from ch by waitRecord, not yet matched
}

func newLogRecorder() *logRecorder { return &logRecorder{ch: make(chan slog.Record, 256)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	select {
	case h.ch <- r:
	default: // a test that floods the log only reads what it needs
	}
	return nil
}
func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{ch: h.ch, attrs: append(slices.Clone(h.attrs), as...)}
}
func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// waitRecord returns the first record whose message is msg, waiting a bounded time. Records
// of other messages are kept for later calls: stdout and stderr are read concurrently, so
// their lines arrive in either order.
func (h *logRecorder) waitRecord(t testing.TB, msg string) slog.Record {
	t.Helper()
	for i, r := range h.seen {
		if r.Message == msg {
			h.seen = slices.Delete(h.seen, i, i+1)
			return r
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-h.ch:
			if r.Message == msg {
				return r
			}
			h.seen = append(h.seen, r)
		case <-timeout:
			t.Fatalf("no log record %q within 10s", msg)
		}
	}
}

func attrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// waitGone waits (bounded) until process pid has exited, without polling: a pidfd becomes
// readable when the process terminates.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		if n == 0 {
			t.Fatalf("process %d still alive after 10s", pid)
		}
		return
	}
}

// pythonOutput runs a Python script and returns its stdout.
func pythonOutput(t testing.TB, script string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := osexec.Command(pythonPath(t), append([]string{"-B", "-c", script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return out
}
