package pattern

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/quote"
	"github.com/eventrt/eventrt/internal/state"
)

// runBatch reads, runs and commits the keys of one batch: claims of slots not claimed yet in
// their tenure, then one round trip of reads, the handler on each key in turn, one round trip
// of commits.
func (r *Runner) runBatch(ctx context.Context, batch []item) {
	defer func() {
		for i := range batch {
			it := &batch[i]
			if r.o.Observe != nil {
				r.o.Observe(it.key, it.w.kind, it.outcome)
			}
		}
	}()
	for i := range batch {
		it := &batch[i]
		if e, ok := r.cache.Get(it.key); ok {
			it.e, it.keys = e, e.keys
		} else {
			it.keys = r.o.Layout.Keys(it.key)
		}
		if r.o.Owner != nil {
			tok, ok := r.o.Owner.Token(it.keys.Slot)
			if !ok {
				it.outcome = r.skip(metrics.SkipStandby)
				continue
			}
			it.token = tok
		}
		if it.e != nil && (it.e.token != it.token || it.e.env == nil) {
			// Loaded under another tenure (another replica may have moved on), or changed by
			// a failed run: read it back, keeping what the failure recorded.
			it.prev, it.e = it.e, nil
		}
		if r.o.Client.Mode() == rueidis.ClientModeCluster {
			if err := r.o.Layout.CheckSlot(it.keys); err != nil {
				r.o.Metrics.Error(metrics.ErrRedis)
				r.o.Logger.Warn("key cannot be committed on this cluster", "key", quote.Value(it.key), "err", err)
				it.outcome = metrics.OutcomeError
			}
		}
	}
	r.bufs.Reset() // the last batch's commits are sent: its results' bytes are free
	r.claim(ctx, batch)
	r.read(ctx, batch)
	v := r.version.Load()
	for i := range batch {
		if batch[i].outcome == "" {
			r.decide(v, &batch[i])
		}
	}
	r.count(ctx, batch)
	for i := range batch {
		if batch[i].outcome == "" {
			r.execute(v, &batch[i])
		}
	}
	r.commit(ctx, batch)
}

func (r *Runner) skip(reason string) string {
	r.o.Metrics.Skipped(reason)
	return "skipped:" + reason
}

// claim makes the current tenure the one allowed to commit each slot of the batch not
// claimed in it yet. A slot a later tenure holds is lost: its keys are skipped (fenced).
func (r *Runner) claim(ctx context.Context, batch []item) {
	var calls []scriptCall
	var slots []int
	seen := map[int]bool{}
	for i := range batch {
		it := &batch[i]
		if it.outcome != "" || it.token == 0 || r.claimed[it.keys.Slot] == it.token || seen[it.keys.Slot] {
			continue
		}
		seen[it.keys.Slot] = true
		slots = append(slots, it.keys.Slot)
		calls = append(calls, scriptCall{claimScript, []string{r.o.Owner.FenceKey(it.keys.Slot)}, []string{itoa(it.token)}})
	}
	if len(calls) == 0 {
		return
	}
	rctx, cancel := r.redisCtx(ctx)
	res := doScripts(rctx, r.o.Client, nil, calls)
	cancel()
	failed := map[int]string{}
	for j, s := range slots {
		n, err := res[j].AsInt64()
		tok := asInt(calls[j].args[0])
		switch {
		case err != nil:
			r.redisError("claim slot", err)
			failed[s] = metrics.OutcomeError
		case n != 1:
			r.o.Owner.Fenced(s, tok)
			failed[s] = "fenced"
		default:
			r.claimed[s] = tok
		}
	}
	for i := range batch {
		it := &batch[i]
		if f, ok := failed[it.keys.Slot]; ok && it.outcome == "" {
			if f == "fenced" {
				it.outcome = r.skip(metrics.SkipFenced)
			} else {
				it.outcome = f
			}
		}
	}
}

// read gets the batch's values and, for keys not cached, their state, in one round trip.
func (r *Runner) read(ctx context.Context, batch []item) {
	b := r.o.Client.B()
	cmds := make(rueidis.Commands, 0, len(batch)*3)
	for i := range batch {
		it := &batch[i]
		if it.outcome != "" {
			continue
		}
		it.get = len(cmds)
		cmds = append(cmds, b.Get().Key(it.key).Build())
		if it.e == nil {
			it.load = len(cmds)
			cmds = append(cmds, b.Hgetall().Key(it.keys.State).Build(), b.Hgetall().Key(it.keys.Meta).Build())
		}
	}
	if len(cmds) == 0 {
		return
	}
	rctx, cancel := r.redisCtx(ctx)
	res := r.o.Client.DoMulti(rctx, cmds...)
	cancel()
	for i := range batch {
		it := &batch[i]
		if it.outcome != "" {
			continue
		}
		raw, err := res[it.get].AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
			r.Gone(it.key)
			it.outcome = r.skip(metrics.SkipMissing)
			continue
		case err != nil:
			if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "WRONGTYPE") {
				// Pattern functions read string keys; a hash or stream matching the pattern
				// is not an input.
				r.Gone(it.key)
				it.outcome = r.skip(metrics.SkipMissing)
				continue
			}
			r.redisError("read input", err)
			it.outcome = metrics.OutcomeError
			continue
		}
		it.raw = raw
		if it.load >= 0 {
			e, err := r.loadEntry(it, res[it.load], res[it.load+1])
			if err != nil {
				if state.IsCorrupt(err) {
					r.o.Metrics.Error(string(exec.KindDecode))
					r.o.Logger.Warn("state cannot be read back; the key does not run until it is fixed", "key", quote.Value(it.key), "err", err)
				} else {
					r.redisError("load state", err)
				}
				it.outcome = metrics.OutcomeError
				continue
			}
			it.e = e
		}
	}
}

func (r *Runner) loadEntry(it *item, fieldsRes, metaRes rueidis.RedisResult) (*entry, error) {
	fields, err := fieldsRes.AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("load state %s: %w", it.keys.State, err)
	}
	meta, err := metaRes.AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("load state %s: %w", it.keys.Meta, err)
	}
	interned := make(map[string]string, len(fields))
	for k, v := range fields {
		interned[r.intern(k)] = v
	}
	snap, err := state.DecodeSnapshot(it.keys.State, it.keys.Meta, interned, meta)
	if err != nil {
		return nil, err
	}
	env, err := exec.DecodeEnv(snap.Fields)
	if err != nil {
		ce := &state.CorruptError{Key: it.keys.State, Err: err}
		var de *codec.DecodeError
		if errors.As(err, &de) {
			ce.Field = de.Field
		}
		return nil, ce
	}
	e := &entry{keys: it.keys, env: env, lastInput: snap.LastInput, token: it.token}
	if it.prev != nil && it.prev.token == it.token {
		e.failedID, e.failedHash = it.prev.failedID, it.prev.failedHash
	}
	if !snap.LastExecution.IsZero() {
		t := snap.LastExecution
		e.lastExec = &t
	}
	r.cache.Add(it.key, e)
	return e, nil
}

// decide skips a value already executed, or one that failed with this handler version.
func (r *Runner) decide(v *exec.Version, it *item) {
	e := it.e
	it.id = state.InputID(it.raw)
	if !it.w.force && it.id == e.lastInput {
		it.outcome = r.skip(metrics.SkipUnchanged)
		return
	}
	if !it.w.force && it.id == e.failedID && v.Handler.Hash() == e.failedHash {
		it.outcome = r.skip(metrics.SkipFailed)
	}
}

// count records, in one round trip, a run of each value about to run in its key's meta
// hash, and dead-letters the values whose runs killed the process MaxAttempts times.
func (r *Runner) count(ctx context.Context, batch []item) {
	if r.o.MaxAttempts <= 0 {
		return
	}
	var calls []scriptCall
	var idx []int
	for i := range batch {
		it := &batch[i]
		if it.outcome == "" {
			calls = append(calls, scriptCall{countScript, []string{it.keys.Meta}, []string{state.AttemptID(it.raw)}})
			idx = append(idx, i)
		}
	}
	if len(calls) == 0 {
		return
	}
	rctx, cancel := r.redisCtx(ctx)
	res := doScripts(rctx, r.o.Client, nil, calls)
	cancel()
	for j, i := range idx {
		it := &batch[i]
		n, err := res[j].AsInt64()
		switch {
		case err != nil:
			r.redisError("count attempt", err)
			it.outcome = metrics.OutcomeError
		case n > int64(r.o.MaxAttempts):
			it.outcome = r.deadLetter(ctx, it, n)
		}
	}
}

// deadLetter moves a value whose runs killed the process too often to the slot's
// dead-letter stream and records it as executed, so that the key runs again on its next value.
func (r *Runner) deadLetter(ctx context.Context, it *item, attempts int64) string {
	rctx, cancel := r.redisCtx(ctx)
	defer cancel()
	st, err := state.New(state.Options{Client: r.o.Client, StateKey: it.keys.State, OutputKey: it.keys.Output})
	if err == nil {
		err = st.DeadLetter(rctx, r.o.Client, state.Dead{DeadLetter: r.o.Layout.DeadKey(it.keys.Slot), Key: it.key, Raw: it.raw,
			InputID: it.id, Error: fmt.Sprintf("%d runs of this value did not end (the process died)", attempts-1),
			Attempts: attempts - 1, At: r.o.Clock.Now()})
	}
	if err != nil {
		r.redisError("dead-letter", err)
		return metrics.OutcomeError
	}
	r.cache.Remove(it.key) // its last_input changed
	r.o.Metrics.DeadLetter(metrics.ModePattern, 1)
	r.o.Logger.Error("value dead-lettered: its runs killed the process", "key", quote.Value(it.key),
		"attempts", attempts-1, "dead_letter", r.o.Layout.DeadKey(it.keys.Slot))
	return "dead-lettered"
}

// execute runs the handler on one key's value and prepares its commit.
func (r *Runner) execute(v *exec.Version, it *item) {
	e := it.e
	// The env's keys before the run, which may change it in place: those the new env lacks
	// are deleted from the state hash.
	old := make([]string, 0, len(e.env))
	for k := range e.env {
		old = append(old, k)
	}
	start := r.o.Clock.Now()
	res, err := r.evaluate(v, it)
	took := r.o.Clock.Now().Sub(start)
	if err != nil {
		kind := string(exec.KindOf(err))
		if kind == "" {
			kind = string(exec.KindHandler)
		}
		r.o.Metrics.Error(kind)
		r.o.Metrics.Executed(string(it.w.kind), false, took, 0, start)
		r.o.Logger.Warn("execution failed", "trigger", it.w.kind, "kind", kind, "key", quote.Value(it.key), "err", err)
		e.failedID, e.failedHash = it.id, v.Handler.Hash()
		e.env = nil // the run may have changed it in place: read it back before the next
		if r.o.MaxAttempts > 0 {
			// A clean failure is no run that killed the process.
			rctx, cancel := r.redisCtx(context.Background())
			if err := state.ClearAttempt(rctx, r.o.Client, it.keys.Meta); err != nil {
				r.redisError("clear attempt", err)
			}
			cancel()
		}
		it.outcome = metrics.OutcomeError
		return
	}
	c := &commitInfo{res: res, at: r.o.Clock.Now(), took: took, handler: v.Handler.Hash()}
	if res.StateSet {
		c.set = make(map[string][]byte, len(res.Env))
		for k, b := range res.EnvFields.All() {
			c.set[k] = b
		}
		for _, k := range old {
			if _, ok := res.Env[k]; !ok {
				c.del = append(c.del, k)
			}
		}
	}
	it.commit = c
}

func (r *Runner) evaluate(v *exec.Version, it *item) (res exec.Result, err error) {
	defer func() {
		if err != nil && exec.KindOf(err) == exec.KindDecode {
			err = fmt.Errorf("key %s: %w", quote.Value(it.key), err)
		}
	}()
	input, err := exec.InputFor(v.Handler, it.raw, r.decoder)
	if err != nil {
		return exec.Result{}, err
	}
	return v.Handler.Run(exec.Call{
		Input:    input,
		Env:      it.e.env,
		EnvOwned: true,
		Buffers:  &r.bufs,
		Context: exec.Context{
			Host:             r.o.Host,
			Port:             r.o.Port,
			InputKey:         it.key,
			OutputKey:        it.keys.Output,
			FunctionGetmtime: v.ModTime.Local().Format("2006-01-02 15:04:05"),
			LastExecution:    it.e.lastExec,
			Trigger:          string(it.w.kind),
			Function:         r.o.Name,
		},
	})
}

// intern returns the one copy of an env field name the runner keeps; past a bound (a
// function whose field names are data) names are not interned any more.
func (r *Runner) intern(name string) string {
	if n, ok := r.names[name]; ok {
		return n
	}
	if len(r.names) < 1<<14 {
		r.names[name] = name
	}
	return name
}

// commit sends the batch's commits in one round trip and applies what landed to the cache.
func (r *Runner) commit(ctx context.Context, batch []item) {
	var calls []scriptCall
	var idx []int
	ttl := "0"
	if r.o.StateTTL > 0 {
		ttl = itoa(max(r.o.StateTTL.Milliseconds(), 1))
	}
	maxlen := itoa(max(r.o.OutputMaxLen, 0))
	for i := range batch {
		it := &batch[i]
		if it.commit == nil {
			continue
		}
		calls = append(calls, r.commitCall(it, ttl, maxlen))
		idx = append(idx, i)
	}
	if len(calls) == 0 {
		return
	}
	rctx, cancel := r.redisCtx(ctx)
	res := doScripts(rctx, r.o.Client, nil, calls)
	cancel()
	for j, i := range idx {
		it := &batch[i]
		n, err := res[j].AsInt64()
		c := it.commit
		switch {
		case err != nil:
			// The reply may be lost after the script ran: reload before the key's next run.
			r.cache.Remove(it.key)
			r.o.Metrics.Executed(string(it.w.kind), false, c.took, 0, c.at)
			r.redisError("commit", err)
			it.outcome = metrics.OutcomeError
		case n != 1:
			// Another replica's tenure claimed the slot during the run: it owns the key now,
			// and this result was written nowhere.
			r.cache.Remove(it.key)
			r.o.Owner.Fenced(it.keys.Slot, it.token)
			it.outcome = r.skip(metrics.SkipFenced)
		default:
			r.committed(it)
			it.outcome = metrics.OutcomeSuccess
		}
	}
}

func (r *Runner) commitCall(it *item, ttl, maxlen string) scriptCall {
	c, k := it.commit, it.keys
	mode, out := string(r.o.Layout.Mode), c.res.Output
	if out == nil {
		mode = ""
	} else if r.o.Layout.Mode == OutputPublish && !r.o.Layout.templ {
		// Fan-in: the message says which key it comes from.
		ks, _ := json.Marshal(it.key)
		out = append(append(append([]byte(`{"key":`), ks...), `,"data":`...), append(out, '}')...)
	}
	fence, token := k.State, ""
	if it.token != 0 {
		fence, token = r.o.Owner.FenceKey(k.Slot), itoa(it.token)
	}
	output := k.Output
	if r.o.Layout.Mode == OutputPublish {
		output = k.State
	}
	args := make([]string, 0, 11+len(c.del)+2*len(c.set))
	args = append(args, mode, rueidis.BinaryString(out), c.at.UTC().Format(time.RFC3339Nano), c.handler, it.id, token,
		ttl, maxlen, it.key, k.Output, itoa(int64(len(c.del))))
	args = append(args, c.del...)
	for f, v := range c.set {
		args = append(args, f, rueidis.BinaryString(v))
	}
	return scriptCall{commitScript, []string{k.State, k.Meta, output, fence}, args}
}

// committed applies a landed commit to the key's cached entry.
func (r *Runner) committed(it *item) {
	e, c := it.e, it.commit
	if c.res.StateSet {
		e.env = c.res.Env
	}
	e.lastInput = it.id
	at := c.at
	e.lastExec = &at
	e.failedID = ""
	r.o.Metrics.Executed(string(it.w.kind), true, c.took, at.Sub(it.w.since), at)
	if c.res.Value != nil {
		r.o.Metrics.Output(exec.TopLevel(c.res.Value))
	}
}

func (r *Runner) redisError(op string, err error) {
	r.o.Metrics.Error(metrics.ErrRedis)
	r.o.Logger.Warn("redis error; the keys will be retried by the next scan", "op", op, "kind", metrics.ErrRedis, "err", err)
}

func asInt(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}
