package runner

import (
	"context"
	"time"

	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

// attemptMark is the attempt record of one run, written once the run has lasted
// AttemptMarkAfter.
type attemptMark struct {
	t    *time.Timer
	n    int64
	done chan bool // the record was written
}

// markAttempt arranges for the run about to start to be recorded as an attempt of its value if
// it lasts AttemptMarkAfter: a run that kills the process (the OOM killer, a crash) is a long
// one, and the short runs that make up a function's life then cost no write. It returns nil
// when the run is not counted (an ad-hoc payload, a value not counted at the read).
func (r *Runner) markAttempt(id string) *attemptMark {
	if id == "" || r.nextCount == 0 {
		return nil
	}
	m := &attemptMark{n: r.nextCount, done: make(chan bool, 1)}
	meta, attemptID := state.MetaKey(r.o.Store.Key()), r.nextCountID
	m.t = time.AfterFunc(max(r.o.AttemptMarkAfter, 0), func() {
		ctx, cancel := redisconn.CallContext(context.Background(), r.o.RedisTimeout)
		defer cancel()
		err := state.MarkAttempt(ctx, r.o.Client, meta, attemptID, m.n)
		if err != nil {
			r.o.Logger.Warn("could not record the run as an attempt of its value", "key", r.o.InputKey, "err", err)
		}
		m.done <- err == nil
	})
	return m
}

// endMark ends the run's attempt record: nothing when the run ended before it was due,
// otherwise the record is waited for (so that the commit or clearAttempt that removes it
// comes after it) and remembered in r.attempts.
func (r *Runner) endMark(m *attemptMark) {
	if m == nil || m.t.Stop() {
		return
	}
	if <-m.done {
		r.attempts = m.n
	}
}

// clearAttempt ends the attempt count of a value whose run failed cleanly: a failure, not a
// run that killed the process. Reads of it are not counted again while it is the failed one.
func (r *Runner) clearAttempt(ctx context.Context, kind trigger.Kind, raw []byte) {
	if r.attempts == 0 {
		return
	}
	r.attempts = 0
	r.failedAttempt = state.AttemptID(raw)
	rctx, cancel := redisconn.CallContext(ctx, r.o.RedisTimeout)
	err := state.ClearAttempt(rctx, r.link(), state.MetaKey(r.o.Store.Key()))
	cancel()
	if err != nil {
		r.unlink()
		r.redisError("clear attempt", err, kind)
	}
}
