// Package redistest starts real redis-server processes on free loopback ports for tests, with
// the configuration each test needs. It never touches the default port and never listens
// outside 127.0.0.1. Tests that use it are skipped only under `go test -short`.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// StartTimeout bounds how long a redis-server may take to report that it is ready.
const StartTimeout = 15 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	Port int
	Dir  string
	// Directives are the redis.conf lines the server was started with (besides port and dir).
	Directives []string
	// TLS, when set, is used by ClientOption (and so by Client, Do, Stop, Restart).
	TLS *tls.Config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is the server's host:port on loopback.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Binary returns the path of redis-server, failing the test with a hint when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found in PATH (run `make test`, which installs it): %v", err)
	}
	return p
}

// Start launches a redis-server with the given extra directives, each a redis.conf line such
// as `notify-keyspace-events ""` or `rename-command CONFIG ""`. Persistence is off unless a
// directive turns it on; Restart saves and reloads the dataset regardless. The server is
// killed when the test ends.
func Start(t testing.TB, directives ...string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server (skipped with -short)")
	}
	s := &Server{t: t, Dir: t.TempDir(), Directives: directives}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = FreePort(t)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\nbind 127.0.0.1\ndir %s\nsave \"\"\nappendonly no\n", s.Port, s.Dir)
	b.WriteString("daemonize no\nlogfile \"\"\nprotected-mode yes\n")
	for _, d := range s.Directives {
		b.WriteString(d)
		b.WriteByte('\n')
	}
	return b.String()
}

func (s *Server) start() error {
	conf := filepath.Join(s.Dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(Binary(s.t), conf)
	cmd.Dir = s.Dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// Scan the log for the ready line; keep draining afterwards so the server never
		// blocks on a full pipe.
		sc := bufio.NewScanner(out)
		var tail []string
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if !signalled {
				tail = append(tail, line)
				if strings.Contains(line, "Ready to accept connections") {
					ready <- nil
					signalled = true
				}
			}
		}
		if !signalled {
			ready <- fmt.Errorf("redis-server exited before ready: %s", strings.Join(tail, " | "))
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case err := <-ready:
		if err != nil {
			<-done
			return err
		}
	case <-time.After(StartTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on port %d not ready after %s", s.Port, StartTimeout)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// Kill stops the server at once (SIGKILL) and waits for it to exit. Safe to call twice.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart saves the dataset, stops the server and starts it again on the same port with the
// same configuration file. Like a real restart it forgets every CONFIG SET (for example
// notify-keyspace-events) but keeps the data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.StartAgain()
}

// Stop saves the dataset to dump.rdb and shuts the server down, waiting for it to exit.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	c := s.Client()
	// SHUTDOWN closes the connection; its error is expected.
	_ = c.Do(context.Background(), c.B().Arbitrary("SHUTDOWN", "SAVE").Build()).Error()
	c.Close()
	<-done
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// StartAgain starts a stopped server on its port, loading the saved dataset.
func (s *Server) StartAgain() {
	s.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		// The port may linger briefly in the kernel after a shutdown.
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on %d: %v", s.Port, err)
}

// ClientOption returns rueidis options for exactly this server (never a cluster client, so
// keyless commands such as SHUTDOWN reach this node) with client-side caching off.
func (s *Server) ClientOption() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true, ForceSingleClient: true, TLSConfig: s.TLS}
}

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() rueidis.Client {
	s.t.Helper()
	c, err := rueidis.NewClient(s.ClientOption())
	if err != nil {
		s.t.Fatalf("redistest: client for %s: %v", s.Addr(), err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// Do runs one command on a short-lived client and returns the reply, failing the test on error
// (a nil reply is returned as "" without error).
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	c, err := rueidis.NewClient(s.ClientOption())
	if err != nil {
		s.t.Fatalf("redistest: client: %v", err)
	}
	defer c.Close()
	r := c.Do(context.Background(), c.B().Arbitrary(args...).Build())
	if rueidis.IsRedisNil(r.Error()) {
		return ""
	}
	if err := r.Error(); err != nil {
		s.t.Fatalf("redistest: %v: %v", args, err)
	}
	v, err := r.ToAny()
	if err != nil {
		s.t.Fatalf("redistest: %v: %v", args, err)
	}
	return fmt.Sprint(v)
}
