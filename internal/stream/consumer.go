package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/codec"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/state"
)

// ErrAborted wraps the error of a BeforeCommit hook that stopped Run.
var ErrAborted = errors.New("batch aborted before commit")

// IsAborted reports whether err is a batch aborted by BeforeCommit.
func IsAborted(err error) bool { return errors.Is(err, ErrAborted) }

// Consumer consumes one function's input stream. Run drives it (from one goroutine, once at
// a time; it starts helpers of its own for reading ahead and committing); Swap may be called
// from any goroutine.
type Consumer struct {
	o       Options
	store   *state.StreamStore
	members *lease.Members // the group's live consumers (see handover.go)
	version atomic.Pointer[loaded]
	// decoder reuses the object keys of the entries' documents, which share one shape.
	decoder *codec.Decoder

	// Owned by the Run goroutine.
	env      map[string]any
	fields   map[string]string
	ver      int64
	lastExec *time.Time
	// dirty: the stored state may differ from memory (a commit whose reply was lost); it is
	// reloaded and this consumer's pending entries are read again before anything new.
	dirty   bool
	history bool   // reading this consumer's pending entries rather than new ones
	cursor  string // the last pending entry id handled in history mode
	// inflight is the batch whose commit is running (see process).
	inflight *job
	// afterCommit, a test seam, can turn a successful commit into an error (a lost reply).
	afterCommit func() error
}

// loaded is a Version with what every execution needs from it precomputed.
type loaded struct {
	exec.Version
	mtime string
}

// New validates o and returns a Consumer running handler version v. On a Redis Cluster
// client it also checks that the keys committed together share a hash slot.
func New(o Options, v exec.Version) (*Consumer, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if v.Handler == nil {
		return nil, invalid(o.Name, "nil handler")
	}
	store, err := state.NewStreamStore(state.StreamOptions{
		Client: o.Client, Stream: o.Stream, Group: o.Group, StateKey: o.StateKey,
		Output: o.Output, OutputMode: o.OutputMode, OutputMaxLen: o.OutputMaxLen,
		DeadLetter: o.DeadLetter, DeadLetterMaxLen: o.DeadLetterMaxLen,
	})
	if err != nil {
		return nil, fmt.Errorf("stream consumer %s: %w", o.Name, err)
	}
	o.Logger = o.Logger.With("function", o.Name, "stream", o.Stream, "consumer", o.Consumer)
	c := &Consumer{o: o, store: store, decoder: codec.NewDecoder()}
	if c.members, err = c.newMembers(); err != nil {
		return nil, err
	}
	if o.Client.Mode() == rueidis.ClientModeCluster {
		if err := c.CheckSlots(); err != nil {
			return nil, err
		}
	}
	c.Swap(v)
	return c, nil
}

// CheckSlots reports (as an ErrCrossSlot error naming them) the keys of the atomic commit
// (stream, state, state meta, dead letter, output) that are not in the stream's hash slot. On
// a Redis Cluster they must all share it; a publish channel is not a key and is exempt.
func (c *Consumer) CheckSlots() error { return checkSlots(c.o.Name, c.store.Keys()) }

// Options returns the options in use, defaults filled in.
func (c *Consumer) Options() Options { return c.o }

// Swap installs a new handler version; the batch in progress finishes with the old one.
func (c *Consumer) Swap(v exec.Version) {
	if v.Handler == nil {
		return
	}
	c.version.Store(&loaded{Version: v, mtime: v.ModTime.Local().Format("2006-01-02 15:04:05")})
	c.o.Metrics.Handler(v.Handler.Hash(), v.Runtime, v.ModTime)
}

// Version returns the handler version in use.
func (c *Consumer) Version() exec.Version { return c.version.Load().Version }

// Run consumes the stream until ctx is done, then finishes the entries delivered to this
// consumer (within DrainTimeout), leaves the consumer registry and returns nil (see
// Hand-over in the package documentation). It creates the consumer group when missing, loads the
// state, handles this consumer's own pending entries (left by a previous run of the same
// consumer name) and then new ones, and periodically reclaims entries idle for ClaimIdle.
// Redis errors are logged, counted and retried; Run returns an error only for what retrying
// cannot fix: the stream key holding another type, a corrupt state hash, or an aborted batch
// (BeforeCommit).
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.setup(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	// Registered before reading anything, so that no starting replica takes this
	// consumer's entries for a dead one's; heartbeats go on while a stopping consumer
	// drains, until Run returns.
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	if err := c.members.Join(rctx); err != nil {
		c.redisError("join the consumer registry", err)
	}
	cancel()
	mctx, stopMembers := context.WithCancel(context.WithoutCancel(ctx))
	membersDone := make(chan struct{})
	go func() {
		defer close(membersDone)
		_ = c.members.Run(mctx)
	}()
	defer func() {
		stopMembers()
		<-membersDone
	}()
	// Entries of dead consumers are older than anything new: take them over first.
	if err := c.takeover(ctx); err != nil {
		return err
	}
	claim := c.o.Clock.NewTicker(c.o.ClaimInterval)
	defer claim.Stop()
	lag := c.o.Clock.NewTicker(c.o.LagInterval)
	defer lag.Stop()
	c.history, c.cursor = true, "0"
	c.refreshLag(ctx)
	// ahead reads the following batches of new entries while the current one is executed,
	// so that Redis works while the handler does. Its reads are always taken or discarded
	// before anything that must not race with them: a reclaim, a history read, returning.
	ahead := c.readAhead(ctx)
	defer ahead.stop()
	bo := backoff.New(retryMin, 0)
	claimDue, takeoverDue := false, false
	for ctx.Err() == nil {
		select {
		case <-claim.C():
			claimDue, takeoverDue = true, true
		case <-c.members.Changes():
			takeoverDue = true
		case <-lag.C():
			c.refreshLag(ctx)
		default:
		}
		if (claimDue || takeoverDue) && !c.dirty && !c.history {
			// Delivered to this consumer already: handle them before reclaiming.
			failed := false
			for ahead.out > 0 && !failed {
				r := ahead.take()
				switch {
				case r.err != nil && ctx.Err() == nil:
					c.redisError("read", r.err)
					c.history, c.cursor = true, "0"
					failed = true
				case len(r.batch) > 0 && !c.dirty:
					if err := c.process(ctx, r.batch, SourceNew); err != nil {
						return err
					}
				}
			}
			if failed || c.dirty {
				continue
			}
			if err := c.flush(ctx); err != nil {
				return err
			}
			if !c.dirty && takeoverDue {
				takeoverDue = false
				if err := c.takeover(ctx); err != nil {
					return err
				}
			}
			if !c.dirty && claimDue {
				claimDue = false
				if err := c.reclaim(ctx); err != nil {
					return err
				}
			}
			continue
		}
		if c.dirty || c.history {
			// Their entries are pending for this consumer: the history read returns them.
			ahead.discard()
			if err := c.flush(ctx); err != nil {
				return err
			}
		}
		if c.dirty {
			if err := c.reload(ctx); err != nil {
				if permanent(err) {
					return err
				}
				c.redisError("reload state", err)
				c.wait(ctx, bo.Next())
				continue
			}
		}
		src := SourceNew
		if c.history {
			src = SourcePending
		}
		var batch []entry
		var err error
		if src == SourcePending {
			batch, err = c.read(ctx, src)
		} else {
			ahead.ask(1)
			// While the read waits for entries, settle the commit in flight as soon as it
			// returns rather than when the next batch arrives.
			var r readResult
			for r.batch == nil && r.err == nil {
				var done chan struct{}
				if c.inflight != nil {
					done = c.inflight.done
				}
				select {
				case r = <-ahead.results:
					ahead.out--
					if r.batch == nil && r.err == nil {
						r.batch = []entry{}
					}
				case <-done:
					if err := c.flush(ctx); err != nil {
						return err
					}
				}
			}
			batch, err = r.batch, r.err
			if c.dirty && err == nil {
				continue // a settled commit's reply was lost: these entries are read again
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if err := c.flush(ctx); err != nil {
				return err
			}
			if isNoGroup(err) {
				// The stream (and its group with it) was deleted: start over.
				c.o.Logger.Warn("consumer group vanished; recreating it", "group", c.o.Group)
				err = c.ensureGroup(ctx)
			}
			if permanent(err) {
				return err
			}
			if err != nil {
				c.redisError("read", err)
			}
			// A read whose reply was lost may still have delivered entries to this consumer.
			c.history, c.cursor = true, "0"
			c.wait(ctx, bo.Next())
			continue
		}
		bo.Reset()
		if len(batch) == 0 {
			c.history = false
			continue
		}
		if c.history {
			c.cursor = batch[len(batch)-1].id
		} else if len(batch) >= c.o.Batch {
			ahead.ask(readAheadDepth) // a backlog: keep Redis busy
		} else {
			ahead.ask(1) // caught up: one read waiting for new entries is enough
		}
		if err := c.process(ctx, batch, src); err != nil {
			return err
		}
	}
	return c.drain(ctx, ahead)
}

// setup creates the group and loads the state, retrying Redis errors until ctx ends.
func (c *Consumer) setup(ctx context.Context) error {
	bo := backoff.New(retryMin, 0)
	for ctx.Err() == nil {
		err := c.ensureGroup(ctx)
		if err == nil {
			err = c.reload(ctx)
		}
		if err == nil {
			return nil
		}
		if permanent(err) {
			return err
		}
		c.redisError("start", err)
		c.wait(ctx, bo.Next())
	}
	return nil
}

// ensureGroup creates the consumer group (and the stream) when missing.
func (c *Consumer) ensureGroup(ctx context.Context) error {
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	defer cancel()
	cl := c.o.Client
	err := cl.Do(rctx, cl.B().XgroupCreate().Key(c.o.Stream).Group(c.o.Group).Id(c.o.Start).Mkstream().Build()).Error()
	if err == nil {
		c.o.Logger.Info("consumer group created", "group", c.o.Group, "start", c.o.Start)
		return nil
	}
	if rueidis.IsRedisBusyGroup(err) {
		return nil
	}
	return fmt.Errorf("create group %s on stream %s: %w", c.o.Group, c.o.Stream, err)
}

// reload reads the state back from Redis.
func (c *Consumer) reload(ctx context.Context) error {
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	snap, _, err := c.store.Load(rctx, c.o.Consumer, nil)
	cancel()
	if err != nil {
		return err
	}
	return c.adopt(snap)
}

// adopt makes snap the state in memory.
func (c *Consumer) adopt(snap state.StreamSnapshot) error {
	env, err := exec.DecodeEnv(snap.Fields)
	if err != nil {
		return &stateError{fmt.Errorf("state of %s in %s: %w", c.o.Name, c.o.StateKey, err)}
	}
	c.env, c.fields, c.ver = env, snap.Fields, snap.Version
	c.lastExec = nil
	if !snap.LastExecution.IsZero() {
		t := snap.LastExecution
		c.lastExec = &t
	}
	if c.dirty {
		// A commit whose reply was lost: what it acknowledged is gone from the pending list,
		// what it did not is read again.
		c.dirty = false
		c.history, c.cursor = true, "0"
	}
	return nil
}

// stateError marks a state that cannot be decoded: retrying does not help.
type stateError struct{ err error }

func (e *stateError) Error() string { return e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	if err == nil {
		return false
	}
	var se *stateError
	if errors.As(err, &se) || state.IsCorrupt(err) {
		return true
	}
	return redisErrPrefix(err, "WRONGTYPE")
}

func isNoGroup(err error) bool { return redisErrPrefix(err, "NOGROUP") }

// redisErrPrefix reports whether err wraps a Redis error reply starting with prefix.
func redisErrPrefix(err error, prefix string) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && !re.IsNil() && strings.HasPrefix(re.Error(), prefix)
}

func (c *Consumer) redisError(op string, err error) {
	c.o.Metrics.Error(metrics.ErrRedis)
	c.o.Logger.Warn("redis error; pending entries will be retried", "op", op, "kind", metrics.ErrRedis, "err", err)
}

// wait sleeps d on the clock or until ctx ends.
func (c *Consumer) wait(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-c.o.Clock.After(d):
	}
}

// retryMin is the first delay after a failed Redis call or a refused commit, up to
// backoff.DefaultMax: shorter than the trigger's because a consumer's entries wait behind it.
const retryMin = 50 * time.Millisecond
