package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redistest"
)

// SIGTERM to the real binary in the middle of a stream backlog: it exits 0 with nothing
// pending under its consumer name, and a replacement with another name finishes every entry
// within seconds, in order for a stateful handler.
func TestSIGTERMInABacklogHandsOverToAnotherConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := redistest.Start(t)
	bin := buildBinary(t)
	const n = 5000
	c := srv.Client()
	ctx := context.Background()
	cmds := make(rueidis.Commands, 0, n)
	for i := range n {
		cmds = append(cmds, c.B().Xadd().Key("{in}").Id("*").FieldValue().FieldValue("data", fmt.Sprintf(`{"i":%d}`, i)).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	handler := writeHandler(t, `let n = (env.n ?? 0) + 1; result({n: n, i: input.i}, {n: n})`)
	daemon := func(consumer string) *osexec.Cmd {
		cmd := osexec.Command(bin)
		cmd.Env = append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", srv.Port),
			"HANDLER_PATH="+handler, "REDIS_INPUT_KEY={in}", "REDIS_OUTPUT_KEY={in}:out", "INPUT_MODE=stream",
			"STREAM_CONSUMER="+consumer, "STREAM_BATCH=100", "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "SHUTDOWN_TIMEOUT=10s")
		return cmd
	}
	a := daemon("pod-a")
	lines, await := startLogged(t, a)
	await("consumer group created")
	awaitStreamLen(t, c, "{in}:out", 1) // the first commit
	if err := a.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	if err := a.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if got := srv.Do("XPENDING", "{in}", "eventrt", "-", "+", "10", "pod-a"); got != "[]" {
		t.Fatalf("entries left pending under the stopped consumer: %s", got)
	}
	doneByA := srv.Do("XLEN", "{in}:out")
	start := time.Now()
	b := daemon("pod-b")
	startLogged(t, b)
	awaitStreamLen(t, c, "{in}:out", n)
	t.Logf("pod-a committed %s entries before stopping; pod-b the rest in %v", doneByA, time.Since(start).Round(time.Millisecond))
	es, err := c.Do(ctx, c.B().Xrange().Key("{in}:out").Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	for k, e := range es {
		var o struct{ N, I int }
		if err := json.Unmarshal([]byte(e.FieldValues["data"]), &o); err != nil {
			t.Fatal(err)
		}
		if o.I != k || o.N != k+1 {
			t.Fatalf("output %d: %+v, want entry %d with counter %d (every entry once, in order)", k, o, k, k+1)
		}
	}
}

// awaitStreamLen waits (boundedly) until stream holds at least n entries, woken by each XADD
// through a blocking XREAD.
func awaitStreamLen(t *testing.T, c rueidis.Client, stream string, n int64) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := c.Do(ctx, c.B().Xlen().Key(stream).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if l >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d entries after 30s, want %d", stream, l, n)
		}
		// Returns at the next entry added after the newest one (or after a second).
		err = c.Do(ctx, c.B().Xread().Count(1).Block(1000).Streams().Key(stream).Id("$").Build()).Error()
		if err != nil && !rueidis.IsRedisNil(err) {
			t.Fatal(err)
		}
	}
}
