package stream

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// consumerPending is how many entries are pending under one consumer's name.
func (h *harness) consumerPending(consumer string) int {
	h.t.Helper()
	rows, err := h.client.Do(context.Background(), h.client.B().Xpending().Key("in").Group(DefaultGroup).
		Start("-").End("+").Count(100000).Consumer(consumer).Build()).ToArray()
	if err != nil {
		h.t.Fatal(err)
	}
	return len(rows)
}

// checkCounterOrder asserts that a stateful handler saw the entries in stream order: the
// output of the i-th entry carries n = i+1.
func checkCounterOrder(t *testing.T, outs []output, ids []string) {
	t.Helper()
	checkExactlyOnce(t, outs, ids)
	pos := map[string]int{}
	for i, id := range ids {
		pos[id] = i
	}
	for _, o := range outs {
		if n, _ := o.Data["n"].(float64); int(n) != pos[o.Source]+1 {
			t.Fatalf("entry %s (number %d in the stream) saw counter %v: out of order", o.Source, pos[o.Source]+1, o.Data["n"])
		}
	}
}

// A consumer stopped in a backlog finishes what was delivered to it and leaves nothing
// pending under its name; a consumer with another name then finishes the stream, so that a
// stateful handler sees every entry once, in order.
func TestStopInABacklogHandsOverCleanly(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 3000)
	a := h.options("a")
	stopA := h.start(h.newConsumer(a, compile(t, counterSrc)))
	h.await("a has committed a batch", func() bool { return h.total(acked) > 0 })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if n := h.consumerPending("a"); n != 0 {
		t.Fatalf("%d entries left pending under the stopped consumer's name", n)
	}
	if got := h.srv.Do("ZSCORE", DefaultMembersKey("in", DefaultGroup), "a"); got != "" {
		t.Fatalf("the stopped consumer is still in the registry (%s)", got)
	}
	before := h.total(acked)
	h.start(h.newConsumer(h.options("b"), compile(t, counterSrc)))
	h.await("every entry acked", func() bool { return h.total(acked) >= len(ids) })
	checkCounterOrder(t, h.outputs("out"), ids)
	t.Logf("a acknowledged %d entries before stopping, b the other %d", before, len(ids)-before)
}

// The entries of a consumer that is not alive in the registry (it died without a goodbye)
// are taken over by a consumer that starts, before anything new and without waiting for
// STREAM_CLAIM_IDLE, in order.
func TestDeadConsumersEntriesAreTakenOverAtStart(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 30)
	h.srv.Do("XGROUP", "CREATE", "in", DefaultGroup, "0")
	h.srv.Do("XREADGROUP", "GROUP", DefaultGroup, "dead", "COUNT", "20", "STREAMS", "in", ">")
	o := h.options("live")
	o.ClaimIdle = time.Hour // the idle reclaim has no part in this
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	h.await("30 acked", func() bool { return h.total(acked) >= 30 })
	checkCounterOrder(t, h.outputs("out"), ids)
	h.mu.Lock()
	first := h.reports[0].Source
	h.mu.Unlock()
	if first != SourceClaimed {
		t.Fatalf("first batch came from %s, want the dead consumer's entries (claimed)", first)
	}
}

// A consumer whose heartbeat stops while another runs has its entries taken over within
// seconds of its TTL; a consumer alive in the registry keeps its entries.
func TestEntriesOfAConsumerThatDiesAreTakenOverInSeconds(t *testing.T) {
	h := newHarness(t)
	ids := h.addValues("in", 0, 20)
	h.srv.Do("XGROUP", "CREATE", "in", DefaultGroup, "0")
	h.srv.Do("XREADGROUP", "GROUP", DefaultGroup, "ghost", "COUNT", "10", "STREAMS", "in", ">")
	h.srv.Do("XREADGROUP", "GROUP", DefaultGroup, "alive", "COUNT", "10", "STREAMS", "in", ">")
	now := redisMillis(t, h)
	h.srv.Do("ZADD", DefaultMembersKey("in", DefaultGroup), strconv.FormatInt(now+1500, 10), "ghost")
	h.srv.Do("ZADD", DefaultMembersKey("in", DefaultGroup), "99999999999999", "alive")
	o := h.options("live")
	o.ClaimIdle = time.Hour
	o.HeartbeatTTL = time.Second
	start := time.Now()
	h.start(h.newConsumer(o, compile(t, counterSrc)))
	h.await("the ghost's 10 entries acked", func() bool { return h.total(acked) >= 10 })
	took := time.Since(start)
	if n := h.consumerPending("ghost"); n != 0 {
		t.Fatalf("%d entries still pending under the dead consumer", n)
	}
	if n := h.consumerPending("alive"); n != 10 {
		t.Fatalf("%d entries pending under the live consumer, want its 10 untouched", n)
	}
	outs := h.outputs("out")
	if len(outs) != 10 || outs[0].Source != ids[0] || outs[9].Source != ids[9] {
		t.Fatalf("outputs %v, want the ghost's 10 entries in order", outs)
	}
	t.Logf("taken over %v after the consumer started (its heartbeat expired 1.5s after the start)", took.Round(time.Millisecond))
}

// redisMillis is Redis' clock in milliseconds (the registry's clock).
func redisMillis(t *testing.T, h *harness) int64 {
	t.Helper()
	tm, err := h.client.Do(context.Background(), h.client.B().Time().Build()).AsStrSlice()
	if err != nil || len(tm) != 2 {
		t.Fatalf("TIME: %v %v", tm, err)
	}
	sec, _ := strconv.ParseInt(tm[0], 10, 64)
	usec, _ := strconv.ParseInt(tm[1], 10, 64)
	return sec*1000 + usec/1000
}

// Deleting the state hash of a stateful handler while the consumer runs resets env: the next
// entry sees it empty, and the hash gets the whole env again, never a part of the old one.
func TestStateResetInStreamMode(t *testing.T) {
	h := newHarness(t)
	h.addValues("in", 0, 10)
	h.start(h.newConsumer(h.options("c"), compile(t, counterSrc)))
	h.await("10 acked", func() bool { return h.total(acked) >= 10 })
	if got := h.counterValue("{out}:env"); got != "10" {
		t.Fatalf("counter %s before the reset", got)
	}
	h.srv.Do("DEL", "{out}:env") // the meta hash (and its version) stays
	ids := h.addValues("in", 10, 5)
	h.await("15 acked", func() bool { return h.total(acked) >= 15 })
	outs := h.outputs("out")
	for i, o := range outs[10:] {
		if o.Source != ids[i] || o.Data["n"] != float64(i+1) {
			t.Fatalf("entry %d after the reset: source %s n %v, want %s n %d", i, o.Source, o.Data["n"], ids[i], i+1)
		}
	}
	if got := h.counterValue("{out}:env"); got != "5" {
		t.Fatalf("counter %s after the reset, want 5", got)
	}
}
