package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

// scripted is a Handler whose runs the test controls: each call is reported on calls and
// waits for a value on release (when gated). It echoes the input as output and counts runs in
// env["runs"], so state changes are visible.
type scripted struct {
	calls   chan exec.Call
	release chan struct{}
	gated   bool
	fail    atomic.Bool
	running atomic.Int32
	overlap atomic.Bool
}

func newScripted(gated bool) *scripted {
	return &scripted{calls: make(chan exec.Call, 100), release: make(chan struct{}), gated: gated}
}

func (s *scripted) Hash() string    { return "scripted" }
func (s *scripted) UsesState() bool { return true }
func (s *scripted) Run(c exec.Call) (exec.Result, error) {
	if s.running.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.running.Add(-1)
	s.calls <- c
	if s.gated {
		<-s.release
	}
	if s.fail.Load() {
		if c.EnvOwned {
			c.Env["runs"] = 1000.0 // as a run may leave an env handed to it before it fails
		}
		return exec.Result{}, &exec.Error{Kind: exec.KindHandler, Err: errors.New("scripted failure")}
	}
	runs := envNumber(c.Env["runs"])
	out, _ := json.Marshal(c.Input)
	runsJSON, _ := json.Marshal(runs + 1)
	return exec.Result{Output: out, Value: c.Input, StateSet: true,
		Env: map[string]any{"runs": runs + 1}, EnvFields: exec.Fields{{Key: "runs", Value: runsJSON}}}, nil
}

// envNumber reads a number from env: float64 as a run left it in memory, int as
// exec.DecodeEnv loads an integral value from Redis.
func envNumber(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	return 0
}

type harness struct {
	t        *testing.T
	srv      *redistest.Server
	r        *Runner
	h        *scripted
	outcomes chan string
	cancel   context.CancelFunc
	done     chan error
}

func start(t *testing.T, h *scripted, pollAlways bool) *harness {
	t.Helper()
	srv := redistest.Start(t)
	c := srv.Client()
	st, err := state.New(state.Options{Client: c, StateKey: "{out}:env", OutputKey: "out"})
	if err != nil {
		t.Fatal(err)
	}
	hs := &harness{t: t, srv: srv, h: h, outcomes: make(chan string, 100), done: make(chan error, 1)}
	r, err := New(Options{Name: "m.f", Client: c, Store: st, InputKey: "in", OutputKey: "out", PollAlways: pollAlways,
		Observe: func(k trigger.Kind, o string) { hs.outcomes <- string(k) + " " + o }}, exec.Version{Handler: h, Runtime: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("Run before Load succeeded")
	}
	if err := r.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs.r, hs.cancel = r, cancel
	go func() { hs.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-hs.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if h.overlap.Load() {
			t.Error("runs overlapped")
		}
	})
	return hs
}

func (hs *harness) outcome(want string) {
	hs.t.Helper()
	select {
	case got := <-hs.outcomes:
		if got != want {
			hs.t.Fatalf("outcome %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		hs.t.Fatalf("no outcome, want %q", want)
	}
}

// signal sends a signal of kind and waits for its run to end with want ("success",
// "skipped:unchanged", "error"...); a run that succeeded must have called the handler.
func (hs *harness) signal(kind trigger.Kind, want string) {
	hs.t.Helper()
	hs.r.Notify(kind)
	hs.outcome(string(kind) + " " + want)
	if want == "success" {
		hs.call()
	}
}

func (hs *harness) call() exec.Call {
	hs.t.Helper()
	select {
	case c := <-hs.h.calls:
		return c
	case <-time.After(10 * time.Second):
		hs.t.Fatal("handler not called")
		return exec.Call{}
	}
}

func TestBurstCoalescesIntoOneFollowUpOnLatestValue(t *testing.T) {
	h := newScripted(true)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.r.Notify(trigger.KindKeyspace)
	first := hs.call() // blocked inside the handler
	if fmt.Sprint(first.Input) != "map[n:1]" || first.Context.Trigger != "keyspace" {
		t.Fatalf("first call %+v", first)
	}
	for i := 2; i <= 10; i++ {
		hs.srv.Do("SET", "in", fmt.Sprintf(`{"n":%d}`, i))
		hs.r.Notify(trigger.KindKeyspace)
	}
	h.release <- struct{}{}
	hs.outcome("keyspace success")
	second := hs.call()
	if fmt.Sprint(second.Input) != "map[n:10]" {
		t.Fatalf("follow-up ran on %v, want the latest value", second.Input)
	}
	if second.Env["runs"] != 1.0 {
		t.Fatalf("follow-up saw env %v, want the first run's state", second.Env)
	}
	h.release <- struct{}{}
	hs.outcome("keyspace success")
	// No third keyspace run is pending: the next signal is the one we send now.
	hs.r.Notify(trigger.KindPubSub)
	if c := hs.call(); c.Context.Trigger != "pubsub" {
		t.Fatalf("third run was triggered by %s, want pubsub", c.Context.Trigger)
	}
	h.release <- struct{}{}
	hs.outcome("pubsub success")
	if got := hs.srv.Do("HGET", "{out}:env", "runs"); got != "3" {
		t.Fatalf("runs in state = %s", got)
	}
}

func TestUnchangedValueIsSkippedUnlessForced(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.signal(trigger.KindKeyspace, "success")
	hs.signal(trigger.KindPoll, "skipped:unchanged")
	hs.signal(trigger.KindCatchup, "skipped:unchanged")
	hs.r.Notify(trigger.KindPubSub) // an explicit PUBLISH runs even an unchanged value
	hs.outcome("pubsub success")
	hs.call()
	hs.srv.Do("DEL", "in")
	hs.signal(trigger.KindPoll, "skipped:missing")
}

func TestPollAlwaysRunsEveryTick(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, true)
	hs.srv.Do("SET", "in", `1`)
	for i := 0; i < 3; i++ {
		hs.signal(trigger.KindPoll, "success")
	}
	hs.signal(trigger.KindKeyspace, "skipped:unchanged") // not a tick: de-duplicated as usual
}

// TestFailedValueIsNotRetriedUntilItChanges also checks that a failed run leaves the state as
// it was, in Redis and in memory, though the runner hands each run its env (EnvOwned) and the
// failed one changed it.
func TestFailedValueIsNotRetriedUntilItChanges(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":0}`)
	hs.signal(trigger.KindKeyspace, "success")
	h.fail.Store(true)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.signal(trigger.KindKeyspace, "error")
	if c := hs.call(); !c.EnvOwned {
		t.Fatal("the runner did not hand the run its env")
	}
	hs.signal(trigger.KindPoll, "skipped:failed")
	if got := hs.srv.Do("GET", "out"); got != `{"n":0}` {
		t.Fatalf("a failed run wrote output: %s", got)
	}
	h.fail.Store(false)
	hs.srv.Do("SET", "in", `{"n":2}`)
	hs.r.Notify(trigger.KindPoll)
	hs.outcome("poll success")
	if c := hs.call(); envNumber(c.Env["runs"]) != 1 {
		t.Fatalf("the run after the failure saw env %v, want runs 1 as committed", c.Env)
	}
	if got := hs.srv.Do("GET", "out"); got != `{"n":2}` {
		t.Fatalf("output = %s", got)
	}
	if got := hs.srv.Do("HGET", "{out}:env", "runs"); got != "2" {
		t.Fatalf("runs in state = %s, want 2", got)
	}
}

func TestMalformedInputIsADecodeError(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":`)
	hs.signal(trigger.KindKeyspace, "error")
	select {
	case c := <-h.calls:
		t.Fatalf("handler ran on malformed input: %v", c.Input)
	default:
	}
	if got := hs.srv.Do("GET", "in"); got != `{"n":` {
		t.Fatalf("input was altered: %q", got)
	}
}

func TestAdhocInvocationUsesPayloadAndKeepsKeyIdentity(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.signal(trigger.KindKeyspace, "success")
	hs.r.Invoke([]byte(`{"adhoc":true}`))
	hs.outcome("pubsub success")
	if c := hs.call(); fmt.Sprint(c.Input) != "map[adhoc:true]" {
		t.Fatalf("ad-hoc input %v", c.Input)
	}
	if got := hs.srv.Do("GET", "out"); got != `{"adhoc":true}` {
		t.Fatalf("output = %s", got)
	}
	// The key's value is still the one executed last: a poll does not rerun it.
	hs.signal(trigger.KindPoll, "skipped:unchanged")
}

func TestStateSurvivesANewRunner(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.r.Notify(trigger.KindKeyspace)
	hs.outcome("keyspace success")
	first := hs.call()
	if first.Context.LastExecution != nil {
		t.Fatal("first run saw a last_execution")
	}

	c := hs.srv.Client()
	st, _ := state.New(state.Options{Client: c, StateKey: "{out}:env", OutputKey: "out"})
	outcomes := make(chan string, 10)
	r2, err := New(Options{Name: "m.f", Client: c, Store: st, InputKey: "in", OutputKey: "out",
		Observe: func(k trigger.Kind, o string) { outcomes <- string(k) + " " + o }}, exec.Version{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r2.Run(ctx) }()
	defer func() { cancel(); <-done }()
	r2.Notify(trigger.KindCatchup)
	if got := <-outcomes; got != "catchup skipped:unchanged" {
		t.Fatalf("restarted runner re-ran an executed value: %s", got)
	}
	hs.srv.Do("SET", "in", `{"n":2}`)
	r2.Notify(trigger.KindKeyspace)
	if got := <-outcomes; got != "keyspace success" {
		t.Fatalf("outcome %s", got)
	}
	c2 := <-h.calls
	if envNumber(c2.Env["runs"]) != 1 || c2.Context.LastExecution == nil {
		t.Fatalf("restarted runner lost state: env %v last %v", c2.Env, c2.Context.LastExecution)
	}
}

func TestRedisDownThenBack(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.srv.Stop()
	hs.signal(trigger.KindKeyspace, "error")
	hs.srv.StartAgain()
	hs.signal(trigger.KindCatchup, "success")
	if got := hs.srv.Do("GET", "out"); !strings.Contains(got, `"n":1`) {
		t.Fatalf("output after reconnect = %q", got)
	}
}

// The runner reads and commits on a connection of its own, which nobody reads while it is
// idle: a server restart in between is noticed only by the next read, which must then go
// through on a fresh connection instead of failing the run.
func TestRunAfterAServerRestartWhileIdle(t *testing.T) {
	h := newScripted(false)
	hs := start(t, h, false)
	hs.srv.Do("SET", "in", `{"n":1}`)
	hs.signal(trigger.KindKeyspace, "success")
	hs.srv.Restart()
	hs.srv.Do("SET", "in", `{"n":2}`)
	hs.signal(trigger.KindKeyspace, "success")
	if got := hs.srv.Do("GET", "out"); !strings.Contains(got, `"n":2`) {
		t.Fatalf("output after the restart = %q", got)
	}
	if got := hs.srv.Do("HGET", "{out}:env", "runs"); got != "2" {
		t.Fatalf("runs in state = %s", got)
	}
}
