package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/state"
)

const trigger = "stream"

// job is one batch on its way through execution and commit.
type job struct {
	batch  []entry
	readAt time.Time
	rep    Report
	ch     envChange
	commit state.StreamCommit
	ids    []string // what the commit acknowledges, for BeforeCommit
	last   *entry   // the last successful entry, whose output is exported as metrics
	empty  bool     // nothing to write: every entry failed and stays pending

	done chan struct{} // closed when an asynchronous commit returned res and err
	res  state.StreamCommitted
	err  error
}

// process takes a batch through execution and commit. A batch of new entries is committed
// asynchronously: its commit overlaps the reading and execution of the next batch, which
// runs on the state the pending commit will leave (for a stateful handler, its version
// plus one) and is launched only once that commit settled. If it lost a version race the
// next batch is executed again; if its reply was lost the next batch is dropped (its
// entries stay pending and are read again). Other batches are committed synchronously.
// process returns an error only when BeforeCommit aborted a batch.
func (c *Consumer) process(ctx context.Context, batch []entry, src Source) error {
	j := &job{batch: batch, readAt: c.o.Clock.Now(), rep: Report{Source: src, Entries: len(batch)}}
	c.o.Metrics.Events(trigger, len(batch))
	if src != SourceNew {
		// Pending lookups and reclaims must not race with a commit of the same entries.
		if err := c.flush(ctx); err != nil || c.dirty {
			return err
		}
		if err := c.lookupDeliveries(ctx, batch); err != nil {
			c.redisError("pending lookup", err)
			j.rep.Err = err
			c.history, c.cursor = true, "0"
			c.observe(j.rep)
			return nil
		}
	}
	c.prepare(j)
	if prev := c.inflight; prev != nil {
		c.inflight = nil
		<-prev.done
		redo, err := c.handle(ctx, prev, prev.res, prev.err)
		if err != nil {
			return err
		}
		if c.dirty {
			return nil
		}
		if redo {
			c.prepare(j)
		}
	}
	if j.empty {
		c.finish(j, state.StreamCommitted{})
		return nil
	}
	if err := c.beforeCommit(j); err != nil {
		return err
	}
	c.advance(j)
	if src != SourceNew {
		res, err := c.commitOnce(ctx, j)
		_, err = c.handle(ctx, j, res, err)
		return err
	}
	j.done = make(chan struct{})
	go func() {
		j.res, j.err = c.commitOnce(ctx, j)
		close(j.done)
	}()
	c.inflight = j
	return nil
}

// flush settles the commit in flight, if any.
func (c *Consumer) flush(ctx context.Context) error {
	prev := c.inflight
	if prev == nil {
		return nil
	}
	c.inflight = nil
	<-prev.done
	_, err := c.handle(ctx, prev, prev.res, prev.err)
	return err
}

// prepare executes j's entries on the state in memory and builds its commit.
func (c *Consumer) prepare(j *job) {
	v := c.version.Load()
	stateful := v.Handler.UsesState()
	j.ch = c.execute(v, j.batch, stateful)
	j.commit = state.StreamCommit{CheckVersion: stateful, Version: c.ver, Fields: len(c.fields), Set: j.ch.set, Del: j.ch.del,
		Executions: j.ch.executed, At: c.o.Clock.Now(), Handler: v.Handler.Hash()}
	j.ids, j.last = j.ids[:0], nil
	for i := range j.batch {
		e := &j.batch[i]
		switch e.outcome {
		case outcomeOK, outcomeSkip:
			j.commit.Entries = append(j.commit.Entries, state.StreamEntry{ID: e.id, Output: e.output})
		case outcomeDead:
			j.commit.Dead = append(j.commit.Dead, state.DeadEntry{ID: e.id, Fields: e.fields, Error: e.err.Error(), Attempts: e.deliveries})
		default:
			continue
		}
		j.ids = append(j.ids, e.id)
		j.commit.LastEntry = e.id
		if e.outcome == outcomeOK {
			j.last = e
		}
	}
	j.rep.Failed = countOutcome(j.batch, outcomeRetry)
	j.empty = len(j.ids) == 0 && !j.ch.changed
}

func (c *Consumer) beforeCommit(j *job) error {
	if c.o.BeforeCommit == nil {
		return nil
	}
	if err := c.o.BeforeCommit(j.ids); err != nil {
		return fmt.Errorf("stream consumer %s: %w: %w", c.o.Name, ErrAborted, err)
	}
	return nil
}

// advance makes the state in memory what j's commit will leave, so that the next batch can
// be executed before the commit returns. A commit that fails is followed by a reload.
func (c *Consumer) advance(j *job) {
	c.ver = j.commit.Version + 1
	if j.ch.changed {
		c.env, c.fields = j.ch.env, j.ch.fields
	}
	if j.ch.executed > 0 {
		at := j.commit.At
		c.lastExec = &at
	}
}

func (c *Consumer) commitOnce(ctx context.Context, j *job) (state.StreamCommitted, error) {
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	defer cancel()
	res, err := c.store.Commit(rctx, j.commit)
	if err == nil && c.afterCommit != nil {
		err = c.afterCommit()
	}
	return res, err
}

// handle settles j given its commit's outcome: a lost version race reloads the state and
// commits j's remaining entries again (synchronously) until one commit wins; a refused
// commit is retried as it is, after a backoff, until it applies or ctx ends; any other
// error marks the state dirty. redo reports that the state changed under batches executed
// since j was launched; err is an aborted batch.
func (c *Consumer) handle(ctx context.Context, j *job, res state.StreamCommitted, err error) (redo bool, _ error) {
	bo := backoff.New(retryMin, 0)
	refusals := 0
	for {
		switch {
		case err == nil:
			c.ver = max(c.ver, res.Version)
			c.finish(j, res)
			return redo, nil
		case refused(err) && ctx.Err() == nil:
			// The script checks every write before making one, so a refused commit wrote
			// nothing: its entries are still pending and the state is as it was. No retry can
			// succeed until someone fixes the key, so the same commit is retried here, spaced
			// by the backoff (a lost version race on the way takes the branch above). The
			// reload path would read the entries again, and every read raises their delivery
			// counts until they are dead-lettered for a fault of the configuration.
			c.o.Metrics.Error(metrics.ErrRedis)
			if refusals == 0 {
				c.logRefused(j, err)
				j.rep.Err = err
				c.observe(j.rep)
			}
			refusals++
			c.wait(ctx, bo.Next())
			if ctx.Err() != nil {
				// What is in memory is what j would have left: read the truth back.
				c.dirty = true
				return redo, nil
			}
			j.rep.Err = nil
			res, err = c.commitOnce(ctx, j)
		case state.IsVersionConflict(err):
			redo = true
			j.rep.Conflicts++
			if !c.retarget(ctx, j.batch) {
				c.observe(j.rep)
				return redo, nil
			}
			c.prepare(j)
			if j.empty {
				c.finish(j, state.StreamCommitted{})
				return redo, nil
			}
			if err := c.beforeCommit(j); err != nil {
				return redo, err
			}
			c.advance(j)
			res, err = c.commitOnce(ctx, j)
		default:
			// The reply may be lost after the script ran: read the truth back first.
			c.dirty = true
			c.redisError("commit", err)
			j.rep.Err = err
			c.observe(j.rep)
			return redo, nil
		}
	}
}

// refused reports a commit error that retrying cannot fix and that wrote nothing: a key of
// the commit holding another type (a string left by key mode on the output key, say).
func refused(err error) bool {
	return state.IsRefused(err) || redisErrPrefix(err, "WRONGTYPE")
}

// logRefused reports a refused commit, once per batch: it stops the stream until fixed.
func (c *Consumer) logRefused(j *job, err error) {
	args := []any{"entries", len(j.ids), "err", err}
	var re *state.RefusedError
	if errors.As(err, &re) {
		args = append([]any{"key", re.Key}, args...)
	}
	c.o.Logger.Error("commit refused, nothing written: fix the key; the entries stay pending and the commit is retried", args...)
}

// finish records a settled batch.
func (c *Consumer) finish(j *job, res state.StreamCommitted) {
	j.rep.Acked, j.rep.DeadLettered = res.Acked, res.DeadLettered
	c.settled(j.batch, j.commit.At, j.readAt, res)
	if j.last != nil && j.last.value != nil {
		c.o.Metrics.Output(exec.TopLevel(j.last.value))
	}
	c.observe(j.rep)
}

// retarget handles a lost version race: it reloads the state and keeps only the entries
// still pending for this consumer, to be executed again on the new state. It reports
// whether anything is left to do.
func (c *Consumer) retarget(ctx context.Context, batch []entry) bool {
	ids := make([]string, 0, len(batch))
	for i := range batch {
		if batch[i].outcome != outcomeGone {
			ids = append(ids, batch[i].id)
		}
	}
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	snap, pending, err := c.store.Load(rctx, c.o.Consumer, ids)
	cancel()
	if err == nil {
		err = c.adopt(snap)
	}
	if err != nil {
		// Entries stay pending; dirty makes the loop reload and read them again.
		c.dirty = true
		c.redisError("reload after version conflict", err)
		return false
	}
	left, j := 0, 0
	for i := range batch {
		if batch[i].outcome == outcomeGone {
			continue
		}
		if pending[j] {
			left++
		} else {
			batch[i].outcome = outcomeGone
		}
		j++
	}
	c.o.Logger.Debug("version conflict: executing the batch again on the new state", "entries", left, "version", c.ver)
	return left > 0 && ctx.Err() == nil
}

// envChange is what a batch did to the state.
type envChange struct {
	changed  bool
	set      map[string][]byte
	del      []string
	env      map[string]any
	fields   map[string]string
	executed int
}

// execute runs the handler on every entry still to run and returns the batch's env changes.
// A stateful handler sees each entry's env as the previous successful entry left it; the
// state after the batch is the one the last successful entry returned.
func (c *Consumer) execute(v *loaded, batch []entry, stateful bool) envChange {
	todo := make([]int, 0, len(batch))
	for i := range batch {
		e := &batch[i]
		if e.outcome == outcomeGone {
			continue
		}
		e.outcome, e.output, e.value, e.err, e.kind, e.took = outcomeNone, nil, nil, nil, "", 0
		switch {
		case e.fields == nil:
			e.outcome = outcomeSkip
		case e.deliveries > int64(c.o.MaxAttempts):
			// Delivered more often than allowed without an outcome: it keeps killing the
			// process (or its batch's commits), so it must not run again.
			e.outcome = outcomeDead
			e.err = fmt.Errorf("entry %s delivered %d times without completing (max attempts %d)", e.id, e.deliveries, c.o.MaxAttempts)
		default:
			todo = append(todo, i)
		}
	}
	var ch envChange
	var final *exec.Result
	if workers := c.workers(); !stateful && workers > 1 && len(todo) > 1 {
		c.runParallel(v, batch, todo, workers)
		for _, i := range todo {
			if r := batch[i].stateRes; r != nil {
				final = r
				batch[i].stateRes = nil
			}
		}
	} else {
		env := c.env
		for k, i := range todo {
			// Only the state the batch ends with is committed: the entries before the last
			// need no encoded fields (see exec.Call.EnvOnly).
			if res := c.runOne(v, &batch[i], env, k < len(todo)-1); res.StateSet {
				final = &res
				if stateful {
					env = res.Env
				}
			}
		}
	}
	if final == nil {
		ch.executed = countOutcome(batch, outcomeOK)
		return ch
	}
	fields := final.EnvFields
	if fields == nil {
		// The last entry failed or left the state alone: the state comes from an earlier one.
		var err error
		if fields, err = exec.EnvFields(final.Env); err != nil {
			// A handler returned an env it had not checked; nothing of the batch can be
			// committed consistently, so every entry that ran fails.
			err = fmt.Errorf("stream %s: %w", c.o.Stream, err)
			for _, i := range todo {
				if batch[i].outcome == outcomeOK {
					c.fail(&batch[i], err)
				}
			}
			return envChange{}
		}
	}
	ch.executed = countOutcome(batch, outcomeOK)
	ch.changed, ch.env = true, final.Env
	ch.set, ch.del = state.Diff(c.fields, fields.All())
	ch.fields = fields.Strings()
	return ch
}

// workers is how many goroutines run a stateless batch (see Options.Workers).
func (c *Consumer) workers() int {
	if c.o.Workers > 0 {
		return c.o.Workers
	}
	return max(1, runtime.GOMAXPROCS(0)-1)
}

// runParallel spreads the entries over workers goroutines; only handlers that do not use
// state get here, so entries are independent.
func (c *Consumer) runParallel(v *loaded, batch []entry, todo []int, workers int) {
	workers = min(workers, len(todo))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(todo); k += workers {
				e := &batch[todo[k]]
				// Only a handler that does not use state runs here, so this is not expected;
				// the last entry's state wins, as it would in order.
				if res := c.runOne(v, e, c.env, k < len(todo)-1); res.StateSet {
					e.stateRes = &res
				}
			}
		}()
	}
	wg.Wait()
}

// runOne decodes and executes one entry and records its outcome; it returns the result of
// a successful execution.
func (c *Consumer) runOne(v *loaded, e *entry, env map[string]any, envOnly bool) exec.Result {
	start := c.o.Clock.Now()
	input, err := c.input(v, e)
	var res exec.Result
	if err == nil {
		res, err = c.call(v, exec.Call{Input: input, Env: env, Context: exec.Context{
			Host:             c.o.Host,
			Port:             c.o.Port,
			InputKey:         c.o.Stream,
			OutputKey:        c.o.Output,
			FunctionGetmtime: v.mtime,
			LastExecution:    c.lastExec,
			Trigger:          trigger,
			EntryID:          e.id,
			Function:         c.o.Name,
		}, EnvOnly: envOnly})
	}
	if err != nil && exec.KindOf(err) == exec.KindDecode && c.o.DataField != NoDataField {
		// The data field did not decode, here or in the handler (exec.InputFor).
		err = fmt.Errorf("stream %s entry %s field %s: %w", c.o.Stream, e.id, c.o.DataField, err)
	}
	e.took = c.o.Clock.Now().Sub(start)
	if err == nil {
		e.outcome, e.output, e.value = outcomeOK, res.Output, res.Value
		return res
	}
	c.fail(e, err)
	return exec.Result{}
}

// fail records e's execution as failed with err: dead when retrying cannot help, else left
// pending for a retry.
func (c *Consumer) fail(e *entry, err error) {
	e.output, e.value = nil, nil
	e.err = err
	e.kind = exec.KindOf(err)
	if e.kind == "" {
		e.kind = exec.KindHandler
	}
	switch {
	case e.kind == exec.KindDecode:
		// The entry itself is malformed: no retry can succeed.
		e.outcome = outcomeDead
	case e.deliveries >= int64(c.o.MaxAttempts):
		e.outcome = outcomeDead
	default:
		e.outcome = outcomeRetry
	}
}

// input is what the handler sees as input: the JSON of the data field when the entry has
// one (see exec.InputFor; runOne names the entry in a decode error), else the map of its
// fields.
func (c *Consumer) input(h *loaded, e *entry) (any, error) {
	if c.o.DataField != NoDataField {
		for i := 0; i+1 < len(e.fields); i += 2 {
			if e.fields[i] == c.o.DataField {
				return exec.InputFor(h.Handler, bytesOf(e.fields[i+1]), c.decoder)
			}
		}
	}
	m := make(map[string]any, len(e.fields)/2)
	for i := 0; i+1 < len(e.fields); i += 2 {
		m[e.fields[i]] = e.fields[i+1]
	}
	return m, nil
}

// bytesOf views s as bytes without copying it. The decoder only reads its input and keeps
// no reference to it (decoded strings are copies), which is what makes this safe; it saves
// copying every entry's document once more, which measured 23% of the Go CPU time per entry
// of BenchmarkStreamStateless (9% of BenchmarkStreamStateful). The package's one use of
// unsafe; TestBytesOfSharesTheString checks what it assumes.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// call runs the handler, turning a panic (an engine's bug: engines recover the handler's own)
// into an internal error.
func (c *Consumer) call(v *loaded, call exec.Call) (res exec.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = exec.Result{}, &exec.Error{Kind: exec.KindInternal, Err: &exec.PanicError{Value: r, Stack: debug.Stack()}}
		}
	}()
	return v.Handler.Run(call)
}

// settled records the metrics of a committed batch.
func (c *Consumer) settled(batch []entry, at, readAt time.Time, done state.StreamCommitted) {
	for i := range batch {
		e := &batch[i]
		switch e.outcome {
		case outcomeOK:
			c.o.Metrics.Executed(trigger, true, e.took, at.Sub(readAt), at)
		case outcomeRetry, outcomeDead:
			if e.kind == "" {
				continue // dead without running
			}
			c.o.Metrics.Error(string(e.kind))
			c.o.Metrics.Executed(trigger, false, e.took, 0, at)
		}
	}
	if done.DeadLettered > 0 {
		c.o.Metrics.DeadLetter(done.DeadLettered)
	}
	for i := range batch {
		e := &batch[i]
		switch e.outcome {
		case outcomeRetry:
			c.o.Logger.Warn("execution failed; the entry stays pending for a retry", "entry", e.id, "attempt", e.deliveries, "kind", e.kind, "err", e.err)
			logPanic(c.o.Logger, e.err)
		case outcomeDead:
			c.o.Logger.Warn("entry moved to the dead-letter stream", "entry", e.id, "attempts", e.deliveries, "dead_letter", c.o.DeadLetter, "err", e.err)
			logPanic(c.o.Logger, e.err)
		}
	}
}

func countOutcome(batch []entry, o outcome) int {
	n := 0
	for i := range batch {
		if batch[i].outcome == o {
			n++
		}
	}
	return n
}

func (c *Consumer) observe(r Report) {
	if c.o.Observe != nil {
		c.o.Observe(r)
	}
}

// logPanic logs the stack of an internal error (a bug in eventrt met during a run).
func logPanic(log *slog.Logger, err error) {
	if stack := exec.PanicStack(err); stack != nil {
		log.Error("internal error: a bug in eventrt, please report it", "err", err, "stack", string(stack))
	}
}
