package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/rueidis"
)

// tail keeps the last bytes a child wrote, so a failed row can quote its last log line.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// LastLine is the last non-empty line written, trimmed to one line of reasonable length.
func (t *tail) LastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	// A quoted multi-line error (slog's text format escapes its newlines) keeps its first line.
	if i := strings.Index(l, `\n`); i > 0 {
		l = l[:i] + "..."
	}
	if len(l) > 240 {
		l = l[:240] + "..."
	}
	return l
}

// child is one process the driver compares or needs. It is killed if the driver dies
// (Pdeathsig on Linux) so no benchmark process outlives make bench.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    *tail
	exited chan struct{}
	err    error // valid once exited is closed
}

func startChild(name, dir string, env []string, argv ...string) (*child, error) {
	c := &child{name: name, out: &tail{max: 16 << 10}, exited: make(chan struct{})}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Dir = dir
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = sysProcAttr()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// Exited reports whether the process has ended.
func (c *child) Exited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// ExitReason names how the process ended and its last output line.
func (c *child) ExitReason() string {
	return fmt.Sprintf("%s exited (%v): %s", c.name, c.err, c.out.LastLine())
}

// Stop ends the process: SIGTERM, then SIGKILL after grace.
func (c *child) Stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// Memory reads VmRSS and VmHWM (bytes) from /proc/<pid>/status.
func (c *child) Memory() (rss, hwm int64, err error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(c.cmd.Process.Pid), "status"))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %s: %w", c.name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, perr := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("memory of %s: %s %q: %w", c.name, k, v, perr)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("memory of %s: %w", c.name, err)
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("memory of %s: no VmRSS in /proc/%d/status", c.name, c.cmd.Process.Pid)
	}
	return rss, hwm, nil
}

// freePort asks the kernel for a free loopback port. Another process may take it before it is
// used; the callers fail loudly in that case rather than measure the wrong server.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// redisServer is the private redis-server every row runs against.
type redisServer struct {
	*child
	Addr string
	dir  string
}

// startRedis starts redis-server on a free 127.0.0.1 port without persistence, with the
// extra redis.conf lines given. Keyspace notifications for strings (K$) are on from the start
// because the latency client and the floor program need them; eventrt adds what it needs
// itself.
func startRedis(ctx context.Context, directives ...string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "eventrt-bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\n"+
		"dir %s\nnotify-keyspace-events K$\nloglevel warning\n", port, dir)
	for _, d := range directives {
		conf += d + "\n"
	}
	confPath := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", confPath, err)
	}
	c, err := startChild("redis-server", dir, os.Environ(), "redis-server", confPath)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &redisServer{child: c, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, derr := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if derr == nil {
			_, _ = conn.Write([]byte("PING\r\n"))
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 16)
			n, _ := conn.Read(buf)
			conn.Close()
			if bytes.HasPrefix(buf[:n], []byte("+PONG")) {
				return s, nil
			}
		}
		if c.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not start: %s", s.Addr, c.out.LastLine())
		}
		time.Sleep(20 * time.Millisecond) // polling a port that has no event to wait on
	}
}

// Stop ends the server and removes its directory.
func (s *redisServer) Stop() {
	s.child.Stop(5 * time.Second)
	_ = os.RemoveAll(s.dir)
}

func newClient(addr string) (rueidis.Client, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{
		// Client-side caching would answer the GET that verifies an output from a stale copy.
		InitAddress: []string{addr}, DisableCache: true,
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	return c, nil
}

// waitHTTP waits until url answers 200, the child exits, or timeout passes.
func waitHTTP(ctx context.Context, c *child, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if c.Exited() {
			return errors.New(c.ExitReason())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s within %v: %s", c.name, url, timeout, c.out.LastLine())
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitSubscribed waits until channel has a subscriber (the process under test listens).
func waitSubscribed(ctx context.Context, rc rueidis.Client, c *child, channel string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := rc.Do(ctx, rc.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
		if err != nil {
			return fmt.Errorf("PUBSUB NUMSUB %s: %w", channel, err)
		}
		if m[channel] > 0 {
			return nil
		}
		if c != nil && c.Exited() {
			return errors.New(c.ExitReason())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nobody subscribed to %s within %v", channel, timeout)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
