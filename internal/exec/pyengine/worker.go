package pyengine

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eventrt/eventrt/internal/quote"
)

// worker is one python3 process running worker.py.
type worker struct {
	cmd       *osexec.Cmd
	req       *os.File // fd 3 in the worker: requests
	resp      *os.File // fd 4 in the worker: replies
	stdout    *os.File
	stderr    *os.File
	rd        *bufio.Reader // over spin, over resp
	spin      spinReader
	shm       *shm // the shared-memory channel, or nil: pipes only
	shmOn     bool // the handshake is over: messages take the shared-memory channel
	buf       []byte
	maxFrame  int
	exited    chan struct{} // closed once the process has been reaped
	pumps     sync.WaitGroup
	closeOnce sync.Once
}

// spinReader reads the reply pipe, first polling it for a while before the goroutine parks
// in the poller: with replies that come back within tens of microseconds, polling saves the
// wakeup of a parked goroutine, which costs about as much again on a virtual machine.
type spinReader struct {
	conn  syscall.RawConn
	wait  time.Duration
	until time.Time // stop polling after this; set per request
}

func (s *spinReader) Read(p []byte) (int, error) {
	var n int
	var err error
	rerr := s.conn.Read(func(fd uintptr) bool {
		for {
			n, err = rawRead(fd, p)
			if err == syscall.EINTR {
				continue
			}
			if err != syscall.EAGAIN {
				return true
			}
			if s.wait <= 0 || !time.Now().Before(s.until) {
				return false // park until the pipe is readable, or the read deadline
			}
			for !readable(fd) && time.Now().Before(s.until) {
			}
		}
	})
	if rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// sendError is a request that could not be written: the worker never saw it.
type sendError struct{ err error }

func (e *sendError) Error() string { return "sending the request: " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// workerBootstrap reads worker.py from stdin and runs it as the main module; the frames it
// compiles keep the file name "<string>" they had when the source was the -c argument.
const workerBootstrap = `import sys;exec(compile(sys.stdin.buffer.read(),"<string>","exec"))`

// frameHeader is the room left at the start of every request buffer for its length.
const frameHeader = 4

// spawn starts a worker and imports the handler in it.
func (e *Engine) spawn(ctx context.Context) (*worker, error) {
	var files []*os.File
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			files = append(files, r, w)
		}
		return
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	reqR, reqW, err1 := pipe()
	respR, respW, err2 := pipe()
	outR, outW, err3 := pipe()
	errR, errW, err4 := pipe()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		closeAll()
		return nil, fmt.Errorf("%w: pipes: %w", ErrWorker, err)
	}
	var sh *shm
	var shmFiles []*os.File
	handshake := e.init
	if e.initShm != nil && !e.noShm.Load() {
		var err error
		if sh, shmFiles, err = e.o.newShm(); err != nil {
			// A sandbox may refuse memfd_create or mmap; the pipes work everywhere.
			e.noShm.Store(true)
			e.o.Logger.Warn("python worker: no shared memory, requests take the pipes", "function", e.o.Name, "err", err)
		} else {
			handshake = e.initShm
		}
	}
	// The worker's source comes on stdin, so that its command line (what ps and /proc show)
	// stays a line naming the function rather than 12 KB of Python.
	cmd := osexec.Command(e.python, "-u", "-B", "-c", workerBootstrap, "eventrt-worker", e.o.Name)
	cmd.Stdin = strings.NewReader(e.script)
	cmd.Env = e.o.Env
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = append([]*os.File{reqR, respW}, shmFiles...)
	cmd.SysProcAttr = procAttr()
	err := cmd.Start()
	// The worker has its own copies now; ours of its ends would keep the pipes open after it
	// exits, and hide its death.
	reqR.Close()
	respW.Close()
	outW.Close()
	errW.Close()
	for _, f := range shmFiles {
		f.Close()
	}
	if err != nil {
		closeAll()
		if sh != nil {
			sh.close()
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrNoPython, e.python, err)
	}
	w := &worker{
		cmd: cmd, req: reqW, resp: respR, stdout: outR, stderr: errR,
		maxFrame: maxFrame(e.o.MaxOutputBytes), exited: make(chan struct{}), shm: sh,
	}
	go func() {
		_ = cmd.Wait() // the status is read from cmd.ProcessState
		close(w.exited)
	}()
	w.pumps.Add(2)
	go w.pump(outR, e.o.Logger, slog.LevelInfo, "stdout", e.o.Name)
	go w.pump(errR, e.o.Logger, slog.LevelWarn, "stderr", e.o.Name)
	w.spin.wait = e.o.SpinWait
	if w.spin.conn, err = respR.SyscallConn(); err != nil {
		w.release(0)
		return nil, fmt.Errorf("%w: %v", ErrWorker, err)
	}
	w.rd = bufio.NewReaderSize(&w.spin, 64<<10)

	stop := context.AfterFunc(ctx, w.kill) // the handshake then fails, and ctx.Err() says why
	frame := append(make([]byte, frameHeader, frameHeader+len(handshake)), handshake...)
	body, err := w.call(frame, time.Now().Add(e.o.StartTimeout))
	if !stop() && err == nil { // cancelled just after the handshake: the kill is under way
		err = ctx.Err()
	}
	if err != nil {
		var why string
		switch {
		case ctx.Err() != nil:
			why = ctx.Err().Error()
		case errors.Is(err, os.ErrDeadlineExceeded):
			why = fmt.Sprintf("no answer within %v", e.o.StartTimeout)
		default:
			why = w.exitReason(err) + " (its stderr is logged)"
		}
		w.release(0)
		return nil, fmt.Errorf("%w: starting %s: %s", ErrWorker, e.python, why)
	}
	var hello struct {
		OK    bool         `json:"ok"`
		Error *ImportError `json:"error"`
	}
	if err := json.Unmarshal(body, &hello); err != nil || (!hello.OK && hello.Error == nil) {
		w.release(0)
		return nil, fmt.Errorf("%w: starting %s: bad handshake %s", ErrWorker, e.python, quote.Bytes(body))
	}
	if !hello.OK {
		w.release(0)
		return nil, hello.Error
	}
	w.shmOn = sh != nil // the worker switched to it after its reply
	return w, nil
}

// call sends frame (whose first frameHeader bytes are left for the length) and returns the
// reply's payload, which is valid until the next call.
func (w *worker) call(frame []byte, deadline time.Time) ([]byte, error) {
	if w.shmOn {
		return w.callShm(frame, deadline)
	}
	if err := w.writeFrame(frame, deadline); err != nil {
		return nil, err
	}
	return w.readFrame(deadline)
}

// writeFrame writes frame on the request pipe, its length in its first frameHeader bytes.
func (w *worker) writeFrame(frame []byte, deadline time.Time) error {
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-frameHeader))
	if err := w.req.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if _, err := w.req.Write(frame); err != nil {
		return &sendError{err}
	}
	return nil
}

// readFrame reads one frame from the reply pipe and returns its payload, valid until the next
// call.
func (w *worker) readFrame(deadline time.Time) ([]byte, error) {
	if err := w.resp.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	w.spin.until = time.Now().Add(w.spin.wait)
	var head [4]byte
	if _, err := io.ReadFull(w.rd, head[:]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(head[:]))
	if n > w.maxFrame {
		return nil, fmt.Errorf("reply of %d bytes is over the %d-byte limit", n, w.maxFrame)
	}
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	w.buf = w.buf[:n]
	if _, err := io.ReadFull(w.rd, w.buf); err != nil {
		return nil, err
	}
	return w.buf, nil
}

func (w *worker) kill() {
	if w.cmd.Process != nil {
		killGroup(w.cmd.Process)
	}
}

// exitReason describes how the worker ended, given the error that revealed it; it waits a
// moment for the process to exit, and kills it if it lingers.
func (w *worker) exitReason(err error) string {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-w.exited:
	case <-t.C:
		w.kill()
		<-w.exited
		return fmt.Sprintf("python worker broke the protocol (%v) and was killed", err)
	}
	state := w.cmd.ProcessState.String() // "exit status 3", "signal: segmentation fault"
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) {
		return "python worker " + state
	}
	return fmt.Sprintf("python worker %s (%v)", state, err)
}

// release ends the worker and frees what it holds: closing its request pipe lets an idle worker
// exit by itself within grace; then its process group is killed.
func (w *worker) release(grace time.Duration) {
	w.closeOnce.Do(func() {
		w.req.Close()
		if w.shm != nil {
			w.shm.hangUp() // an idle worker sleeps on its doorbell
		}
		if grace > 0 {
			t := time.NewTimer(grace)
			select {
			case <-w.exited:
			case <-t.C:
			}
			t.Stop()
		}
		w.kill()
		<-w.exited
		w.resp.Close()
		if w.shm != nil {
			w.shm.close()
		}
		// The pumps end when the last holder of the output pipes is gone, which a process the
		// handler started outside the group may delay: stop reading after a while.
		done := make(chan struct{})
		go func() {
			w.pumps.Wait()
			close(done)
		}()
		t := time.NewTimer(time.Second)
		select {
		case <-done:
		case <-t.C:
			w.stdout.Close()
			w.stderr.Close()
			<-done
		}
		t.Stop()
	})
}

// pump logs what the worker writes on one of its output streams, one record per line.
func (w *worker) pump(r *os.File, log *slog.Logger, level slog.Level, stream, name string) {
	defer w.pumps.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n') // a longer line comes out in 64 KiB pieces
		if n := len(line); n > 0 {
			if line[n-1] == '\n' {
				n--
			}
			if n > 0 && line[n-1] == '\r' {
				n--
			}
			log.LogAttrs(context.Background(), level, string(line[:n]),
				slog.String("function", name), slog.String("stream", stream))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
