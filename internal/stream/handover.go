package stream

// Hand-over between consumers. Every consumer heartbeats in a registry of the group's live
// consumers (lease.Members, Options.MembersKey). A consumer that stops on purpose finishes
// what was delivered to it before it leaves (drain); one that dies without a goodbye drops
// out of the registry within HeartbeatTTL, and the live consumers then take over its pending
// entries at once (takeover), rather than after ClaimIdle. Entries are only ever claimed from
// a consumer name that is not alive in the registry, asked of Redis just before the claim, so
// a live consumer's entries are not processed twice (a consumer paused past its TTL is the
// exception: its late commit acknowledges nothing that was taken over, see doc.go).

import (
	"context"
	"fmt"
	"slices"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// newMembers makes this consumer's registry handle. Heartbeats follow the real clock whatever
// Options.Clock is: liveness is judged by Redis' clock, which a test's fake clock does not move.
func (c *Consumer) newMembers() (*lease.Members, error) {
	m, err := lease.NewMembers(lease.MembersOptions{
		Client: c.o.Client, Key: c.o.MembersKey, Self: c.o.Consumer, TTL: c.o.HeartbeatTTL,
		RedisTimeout: min(c.o.RedisTimeout, lease.DefaultMembersTTL), Clock: clock.Real(), Logger: c.o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("stream consumer %s: %w", c.o.Name, err)
	}
	return m, nil
}

// takeover claims and processes the pending entries of every consumer of the group that is
// not alive in the registry, oldest consumer's entries first in id order, before this
// consumer reads anything new. It reports an aborted batch (BeforeCommit) only; Redis
// errors are logged and retried at the next takeover.
func (c *Consumer) takeover(ctx context.Context) error {
	if err := c.flush(ctx); err != nil || c.dirty {
		return err
	}
	cl := c.o.Client
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	summary, err := cl.Do(rctx, cl.B().Xpending().Key(c.o.Stream).Group(c.o.Group).Build()).ToArray()
	cancel()
	if err != nil {
		if !isNoGroup(err) {
			c.redisError("takeover", err)
		}
		return nil
	}
	if len(summary) < 4 {
		return nil
	}
	owners, _ := summary[3].ToArray()
	live := c.members.Live()
	for _, o := range owners {
		pair, err := o.ToArray()
		if err != nil || len(pair) != 2 {
			continue
		}
		name, _ := pair[0].ToString()
		if name == c.o.Consumer || slices.Contains(live, name) {
			continue
		}
		// Ask Redis now: the view may be a heartbeat old.
		alive, err := c.members.Alive(ctx, name)
		if err != nil {
			c.redisError("takeover", err)
			return nil
		}
		if alive {
			continue
		}
		if err := c.claimFrom(ctx, name); err != nil || c.dirty {
			return err
		}
	}
	return nil
}

// claimFrom moves the pending entries of the dead consumer name to this one with XCLAIM and
// processes them, a batch at a time in id order.
func (c *Consumer) claimFrom(ctx context.Context, name string) error {
	cl := c.o.Client
	for ctx.Err() == nil {
		rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
		rows, err := cl.Do(rctx, cl.B().Xpending().Key(c.o.Stream).Group(c.o.Group).Start("-").End("+").
			Count(int64(c.o.Batch)).Consumer(name).Build()).ToArray()
		cancel()
		if err != nil {
			c.redisError("takeover", err)
			return nil
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]string, 0, len(rows))
		for _, r := range rows {
			row, err := r.ToArray()
			if err != nil || len(row) != 4 {
				continue
			}
			id, _ := row[0].ToString()
			ids = append(ids, id)
		}
		rctx, cancel = redisconn.CallContext(ctx, c.o.RedisTimeout)
		msgs, err := cl.Do(rctx, cl.B().Xclaim().Key(c.o.Stream).Group(c.o.Group).Consumer(c.o.Consumer).
			MinIdleTime("0").Id(ids...).Build()).ToArray()
		cancel()
		if err != nil {
			c.redisError("takeover", err)
			return nil
		}
		batch, err := parseEntries(msgs, false)
		if err != nil {
			c.redisError("takeover", fmt.Errorf("XCLAIM %s: %w", c.o.Stream, err))
			return nil
		}
		// Entries deleted from the stream are dropped from the pending list by XCLAIM (Redis
		// 7) and come back as nothing: ack the rest.
		c.o.Logger.Info("took over the entries of a consumer that is not alive", "from", name, "entries", len(batch),
			"first", ids[0], "ttl", c.o.HeartbeatTTL)
		if len(batch) == 0 {
			continue
		}
		if err := c.process(ctx, batch, SourceClaimed); err != nil || c.dirty {
			return err
		}
		if len(rows) < c.o.Batch {
			return nil
		}
	}
	return nil
}

// drain finishes, once Run's context has ended, the entries delivered to this consumer: the
// batches read ahead, and (a read cut short may have delivered entries whose reply was lost)
// everything pending under its name, in id order, until none is left or DrainTimeout passes.
// Then it leaves the registry, so that a live consumer takes over whatever is left at once.
func (c *Consumer) drain(ctx context.Context, ahead *reads) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.DrainTimeout)
	defer cancel()
	defer func() {
		lctx, lcancel := redisconn.CallContext(context.Background(), c.o.RedisTimeout)
		if err := c.members.Leave(lctx); err != nil {
			c.o.Logger.Warn("could not leave the consumer registry; the others take over after its TTL", "err", err, "ttl", c.o.HeartbeatTTL)
		}
		lcancel()
	}()
	for ahead.out > 0 {
		r := ahead.take()
		if len(r.batch) > 0 && !c.dirty && dctx.Err() == nil {
			if err := c.process(dctx, r.batch, SourceNew); err != nil {
				return err
			}
		}
	}
	if err := c.flush(dctx); err != nil {
		return err
	}
	c.history, c.cursor = true, "0"
	for dctx.Err() == nil {
		if c.dirty {
			if err := c.reload(dctx); err != nil {
				break
			}
		}
		batch, err := c.read(dctx, SourcePending)
		if err != nil {
			c.redisError("read while stopping", err)
			break
		}
		if len(batch) == 0 {
			break
		}
		c.cursor = batch[len(batch)-1].id
		if err := c.process(dctx, batch, SourcePending); err != nil {
			return err
		}
	}
	if err := c.flush(dctx); err != nil {
		return err
	}
	left := c.pendingCount(dctx)
	c.o.Logger.Info("stopped reading; finished what was delivered", "left_pending", left)
	return nil
}

// pendingCount is how many entries are pending under this consumer's name (-1: unknown).
func (c *Consumer) pendingCount(ctx context.Context) int64 {
	cl := c.o.Client
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	defer cancel()
	rows, err := cl.Do(rctx, cl.B().Xpending().Key(c.o.Stream).Group(c.o.Group).Start("-").End("+").
		Count(MaxBatch).Consumer(c.o.Consumer).Build()).ToArray()
	if err != nil {
		return -1
	}
	return int64(len(rows))
}
