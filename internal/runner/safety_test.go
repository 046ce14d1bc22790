package runner

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

// Deleting the state hash and its bookkeeping while the runner is idle resets env to empty
// for the next run, which then writes its whole env, never only the fields it changed.
func TestStateResetWhileIdle(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	for i := 1; i <= 3; i++ {
		hs.srv.Do("SET", "in", fmt.Sprintf(`{"n":%d}`, i))
		hs.signal(trigger.KindKeyspace, "success")
	}
	if got := hs.srv.Do("HGET", "{out}:env", "runs"); got != "3" {
		t.Fatalf("runs = %s before the reset", got)
	}
	hs.srv.Do("DEL", "{out}:env", "{out}:env:meta")
	hs.srv.Do("SET", "in", `{"n":4}`)
	hs.r.Notify(trigger.KindKeyspace)
	hs.outcome("keyspace success")
	if c := hs.call(); len(c.Env) != 0 {
		t.Fatalf("the run after the reset saw env %v, want empty", c.Env)
	}
	if got := hs.srv.Do("HGET", "{out}:env", "runs"); got != "1" {
		t.Fatalf("runs = %s after the reset, want 1", got)
	}
}

// A reset during a run (between its read and its commit) is caught by the commit, which
// writes nothing; the value runs again on the empty state.
func TestStateResetDuringRun(t *testing.T) {
	h := newScripted(true)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.r.Notify(trigger.KindKeyspace)
	hs.call()
	h.release <- struct{}{}
	hs.outcome("keyspace success")
	hs.srv.Do("SET", "in", `{"n":2}`)
	hs.r.Notify(trigger.KindKeyspace)
	if c := hs.call(); envNumber(c.Env["runs"]) != 1 {
		t.Fatalf("second run saw env %v", c.Env)
	}
	hs.srv.Do("DEL", "{out}:env") // while the run is blocked in the handler
	h.release <- struct{}{}
	again := hs.call() // the same value, again, on the empty state
	if len(again.Env) != 0 || fmt.Sprint(again.Input) != "map[n:2]" {
		t.Fatalf("rerun saw input %v env %v, want {n:2} on an empty env", again.Input, again.Env)
	}
	h.release <- struct{}{}
	hs.outcome("keyspace success")
	if got := hs.srv.Do("HGET", "{out}:env", "runs"); got != "1" {
		t.Fatalf("runs = %s, want 1 (the rerun on the reset state)", got)
	}
	if got := hs.srv.Do("GET", "out"); got != `{"n":2}` {
		t.Fatalf("output %s", got)
	}
}

// A value whose earlier runs never ended (the process died in them, as the attempt count
// left in the meta hash shows) is moved to the dead-letter stream instead of running, and
// skipped until the key changes; the next value runs.
func TestValueThatKilledTheProcessIsDeadLettered(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	poison := `{"n":"poison"}`
	hs.srv.Do("SET", "in", poison)
	// As three runs that died would have left it.
	hs.srv.Do("HSET", "{out}:env:meta", state.FieldAttemptInput, state.AttemptID([]byte(poison)), state.FieldAttempts, "3")
	hs.signal(trigger.KindCatchup, "skipped:"+SkipDead)
	if n := len(h.calls); n != 0 {
		t.Fatalf("the poison value ran %d times", n)
	}
	dead := hs.srv.Do("XRANGE", "{out}:env:dead", "-", "+")
	for _, want := range []string{state.DeadFieldKey, "in", poison, state.DeadFieldAttempts, "died during each of 3 runs"} {
		if !strings.Contains(dead, want) {
			t.Fatalf("dead letter lacks %q:\n%s", want, dead)
		}
	}
	if got := hs.srv.Do("HGET", "{out}:env:meta", state.FieldAttempts); got != "" {
		t.Fatalf("attempts left behind: %q", got)
	}
	hs.signal(trigger.KindCatchup, "skipped:unchanged") // skipped until the key changes
	hs.srv.Do("SET", "in", `{"n":2}`)
	hs.signal(trigger.KindKeyspace, "success")
	if got := hs.srv.Do("HGET", "{out}:env:meta", state.FieldAttempts); got != "" {
		t.Fatalf("a committed run left its attempt count: %q", got)
	}
}

// A run that fails cleanly is a failure, not an attempt: however often the value is read
// and fails, it is never dead-lettered.
func TestCleanFailureIsNotAnAttempt(t *testing.T) {
	h := newScripted(false)
	h.fail.Store(true)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	for range 5 {
		hs.r.Notify(trigger.KindPubSub) // forced: runs the failed value again
		hs.outcome("pubsub error")
		hs.call()
	}
	if got := hs.srv.Do("HGET", "{out}:env:meta", state.FieldAttempts); got != "" {
		t.Fatalf("a clean failure left an attempt count: %q", got)
	}
	if got := hs.srv.Do("EXISTS", "{out}:env:dead"); got != "0" {
		t.Fatal("a value that fails cleanly was dead-lettered")
	}
}

// A run that lasts AttemptMarkAfter is recorded as an attempt of its value while it runs (had
// the process died then, the next start would count it), and its commit removes the record;
// a short run writes no record at all.
func TestLongRunIsRecordedAsAnAttempt(t *testing.T) {
	h := newScripted(true)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.r.Notify(trigger.KindKeyspace)
	<-h.calls
	deadline := time.Now().Add(5 * time.Second)
	for hs.srv.Do("HGET", "{out}:env:meta", state.FieldAttempts) != "1" {
		if time.Now().After(deadline) {
			t.Fatal("a run blocked past AttemptMarkAfter was not recorded as an attempt")
		}
		runtime.Gosched()
	}
	if got := hs.srv.Do("HGET", "{out}:env:meta", state.FieldAttemptInput); got != state.AttemptID([]byte(`{"n":1}`)) {
		t.Fatalf("attempt recorded for %q", got)
	}
	h.release <- struct{}{}
	hs.outcome("keyspace success")
	if got := hs.srv.Do("HGET", "{out}:env:meta", state.FieldAttempts); got != "" {
		t.Fatalf("the commit left the attempt record: %q", got)
	}
}
