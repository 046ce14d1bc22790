package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// fillStream appends n entries in the metrics shape (field data = the JSON document, each
// with its own timestamp) to key, pipelined in chunks so the fill is not what is measured.
func fillStream(ctx context.Context, c rueidis.Client, key string, tpl docTemplate, ts *timestamps, n int) error {
	const chunk = 1000
	cmds := make(rueidis.Commands, 0, chunk)
	for left := n; left > 0; left -= len(cmds) {
		cmds = cmds[:0]
		for range min(chunk, left) {
			cmds = append(cmds, c.B().Xadd().Key(key).Id("*").FieldValue().
				FieldValue("data", rueidis.BinaryString(tpl.Doc(ts.Next()))).Build())
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return fmt.Errorf("XADD %s: %w", key, err)
			}
		}
	}
	return nil
}

// procState is what watchStream needs to know about the process that consumes.
type procState interface {
	Exited() bool
	ExitReason() string
}

// streamResult is one throughput row's figures.
type streamResult struct {
	Entries int
	Rate    float64 // entries/s from the first output entry to the last
	// ByIDs: Rate was taken from the output stream's entry IDs (the milliseconds at which
	// Redis added the first and the last), rather than from when the driver saw them.
	ByIDs bool
	Wall  time.Duration // from the process start to the last output entry
}

// groupInfo is the part of XINFO GROUPS the driver reads.
type groupInfo struct {
	Exists      bool
	EntriesRead int64 // -1 when Redis does not know
	Lag         int64 // -1 when Redis does not know
	Pending     int64
}

func readGroup(ctx context.Context, c rueidis.Client, stream, group string) (groupInfo, error) {
	arr, err := c.Do(ctx, c.B().XinfoGroups().Key(stream).Build()).ToArray()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return groupInfo{}, nil
		}
		return groupInfo{}, fmt.Errorf("XINFO GROUPS %s: %w", stream, err)
	}
	for _, g := range arr {
		m, err := g.AsMap()
		if err != nil {
			return groupInfo{}, fmt.Errorf("XINFO GROUPS %s: %w", stream, err)
		}
		name := m["name"]
		if n, _ := name.ToString(); n != group {
			continue
		}
		num := func(k string) int64 {
			v, ok := m[k]
			if !ok || v.IsNil() {
				return -1
			}
			n, err := v.AsInt64()
			if err != nil {
				return -1
			}
			return n
		}
		return groupInfo{Exists: true, EntriesRead: num("entries-read"), Lag: num("lag"), Pending: max(0, num("pending"))}, nil
	}
	return groupInfo{}, nil
}

// watchPoll is how often watchStream looks at the output: seldom enough not to take the
// consumer's CPU (polling every 2 ms cost it 5-15% of its throughput on 2 cores), as the
// rate comes from Redis' own clock, not from when the driver saw the entries.
const watchPoll = 20 * time.Millisecond

// outputInfo is the part of XINFO STREAM the driver reads from an output stream.
type outputInfo struct {
	Exists bool
	Added  int64 // entries-added: every entry ever added, trimmed ones included
	LastMs int64 // the millisecond part of last-generated-id: when Redis added the last one
}

func readOutput(ctx context.Context, c rueidis.Client, key string) (outputInfo, error) {
	m, err := c.Do(ctx, c.B().XinfoStream().Key(key).Build()).AsMap()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return outputInfo{}, nil
		}
		return outputInfo{}, fmt.Errorf("XINFO STREAM %s: %w", key, err)
	}
	addedMsg, idMsg := m["entries-added"], m["last-generated-id"]
	added, err := addedMsg.AsInt64()
	if err != nil {
		return outputInfo{}, fmt.Errorf("XINFO STREAM %s entries-added (Redis 7.0 or later): %w", key, err)
	}
	id, err := idMsg.ToString()
	if err != nil {
		return outputInfo{}, fmt.Errorf("XINFO STREAM %s last-generated-id: %w", key, err)
	}
	head, _, _ := strings.Cut(id, "-")
	ms, err := strconv.ParseInt(head, 10, 64)
	if err != nil {
		return outputInfo{}, fmt.Errorf("XINFO STREAM %s last-generated-id %q: %w", key, id, err)
	}
	return outputInfo{Exists: true, Added: added, LastMs: ms}, nil
}

// watchStream waits until n entries were added to the output stream, or the consumer group
// has read all n with nothing pending and no lag, polling every watchPoll. The output may be
// trimmed: progress is XINFO STREAM's entries-added, not its length. The rate counts the
// entries added after the driver first saw one, over the milliseconds between the IDs Redis
// gave to that one and to the last (Redis' clock); when they share a millisecond, from when
// the driver saw them. Either way process start-up is left out of it (it is in Wall). A
// process that exits, a group that never appears, or no progress for stall is a failure
// whose error says which, with the process's last log line where it exited.
func watchStream(ctx context.Context, c rueidis.Client, p procState, in, out, group string, n int,
	started time.Time, timeout, stall time.Duration) (streamResult, error) {
	poll := time.NewTicker(watchPoll)
	defer poll.Stop()
	var first time.Time
	var firstAdded, firstMs int64
	lastCount, lastProgress := int64(-1), time.Now()
	deadline := started.Add(timeout)
	result := func(at time.Time) streamResult {
		r := streamResult{Entries: n, Wall: at.Sub(started)}
		if span := at.Sub(first); !first.IsZero() && span > 0 && int64(n) > firstAdded {
			r.Rate = float64(int64(n)-firstAdded) / span.Seconds()
		} else if r.Wall > 0 {
			r.Rate = float64(n) / r.Wall.Seconds()
		}
		return r
	}
	for {
		select {
		case <-ctx.Done():
			return streamResult{}, ctx.Err()
		case <-poll.C:
		}
		o, err := readOutput(ctx, c, out)
		if err != nil {
			return streamResult{}, err
		}
		count := o.Added
		now := time.Now()
		if count > 0 && first.IsZero() {
			first, firstAdded, firstMs = now, count, o.LastMs
		}
		if count >= int64(n) {
			r := result(now)
			if span := o.LastMs - firstMs; span > 0 && count > firstAdded {
				r.Rate, r.ByIDs = float64(count-firstAdded)/(float64(span)/1000), true
			}
			return r, nil
		}
		if now.After(deadline) {
			return streamResult{}, fmt.Errorf("only %d of %d output entries on %s within %v", count, n, out, timeout)
		}
		if count != lastCount {
			lastCount, lastProgress = count, now
			continue
		}
		quiet := now.Sub(lastProgress)
		if quiet < 100*time.Millisecond {
			continue
		}
		g, err := readGroup(ctx, c, in, group)
		if err != nil {
			return streamResult{}, err
		}
		if g.Exists && g.EntriesRead >= int64(n) && g.Lag == 0 && g.Pending == 0 {
			return result(lastProgress), nil
		}
		switch {
		case p.Exited():
			return streamResult{}, fmt.Errorf("after %d of %d entries: %s", count, n, p.ExitReason())
		case quiet > stall && !g.Exists && count == 0:
			return streamResult{}, fmt.Errorf("no consumer group %q on %s and no output after %v: the consumer never started reading",
				group, in, stall.Round(time.Second))
		case quiet > stall:
			return streamResult{}, fmt.Errorf("stalled at %d of %d output entries on %s for %v (group: read %d, lag %d, pending %d)",
				count, n, out, stall.Round(time.Second), g.EntriesRead, g.Lag, g.Pending)
		}
	}
}

// streamLoopMain is the reference stream consumer: XREADGROUP a batch, XADD one output per
// entry and XACK the batch, with no decoding, no evaluation and no transaction. The writes
// of a batch and the read of the next go in one pipeline, so a batch costs one round trip.
// Each output has the fields eventrt writes (data, source) and, as data, a fixed document the
// size of the stateless mapping's output: the loop moves what eventrt moves, minus the work.
func streamLoopMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("streamloop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "redis host:port")
	in := fs.String("in", "", "input stream")
	out := fs.String("out", "", "output stream")
	group := fs.String("group", "eventrt", "consumer group")
	count := fs.Int64("count", 256, "entries per XREADGROUP")
	maxLen := fs.Int64("maxlen", 0, "approximate MAXLEN of the output stream (0: none)")
	maxRun := fs.Duration("max-duration", 10*time.Minute, "stop by itself after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *in == "" || *out == "" || *in == *out || *count < 1 || *maxLen < 0 {
		fmt.Fprintln(stderr, "streamloop: -addr, -in and -out are required, -in must differ from -out, -count must be positive, -maxlen not negative")
		return 2
	}
	c, err := newClient(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "streamloop: %v\n", err)
		return 1
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *maxRun)
	defer cancel()
	l := streamLoop{c: c, in: *in, out: *out, group: *group, consumer: "bench", count: *count, maxLen: *maxLen}
	if err := l.run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "streamloop: %v\n", err)
		return 1
	}
	return 0
}

// loopOutput is what the reference loop writes for every entry: the stateless mapping's
// output for the sample document, so that its writes weigh what eventrt's do.
const loopOutput = `{"mean_cpu_percent":30.98,"percent_memory_caching":27.05,"percent_network_egress":16.74,"timestamp":1764085200.123456}`

type streamLoop struct {
	c                        rueidis.Client
	in, out, group, consumer string
	count, maxLen            int64
}

func (l *streamLoop) run(ctx context.Context) error {
	c := l.c
	err := c.Do(ctx, c.B().XgroupCreate().Key(l.in).Group(l.group).Id("0").Mkstream().Build()).Error()
	if err != nil && !rueidis.IsRedisBusyGroup(err) {
		return fmt.Errorf("XGROUP CREATE %s %s: %w", l.in, l.group, err)
	}
	var entries []rueidis.XRangeEntry
	for ctx.Err() == nil {
		if len(entries) == 0 {
			// Nothing in hand: wait for entries.
			res, err := c.Do(ctx, l.read(1000)).AsXRead()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("XREADGROUP %s: %w", l.in, err)
			}
			entries = res[l.in]
			continue
		}
		cmds := make(rueidis.Commands, 0, len(entries)+2)
		ids := make([]string, len(entries))
		for i, e := range entries {
			cmds = append(cmds, l.xadd(e.ID))
			ids[i] = e.ID
		}
		cmds = append(cmds, c.B().Xack().Key(l.in).Group(l.group).Id(ids...).Build(), l.read(-1))
		res := c.DoMulti(ctx, cmds...)
		for _, r := range res[:len(res)-1] {
			if err := r.Error(); err != nil {
				return fmt.Errorf("XADD %s / XACK %s: %w", l.out, l.in, err)
			}
		}
		next, err := res[len(res)-1].AsXRead()
		if err != nil && !rueidis.IsRedisNil(err) {
			return fmt.Errorf("XREADGROUP %s: %w", l.in, err)
		}
		entries = next[l.in]
	}
	return nil
}

// read is the XREADGROUP of the next batch, blocking up to blockMs (none when negative).
func (l *streamLoop) read(blockMs int64) rueidis.Completed {
	g := l.c.B().Xreadgroup().Group(l.group, l.consumer).Count(l.count)
	if blockMs >= 0 {
		return g.Block(blockMs).Streams().Key(l.in).Id(">").Build()
	}
	return g.Streams().Key(l.in).Id(">").Build()
}

func (l *streamLoop) xadd(id string) rueidis.Completed {
	x := l.c.B().Xadd().Key(l.out)
	if l.maxLen > 0 {
		return x.Maxlen().Almost().Threshold(strconv.FormatInt(l.maxLen, 10)).Id("*").FieldValue().
			FieldValue("data", loopOutput).FieldValue("source", id).Build()
	}
	return x.Id("*").FieldValue().FieldValue("data", loopOutput).FieldValue("source", id).Build()
}
