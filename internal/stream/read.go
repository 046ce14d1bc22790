package stream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// entry is one stream entry of a batch and what became of it.
type entry struct {
	id string
	// fields are the entry's field/value pairs, flat; nil for an entry deleted from the
	// stream after it was delivered (it is acknowledged without running).
	fields     []string
	deliveries int64

	outcome  outcome
	stateRes *exec.Result // set by a parallel run that returned state (see runParallel)
	output   []byte
	value    any
	err      error
	kind     exec.Kind
	took     time.Duration
}

type outcome uint8

const (
	outcomeNone  outcome = iota
	outcomeOK            // executed: acknowledge, write the output
	outcomeRetry         // failed: leave pending until reclaimed
	outcomeDead          // move to the dead-letter stream
	outcomeSkip          // deleted from the stream: acknowledge only
	outcomeGone          // no longer pending for this consumer: drop
)

type readResult struct {
	batch []entry
	err   error
}

// readAheadDepth is how many batches of new entries are read ahead of the one executing
// while there is a backlog (the last read filled a batch). Reads are made one after another,
// so batches arrive in the stream's order. A consumer that has caught up keeps one read
// waiting (up to Block) for new entries, so that dropping reads ahead (to reread, see Run)
// never waits out more than one Block.
const readAheadDepth = 2

// reads is the goroutine that reads batches of new entries ahead of the consumer: each
// value sent on asks is one read, whose result comes on results.
type reads struct {
	asks    chan struct{}
	results chan readResult
	out     int // reads asked for and not yet taken
}

func (c *Consumer) readAhead(ctx context.Context) *reads {
	r := &reads{asks: make(chan struct{}, readAheadDepth), results: make(chan readResult, readAheadDepth)}
	go func() {
		for range r.asks {
			b, err := c.read(ctx, SourceNew)
			r.results <- readResult{b, err}
		}
	}()
	return r
}

// ask tops the reads in flight or waiting up to depth (at most readAheadDepth).
func (r *reads) ask(depth int) {
	for ; r.out < depth; r.out++ {
		r.asks <- struct{}{}
	}
}

// take waits for the oldest read.
func (r *reads) take() readResult {
	r.out--
	return <-r.results
}

// discard waits for every read asked for and drops its batch.
func (r *reads) discard() {
	for r.out > 0 {
		r.take()
	}
}

// stop ends the goroutine once the reads asked for are taken.
func (r *reads) stop() {
	r.discard()
	close(r.asks)
}

// read returns the next batch: new entries (blocking up to Block) or, in history mode, this
// consumer's own pending entries after the cursor.
func (c *Consumer) read(ctx context.Context, src Source) ([]entry, error) {
	cl := c.o.Client
	g := cl.B().Xreadgroup().Group(c.o.Group, c.o.Consumer).Count(int64(c.o.Batch))
	var cmd rueidis.Completed
	if src == SourcePending {
		cmd = g.Streams().Key(c.o.Stream).Id(c.cursor).Build()
	} else {
		cmd = g.Block(c.o.Block.Milliseconds()).Streams().Key(c.o.Stream).Id(">").Build()
	}
	rctx, cancel := context.WithTimeout(ctx, c.o.Block+c.o.RedisTimeout)
	defer cancel()
	res := cl.Do(rctx, cmd)
	if err := res.Error(); err != nil {
		if rueidis.IsRedisNil(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("XREADGROUP %s %s: %w", c.o.Stream, c.o.Group, err)
	}
	msg, _ := res.ToMessage()
	entries, err := streamEntries(&msg, c.o.Stream)
	if err != nil {
		return nil, fmt.Errorf("XREADGROUP %s: %w", c.o.Stream, err)
	}
	return parseEntries(entries, src == SourceNew)
}

// streamEntries picks the entries of stream out of an XREAD(GROUP) reply: a RESP3 map or a
// RESP2 array of [name, entries] pairs.
func streamEntries(m *rueidis.RedisMessage, stream string) ([]rueidis.RedisMessage, error) {
	if m.IsMap() {
		kv, err := m.AsMap()
		if err != nil {
			return nil, err
		}
		v, ok := kv[stream]
		if !ok {
			return nil, nil
		}
		return v.ToArray()
	}
	pairs, err := m.ToArray()
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		kv, err := p.ToArray()
		if err != nil || len(kv) != 2 {
			return nil, fmt.Errorf("unexpected reply element (%v)", err)
		}
		if name, _ := kv[0].ToString(); name == stream {
			return kv[1].ToArray()
		}
	}
	return nil, nil
}

// parseEntries converts [id, [field, value, ...]] elements. Entries read with ">" were
// delivered once; the others' delivery counts are looked up before they run.
func parseEntries(msgs []rueidis.RedisMessage, fresh bool) ([]entry, error) {
	out := make([]entry, 0, len(msgs))
	for i := range msgs {
		pair, err := msgs[i].ToArray()
		if err != nil || len(pair) != 2 {
			// Redis 6.2's XAUTOCLAIM reports a deleted entry as a nil element; it has left the
			// pending list already.
			if msgs[i].IsNil() {
				continue
			}
			return nil, fmt.Errorf("unexpected stream entry (%v)", err)
		}
		id, err := pair[0].ToString()
		if err != nil {
			return nil, fmt.Errorf("stream entry id: %w", err)
		}
		e := entry{id: id}
		if fresh {
			e.deliveries = 1
		}
		if !pair[1].IsNil() {
			if e.fields, err = pair[1].AsStrSlice(); err != nil {
				return nil, fmt.Errorf("stream entry %s: %w", id, err)
			}
			if e.fields == nil {
				e.fields = []string{}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// lookupDeliveries fills in the delivery counts of entries not read with ">" and marks those
// no longer pending for this consumer as gone.
func (c *Consumer) lookupDeliveries(ctx context.Context, batch []entry) error {
	cl := c.o.Client
	cmds := make(rueidis.Commands, len(batch))
	for i := range batch {
		cmds[i] = cl.B().Xpending().Key(c.o.Stream).Group(c.o.Group).Start(batch[i].id).End(batch[i].id).Count(1).Consumer(c.o.Consumer).Build()
	}
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	defer cancel()
	for i, r := range cl.DoMulti(rctx, cmds...) {
		rows, err := r.ToArray()
		if err != nil {
			return fmt.Errorf("XPENDING %s %s: %w", c.o.Stream, batch[i].id, err)
		}
		if len(rows) == 0 {
			batch[i].outcome = outcomeGone
			continue
		}
		row, err := rows[0].ToArray()
		if err != nil || len(row) != 4 {
			return fmt.Errorf("XPENDING %s %s: unexpected reply (%v)", c.o.Stream, batch[i].id, err)
		}
		if batch[i].deliveries, err = row[3].AsInt64(); err != nil {
			return fmt.Errorf("XPENDING %s %s: delivery count: %w", c.o.Stream, batch[i].id, err)
		}
	}
	return nil
}

// reclaim takes over entries pending for at least ClaimIdle, from any consumer of the group
// (including this one: that is how failed entries are retried), and processes them.
func (c *Consumer) reclaim(ctx context.Context) error {
	cl := c.o.Client
	cursor := "0-0"
	for ctx.Err() == nil {
		rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
		res, err := cl.Do(rctx, cl.B().Xautoclaim().Key(c.o.Stream).Group(c.o.Group).Consumer(c.o.Consumer).
			MinIdleTime(strconv.FormatInt(c.o.ClaimIdle.Milliseconds(), 10)).Start(cursor).Count(int64(c.o.Batch)).Build()).ToArray()
		cancel()
		if err != nil {
			if isNoGroup(err) {
				return nil // the read loop recreates the group
			}
			c.redisError("reclaim", err)
			return nil
		}
		if len(res) < 2 {
			c.redisError("reclaim", fmt.Errorf("XAUTOCLAIM %s: reply of %d elements", c.o.Stream, len(res)))
			return nil
		}
		next, _ := res[0].ToString()
		msgs, err := res[1].ToArray()
		if err != nil {
			c.redisError("reclaim", fmt.Errorf("XAUTOCLAIM %s: %w", c.o.Stream, err))
			return nil
		}
		batch, err := parseEntries(msgs, false)
		if err != nil {
			c.redisError("reclaim", fmt.Errorf("XAUTOCLAIM %s: %w", c.o.Stream, err))
			return nil
		}
		if len(batch) > 0 {
			c.o.Logger.Info("reclaimed idle entries", "entries", len(batch), "idle", c.o.ClaimIdle)
			if err := c.process(ctx, batch, SourceClaimed); err != nil || c.dirty {
				return err // when dirty, the claimed entries are read again as this consumer's own
			}
		}
		if next == "" || next == "0-0" {
			return nil
		}
		cursor = next
	}
	return nil
}

// refreshLag exports the group's lag (entries not yet delivered; -1 when Redis cannot tell,
// after deletions) and pending count.
func (c *Consumer) refreshLag(ctx context.Context) {
	cl := c.o.Client
	rctx, cancel := redisconn.CallContext(ctx, c.o.RedisTimeout)
	defer cancel()
	groups, err := cl.Do(rctx, cl.B().XinfoGroups().Key(c.o.Stream).Build()).ToArray()
	if err != nil {
		if ctx.Err() == nil {
			c.o.Logger.Debug("XINFO GROUPS failed", "err", err)
		}
		return
	}
	for _, g := range groups {
		m, err := g.AsMap()
		if err != nil {
			continue
		}
		name := m["name"]
		if n, _ := name.ToString(); n != c.o.Group {
			continue
		}
		pendingMsg, lagMsg := m["pending"], m["lag"]
		pending, _ := pendingMsg.AsInt64()
		lag, err := lagMsg.AsInt64()
		if err != nil {
			lag = -1
		}
		c.o.Metrics.StreamLag(lag, pending)
		return
	}
}
