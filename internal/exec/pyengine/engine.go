// Package pyengine owns the Python handler engine: it runs handlers written for the course
// runtime, handler(input, context) in a .py file, a directory or a zip of packages, in a
// long-lived python3 worker process that it starts, feeds, times out, restarts and stops. It
// implements exec.Handler, so the runner treats it like an expr program.
//
// Python handlers are trusted code: unlike expr programs they can read files, open sockets,
// start processes and see the worker's environment (eventrt's own, Redis password included,
// as in the course runtime). The limits here (deadline, memory, output size, crash isolation)
// protect eventrt from mistakes, not from a hostile handler.
//
// The worker (worker.py, embedded) speaks length-prefixed frames over two pipes of its own
// (fd 3 and 4), so print() output cannot corrupt the protocol: both of the worker's output
// streams are logged line by line. On linux/amd64 the messages after the handshake travel
// through a shared-memory region instead, polled by both ends while they are busy, with
// doorbell pipes for an end that sleeps (shm.go): a pipe round trip costs more than the rest of
// a run of a small handler. Values cross in CPython's marshal format (much cheaper for
// the worker than json), and the output is turned into exactly the text
// json.dumps(output, separators=(",", ":")) gives: the course runtime's text (same key order,
// same number formatting, ensure_ascii) without the spaces, compact like the expr engine's.
//
// Semantics, compared with the course runtime:
//   - context has host, port, input_key, output_key, function_getmtime, last_execution (a naive
//     local datetime or None) and env, plus trigger, entry_id and function. The context object
//     and the module's globals live as long as the worker: like the course runtime's, they are
//     lost when it restarts. env is not: it is the state eventrt keeps in Redis, passed in on
//     every run and read back after it.
//   - A falsy return value writes nothing, but changes the handler made to context.env are
//     kept (Result.StateSet with Output nil), as the course runtime kept them in memory. A run
//     that fails keeps nothing: the state stays as it was.
//   - NaN, sets, objects and other values json.dumps refuses fail the run with a KindOutput
//     error naming the path, e.g. output["cpu"][3]; values json.dumps accepts (numpy.float64,
//     IntEnum) are accepted. env keys must be strings.
//   - Numbers follow exec.DecodeInput and exec.DecodeEnv: a Go int is a Python int, a float64
//     a Python float (45.0 stays 45.0), both ways, so input and env reach the handler as the
//     course runtime's json.loads gave them, except that the keys of a decoded map arrive
//     sorted. An input passed as json.RawMessage keeps its document order too.
//
// Failures: an exception (SystemExit included) is KindHandler and the worker carries on. A run
// past its deadline is KindTimeout: the worker's process group is killed and a new worker
// started. A worker that dies (os._exit, a signal) fails its run with KindHandler (IsWorker)
// and is restarted; so is one that hits MemoryError under Options.MemoryLimit. The first
// restart after a completed run is immediate, consecutive ones back off exponentially. The time
// a run waits for a worker to start does not count against its deadline; a run that arrives
// during a backoff delay fails when its deadline passes.
package pyengine

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/quote"
)

//go:embed worker.py
var workerSource string

// workerScript is the worker's source with ext (Python registering EXTRA_REQUESTS) run just
// before the worker's last statement, main().
func workerScript(ext string) string {
	if ext == "" {
		return workerSource
	}
	return strings.TrimSuffix(workerSource, "main()\n") + ext + "\n\nmain()\n"
}

// Defaults of Options.
const (
	DefaultPython            = "python3"
	DefaultFile              = "/opt/usermodule.py" // the course runtime's PYFILE_PATH
	DefaultFunction          = "handler"            // for a single file
	DefaultBundleFunction    = "handler_module.handler"
	DefaultTimeout           = time.Second
	DefaultStartTimeout      = 10 * time.Second
	DefaultMaxOutputBytes    = 16 << 20
	DefaultRestartBackoff    = 100 * time.Millisecond
	DefaultMaxRestartBackoff = 10 * time.Second
)

// Reasons passed to Options.OnRestart.
const (
	ReasonTimeout = "timeout" // the run passed its deadline: the worker was killed
	ReasonCrash   = "crash"   // the worker died (os._exit, a signal, a broken protocol) or failed to start
	ReasonMemory  = "memory"  // the handler hit MemoryError under the memory limit
)

// Options configures an Engine. The zero value of each field means its default.
type Options struct {
	// Python is the interpreter, a path or a name looked up in PATH.
	Python string
	// File is the handler: a .py file, a directory whose root holds modules and packages, or
	// a .zip of such a root (imported in place by zipimport).
	File string
	// Function selects the handler. For a single file it is the function's name ("handler"),
	// loaded as the module usermodule, as the course runtime did; a "module." prefix names the
	// module the file is loaded as (handler_module.handler, the custom course runtime's).
	// For a directory or zip it is "pkg.module.function": pkg.module is imported.
	Function string
	// Name labels the handler in logs; default "<module>.<function>".
	Name string
	// Timeout bounds a run whose Call has no Deadline.
	Timeout time.Duration
	// StartTimeout bounds starting the worker and importing the handler.
	StartTimeout time.Duration
	// MemoryLimit, in bytes, is the worker's RLIMIT_AS, set before the handler is imported;
	// 0 means none. It limits address space, not resident memory: leave the interpreter room
	// (a bare python3 maps some 30 MB, and each thread reserves its stack).
	MemoryLimit uint64
	// MaxOutputBytes caps the JSON of the output, and separately that of the whole env.
	MaxOutputBytes int
	// Env is the worker's environment; nil means eventrt's own (as the course runtime had).
	Env []string
	// Logger receives the handler's print() output, one record per line (stdout at info,
	// stderr at warn) with function=<Name>, and the engine's own restarts.
	Logger *slog.Logger
	// Clock times the restart backoff.
	Clock clock.Clock
	// RestartBackoff is the delay before the second consecutive restart; it doubles with each
	// further one up to MaxRestartBackoff. The first restart after a good run is immediate.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// SpinWait is how long a run polls for the worker's reply before it sleeps, and how long
	// the worker polls for the next request after replying. Polling answers a fast handler
	// sooner (waking a sleeping process costs tens of microseconds on a virtual machine) at the
	// price of CPU spent polling; 0 turns it off.
	SpinWait time.Duration
	// OnRestart is called with ReasonTimeout, ReasonCrash or ReasonMemory each time the worker
	// is replaced; it must not block.
	OnRestart func(reason string)

	// pipesOnly keeps the shared-memory channel off (tests of the pipe path); newShm, when
	// set, replaces the function that makes a worker's channel (tests of its failure).
	pipesOnly bool
	newShm    func() (*shm, []*os.File, error)
	// workerExtension is Python source run in the worker before it serves, to register request
	// kinds of its own in EXTRA_REQUESTS: the benchmarks' requests, which production never
	// sends (see bench_test.go).
	workerExtension string
}

// Errors. Start returns ErrNoPython and *ImportError; Run returns *exec.Error, wrapping
// ErrWorker when the worker failed and ErrClosed after Close.
var (
	ErrNoPython = errors.New("pyengine: python interpreter not found")
	ErrImport   = errors.New("pyengine: handler failed to import")
	ErrWorker   = errors.New("pyengine: python worker failed")
	ErrClosed   = errors.New("pyengine: engine closed")
)

// IsNoPython reports whether err means the interpreter could not be found or run.
func IsNoPython(err error) bool { return errors.Is(err, ErrNoPython) }

// IsImport reports whether err is a handler that failed to load (see ImportError).
func IsImport(err error) bool { return errors.Is(err, ErrImport) }

// IsWorker reports whether err is a run lost because the worker died, hung or could not start.
func IsWorker(err error) bool { return errors.Is(err, ErrWorker) }

// ImportError is a handler that failed to load: a syntax error, an exception raised while
// importing, a missing module or function. Line and Column are 1-based as Python reports them;
// 0 when unknown.
type ImportError struct {
	File      string
	Line      int
	Column    int
	Message   string
	Snippet   string
	Traceback string // Python's traceback, without the worker's frames
}

func (e *ImportError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Snippet != "" {
		fmt.Fprintf(&b, ": %s", e.Snippet)
	}
	return b.String()
}

func (e *ImportError) Is(target error) bool { return target == ErrImport }

// Engine runs one Python handler in a supervised worker process. Runs are serialised: one
// execution at a time. It is safe for concurrent use.
type Engine struct {
	o      Options
	python string
	script string // the worker's source (workerScript)
	init   []byte // the worker's handshake request, over pipes only
	// initShm is the handshake with the shared-memory channel; nil where there is none.
	initShm []byte
	// noShm is set once a worker's shared-memory channel could not be made: later workers use
	// the pipes.
	noShm  atomic.Bool
	hash   string
	ctx    context.Context // ends at Close: cancels restarts in progress
	cancel context.CancelFunc
	bg     sync.WaitGroup // restarts and reaping of replaced workers

	mu       sync.Mutex // serialises Run and Close; guards everything below
	closed   bool
	w        *worker
	restart  *restart // a replacement being started, when w is nil
	failures int      // consecutive restarts without a completed run
	req      encoder  // reused request buffer
}

// restart is a replacement worker being started in the background.
type restart struct {
	reason   string
	spawning chan struct{} // closed when the backoff delay is over and the worker is starting
	done     chan struct{} // closed when w or err is set
	w        *worker
	err      error
}

// Start resolves the interpreter, reads the handler, starts the worker and imports the handler
// in it. A handler that does not import is an *ImportError. ctx bounds only the start.
func Start(ctx context.Context, o Options) (*Engine, error) {
	o, spec, err := resolve(o)
	if err != nil {
		return nil, err
	}
	python, err := osexec.LookPath(o.Python)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v (install python3 or set the interpreter's path)", ErrNoPython, o.Python, err)
	}
	hash, err := hashHandler(spec, o.Function)
	if err != nil {
		return nil, err
	}
	hello := map[string]any{
		"path": spec.path, "root": spec.root, "module": spec.module, "function": spec.function,
		"source": spec.source, "memory_limit": o.MemoryLimit, "max_frame": maxFrame(o.MaxOutputBytes),
		"spin_ns": o.SpinWait.Nanoseconds(),
	}
	if o.newShm == nil {
		o.newShm = newShm
	}
	e := &Engine{o: o, python: python, hash: hash, script: workerScript(o.workerExtension)}
	if e.init, err = json.Marshal(hello); err != nil {
		return nil, fmt.Errorf("pyengine: %w", err)
	}
	if shmSupported() && !o.pipesOnly {
		hello["shm"] = shmLayout()
		if e.initShm, err = json.Marshal(hello); err != nil {
			return nil, fmt.Errorf("pyengine: %w", err)
		}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	w, err := e.spawn(ctx)
	if err != nil {
		e.cancel()
		return nil, err
	}
	e.w = w
	return e, nil
}

// maxFrame bounds a worker reply: marshal may be several times larger than the JSON it becomes
// (a small int is 5 bytes for 1), and a reply carries both output and env.
func maxFrame(maxOutput int) int {
	return int(min(int64(maxOutput)*16+1<<20, math.MaxInt32))
}

// Hash identifies the handler's source and function: hex SHA-256 prefix.
func (e *Engine) Hash() string { return e.hash }

// UsesState is true: a Python handler may mutate context.env.
func (e *Engine) UsesState() bool { return true }

// Run executes the handler once. A failure is an *exec.Error: KindHandler when the handler
// raised (or the worker died or could not be started), KindTimeout when it passed the deadline
// (the worker is killed and restarted), KindOutput when the output or env cannot be encoded
// or is too large, KindDecode when the input or env cannot be passed to Python.
func (e *Engine) Run(call exec.Call) (exec.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return exec.Result{}, &exec.Error{Kind: exec.KindHandler, Err: ErrClosed}
	}
	deadline := call.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(e.o.Timeout)
	}
	envStart, err := e.encodeRun(call)
	if err != nil {
		return exec.Result{}, &exec.Error{Kind: exec.KindDecode, Err: err}
	}
	w, kind, body, err := e.exchange(e.req.b, &deadline)
	if err != nil {
		return exec.Result{}, err
	}
	e.failures = 0
	switch kind {
	case 'O':
		res, err := e.result(body, e.req.b[envStart:], call.Env)
		if !errors.Is(err, errNeedJSON) {
			return res, err
		}
		// json.dumps must judge this value: ask the worker for its JSON encoding.
		if kind, body, err = e.roundTrip(w, []byte{0, 0, 0, 0, 'J'}, deadline); err != nil {
			return exec.Result{}, err
		}
		if kind != 'J' {
			return exec.Result{}, e.replyError(kind, body)
		}
		return e.jsonResult(body)
	case 'J':
		return e.jsonResult(body)
	}
	return exec.Result{}, e.replyError(kind, body)
}

// encodeRun writes the run request into e.req and returns where env starts in it.
func (e *Engine) encodeRun(call exec.Call) (int, error) {
	q := &e.req
	q.b = append(q.b[:0], 0, 0, 0, 0, 'R', mTuple) // room for the frame header
	q.u32(11)
	q.context(call.Context)
	var err error
	if m, ok := call.Input.(map[string]any); ok {
		err = q.dict(m, 0, &q.input) // the same keys every run, as a rule
	} else {
		err = q.value(call.Input, 0)
	}
	if err != nil {
		return 0, fmt.Errorf("input%w", err)
	}
	envStart := len(q.b)
	if err = q.dict(call.Env, 0, &q.env); err != nil { // a nil Env is an empty dict
		return 0, fmt.Errorf("context.env%w", err)
	}
	return envStart, nil
}

// result turns an 'O' reply into a Result. sentEnv is the marshal of the env the run was given:
// the worker re-encodes an untouched env to the same bytes, so equal bytes mean no change.
func (e *Engine) result(body, sentEnv []byte, callEnv map[string]any) (exec.Result, error) {
	out, envPart, err := e.splitReply(body)
	if err != nil {
		return exec.Result{}, err
	}
	n := len(out)
	var res exec.Result
	if n > 0 {
		js, err := e.req.reply.json(out)
		if err != nil {
			return exec.Result{}, e.codecError(err)
		}
		if err := e.tooLarge("output", len(js)); err != nil {
			return exec.Result{}, err
		}
		res.Output = bytes.Clone(js)
		res.Value = json.RawMessage(res.Output) // decoded only for the output metrics
	}
	envBytes := envPart
	if bytes.Equal(envBytes, sentEnv) {
		return res, nil
	}
	env, fields, size, err := e.req.reply.decodeEnv(envBytes, len(callEnv), e.req.env.keys)
	if err != nil {
		return exec.Result{}, e.codecError(err)
	}
	if err := e.tooLarge("context.env", size); err != nil {
		return exec.Result{}, err
	}
	res.StateSet, res.Env, res.EnvFields = true, env, fields
	return res, nil
}

// splitReply cuts a reply body into its output part (after a 4-byte little-endian length) and
// its env part.
func (e *Engine) splitReply(body []byte) (out, env []byte, err error) {
	if len(body) < 4 {
		return nil, nil, e.protocolError("short reply")
	}
	n := int(binary.LittleEndian.Uint32(body))
	if n > len(body)-4 {
		return nil, nil, e.protocolError("short reply")
	}
	return body[4 : 4+n], body[4+n:], nil
}

// tooLarge is the output error for JSON of size bytes past MaxOutputBytes, nil within it.
func (e *Engine) tooLarge(what string, size int) error {
	if size <= e.o.MaxOutputBytes {
		return nil
	}
	return &exec.Error{Kind: exec.KindOutput, Err: fmt.Errorf("%s is %d bytes of JSON, more than the limit of %d", what, size, e.o.MaxOutputBytes)}
}

func (e *Engine) codecError(err error) error {
	if errors.Is(err, errNeedJSON) {
		return err
	}
	return e.protocolError(err.Error())
}

func (e *Engine) protocolError(msg string) error {
	return &exec.Error{Kind: exec.KindHandler, Err: fmt.Errorf("%w: bad reply from the worker: %s", ErrWorker, msg)}
}

// jsonResult turns a 'J' reply (the worker's json encoding) into a Result. The env is taken as
// changed: the worker's JSON cannot be compared byte for byte with what was sent.
func (e *Engine) jsonResult(body []byte) (exec.Result, error) {
	out, envPart, err := e.splitReply(body)
	if err != nil {
		return exec.Result{}, err
	}
	n := len(out)
	var res exec.Result
	if n > 0 {
		if err := e.tooLarge("output", n); err != nil {
			return exec.Result{}, err
		}
		res.Output = bytes.Clone(out)
		res.Value = json.RawMessage(res.Output)
	}
	envJSON := envPart
	if err := e.tooLarge("context.env", len(envJSON)); err != nil {
		return exec.Result{}, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(envJSON, &raw); err != nil {
		return exec.Result{}, e.protocolError(err.Error())
	}
	fields := make(map[string]string, len(raw))
	res.EnvFields = make(exec.Fields, 0, len(raw))
	for k, v := range raw {
		fields[k] = string(v)
		res.EnvFields = append(res.EnvFields, exec.Field{Key: k, Value: v})
	}
	env, err := exec.DecodeEnv(fields) // ints stay ints, as on the marshal path
	if err != nil {
		return exec.Result{}, e.protocolError(err.Error())
	}
	res.StateSet, res.Env = true, env
	return res, nil
}

// replyError turns an error reply into an *exec.Error.
func (e *Engine) replyError(kind byte, body []byte) error {
	var info struct {
		Message   string `json:"message"`
		Traceback string `json:"traceback"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return e.protocolError(fmt.Sprintf("reply %q: %v", kind, err))
	}
	switch kind {
	case 'H':
		if info.Traceback != "" {
			e.o.Logger.Debug("python handler raised", "function", e.o.Name, "traceback", info.Traceback)
		}
		return &exec.Error{Kind: exec.KindHandler, Err: errors.New(quote.Text(info.Message))}
	case 'X':
		return &exec.Error{Kind: exec.KindOutput, Err: errors.New(quote.Text(info.Message))}
	case 'M':
		limit := "no memory limit set"
		if e.o.MemoryLimit > 0 {
			limit = fmt.Sprintf("limit %d bytes", e.o.MemoryLimit)
		}
		e.replace(ReasonMemory, "MemoryError, "+limit)
		return &exec.Error{Kind: exec.KindHandler, Err: fmt.Errorf("%s (%s); the worker was restarted", quote.Text(info.Message), limit)}
	}
	return e.protocolError(fmt.Sprintf("unknown reply %q", kind))
}

// exchange sends one request to the live worker and reads the reply. A worker found dead when
// the request is written never saw it, so it is replaced and the request sent once more.
// Waiting for a worker to start does not count against the run: *deadline moves by the wait.
func (e *Engine) exchange(frame []byte, deadline *time.Time) (*worker, byte, []byte, error) {
	budget := time.Until(*deadline)
	if budget <= 0 {
		return nil, 0, nil, &exec.Error{Kind: exec.KindTimeout, Err: errors.New("deadline passed before the python handler started")}
	}
	for attempt := 0; ; attempt++ {
		w, waited, err := e.ready(*deadline)
		if err != nil {
			return nil, 0, nil, &exec.Error{Kind: exec.KindHandler, Err: err}
		}
		if waited {
			*deadline = time.Now().Add(budget)
		}
		kind, body, err := e.roundTrip(w, frame, *deadline)
		var unsent *sendError
		if attempt == 0 && errors.As(err, &unsent) {
			continue
		}
		return w, kind, body, err
	}
}

// roundTrip sends one request (frame: frameHeader bytes of room, then the payload) and reads
// the reply. A worker that passes the deadline is killed (KindTimeout); one that dies or breaks
// the protocol is replaced (KindHandler).
func (e *Engine) roundTrip(w *worker, frame []byte, deadline time.Time) (byte, []byte, error) {
	body, err := w.call(frame, deadline)
	if err == nil && len(body) == 0 {
		err = errors.New("empty reply")
	}
	if err == nil {
		return body[0], body[1:], nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		e.replace(ReasonTimeout, "the handler passed its deadline")
		return 0, nil, &exec.Error{Kind: exec.KindTimeout, Err: fmt.Errorf("python handler %s still running at its deadline: the worker was killed", e.o.Name)}
	}
	why := w.exitReason(err)
	var unsent *sendError
	if errors.As(err, &unsent) {
		e.replace(ReasonCrash, "exited while idle: "+why)
		return 0, nil, &exec.Error{Kind: exec.KindHandler, Err: fmt.Errorf("%w: exited before the run: %s: %w", ErrWorker, why, unsent)}
	}
	e.replace(ReasonCrash, why)
	return 0, nil, &exec.Error{Kind: exec.KindHandler, Err: fmt.Errorf("%w during the run: %s", ErrWorker, why)}
}

// ready returns the live worker, waiting for a restart in progress, and whether it waited. A
// restart still in its backoff delay is waited for until deadline; a worker being started is
// waited for (its start is bounded by StartTimeout).
func (e *Engine) ready(deadline time.Time) (*worker, bool, error) {
	if e.ctx.Err() != nil {
		return nil, false, ErrClosed
	}
	if e.w != nil {
		select {
		case <-e.w.exited:
			// It died between runs (killed from outside, a thread of the handler exited...).
			e.replace(ReasonCrash, "exited while idle: "+e.w.exitReason(io.EOF))
		default:
			return e.w, false, nil
		}
	}
	r := e.restart
	if r == nil { // not expected: every path that drops the worker starts a replacement
		e.replace(ReasonCrash, "no worker")
		r = e.restart
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-r.spawning:
	case <-t.C:
		return nil, true, fmt.Errorf("%w: not ready before the deadline, restarting after %s", ErrWorker, r.reason)
	}
	t.Reset(e.o.StartTimeout + time.Second) // spawn gives up after StartTimeout: a safety margin
	select {
	case <-r.done:
	case <-t.C:
		return nil, true, fmt.Errorf("%w: not started within %v, restarting after %s", ErrWorker, e.o.StartTimeout, r.reason)
	}
	e.restart = nil
	if r.err != nil {
		if e.ctx.Err() != nil {
			return nil, true, ErrClosed
		}
		e.replace(ReasonCrash, r.err.Error())
		return nil, true, fmt.Errorf("%w: restart failed: %w", ErrWorker, r.err)
	}
	e.w = r.w
	return e.w, true, nil
}

// replace retires the current worker (killing it) and starts a replacement in the background,
// after a backoff when restarts follow each other without a completed run in between.
func (e *Engine) replace(reason, why string) {
	if old := e.w; old != nil {
		e.w = nil
		old.kill()
		e.bg.Go(func() { old.release(0) })
	}
	if e.ctx.Err() != nil {
		return // closing: nothing to restart
	}
	e.failures++
	delay := time.Duration(0)
	if e.failures > 1 {
		delay = (&backoff.Backoff{Min: e.o.RestartBackoff, Max: e.o.MaxRestartBackoff}).Delay(e.failures - 2)
	}
	e.o.Logger.Warn("restarting python worker", "function", e.o.Name, "reason", reason, "detail", why, "delay", delay)
	if e.o.OnRestart != nil {
		e.o.OnRestart(reason)
	}
	r := &restart{reason: reason, spawning: make(chan struct{}), done: make(chan struct{})}
	e.restart = r
	e.bg.Go(func() {
		defer close(r.done)
		if delay > 0 {
			select {
			case <-e.o.Clock.After(delay):
			case <-e.ctx.Done():
				close(r.spawning)
				r.err = ErrClosed
				return
			}
		}
		close(r.spawning)
		r.w, r.err = e.spawn(e.ctx)
	})
}

// Close stops the worker: it waits for a run in progress, lets an idle worker exit by itself
// for a moment, then kills its process group. Close is idempotent.
func (e *Engine) Close() error {
	e.cancel() // first: a run waiting for a restart stops waiting
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	w, r := e.w, e.restart
	e.w, e.restart = nil, nil
	e.mu.Unlock()
	if w != nil {
		w.release(time.Second)
	}
	if r != nil {
		<-r.done
		if r.w != nil {
			r.w.release(time.Second)
		}
	}
	e.bg.Wait()
	return nil
}
