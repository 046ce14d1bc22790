package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/eventrt/eventrt/internal/state"
	"github.com/eventrt/eventrt/internal/trigger"
)

const (
	stateKey = "{out}:env"
	// replicaTTL is long in Redis terms: tests expire the lease themselves (expireLease), so
	// that no lease runs out while a slow CI machine is between two steps.
	replicaTTL = time.Minute
)

// tagged is a handler that signs its output with its replica's name and counts runs in env,
// so a test can tell who wrote what and whether a state update was lost.
type tagged struct {
	name    string
	calls   atomic.Int64
	gate    chan struct{} // when not nil, each run waits for a value on it
	started chan struct{}
	open    sync.Once // closes gate for good (crash), at most once
}

func (h *tagged) Hash() string    { return "tagged" }
func (h *tagged) UsesState() bool { return true }
func (h *tagged) Run(c exec.Call) (exec.Result, error) {
	h.calls.Add(1)
	if h.gate != nil {
		h.started <- struct{}{}
		<-h.gate
	}
	runs := envNumber(c.Env["runs"])
	in, _ := c.Input.(map[string]any)
	out, _ := json.Marshal(map[string]any{"by": h.name, "n": in["n"], "runs": runs + 1})
	runsJSON, _ := json.Marshal(runs + 1)
	return exec.Result{Output: out, StateSet: true,
		Env: map[string]any{"runs": runs + 1}, EnvFields: exec.Fields{{Key: "runs", Value: runsJSON}}}, nil
}

// replica is one runner with its own lease and clock: one process of a deployment.
type replica struct {
	name    string
	r       *Runner
	l       *lease.Lease
	h       *tagged
	clk     *clock.Fake
	leaseEv chan lease.Event
	cancel  context.CancelFunc
	done    chan struct{}
}

type replicaSet struct {
	t        *testing.T
	srv      *redistest.Server
	outcomes chan string // "<replica> <trigger> <outcome>"
}

func newReplicaSet(t *testing.T) *replicaSet {
	srv := redistest.Start(t, "notify-keyspace-events Kx")
	return &replicaSet{t: t, srv: srv, outcomes: make(chan string, 1000)}
}

func (s *replicaSet) start(name string, h *tagged) *replica {
	s.t.Helper()
	c := s.srv.Client()
	rp := &replica{name: name, h: h, clk: clock.NewFake(time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)),
		leaseEv: make(chan lease.Event, 1000), done: make(chan struct{})}
	l, err := lease.New(lease.Options{Client: c, Key: state.LeaseKey(stateKey), FenceKey: state.FenceKey(stateKey),
		Owner: name, TTL: replicaTTL, Clock: rp.clk, Observe: func(e lease.Event) { rp.leaseEv <- e }})
	if err != nil {
		s.t.Fatal(err)
	}
	st, err := state.New(state.Options{Client: c, StateKey: stateKey, OutputKey: "out"})
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := New(Options{Name: "m.f", Client: c, Store: st, InputKey: "in", OutputKey: "out", Clock: rp.clk, Lease: l,
		Observe: func(k trigger.Kind, o string) { s.outcomes <- name + " " + string(k) + " " + o }}, exec.Version{Handler: h})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := r.Load(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	rp.r, rp.l = r, l
	ctx, cancel := context.WithCancel(context.Background())
	rp.cancel = cancel
	leaseDone, runDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(leaseDone); _ = l.Run(ctx) }()
	go func() { defer close(runDone); _ = r.Run(ctx) }()
	go func() { <-leaseDone; <-runDone; close(rp.done) }()
	s.t.Cleanup(rp.crash)
	return rp
}

// crash stops the replica without releasing its lease, as a killed process would.
func (rp *replica) crash() {
	rp.cancel()
	if rp.h.gate != nil {
		rp.h.open.Do(func() { close(rp.h.gate) })
	}
	<-rp.done
}

// stop is a graceful stop: runner and lease loop end, then the lease is released.
func (rp *replica) stop(t *testing.T) {
	rp.crash()
	if ok, err := rp.l.Release(context.Background()); !ok || err != nil {
		t.Fatalf("%s: release %v %v", rp.name, ok, err)
	}
}

// awaitLease waits for one lease event of rp, ignoring renewals.
func (rp *replica) awaitLease(t *testing.T, want lease.Event) {
	t.Helper()
	for {
		select {
		case e := <-rp.leaseEv:
			if e == want {
				return
			}
			if e != lease.EventRenewed {
				t.Fatalf("%s: lease event %q while waiting for %q", rp.name, e, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no lease event %q", rp.name, want)
		}
	}
}

// expect collects len(wants) outcomes, from any replicas in any order, and compares them.
func (s *replicaSet) expect(wants ...string) {
	s.t.Helper()
	got := make([]string, 0, len(wants))
	for range wants {
		select {
		case o := <-s.outcomes:
			got = append(got, o)
		case <-time.After(10 * time.Second):
			s.t.Fatalf("outcomes %q, want %q", got, wants)
		}
	}
	slices.Sort(got)
	w := slices.Sorted(slices.Values(wants))
	if !slices.Equal(got, w) {
		s.t.Fatalf("outcomes %q, want %q", got, w)
	}
}

// expireLease makes Redis expire the lease now, as it would once the TTL ran out after the
// holder stopped renewing, and waits for the server's own expired event.
func (s *replicaSet) expireLease() {
	s.t.Helper()
	c := s.srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribed, expired := make(chan struct{}), make(chan struct{}, 1)
	go func() {
		_ = c.Receive(rueidis.WithOnSubscriptionHook(ctx, func(rueidis.PubSubSubscription) { close(subscribed) }),
			c.B().Subscribe().Channel("__keyspace@0__:"+state.LeaseKey(stateKey)).Build(),
			func(m rueidis.PubSubMessage) {
				if m.Message == "expired" {
					select {
					case expired <- struct{}{}:
					default:
					}
				}
			})
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		s.t.Fatal("keyspace subscription not confirmed")
	}
	// 20 ms, not 1: a TTL that is already over when PEXPIRE checks it (the clock turned a
	// millisecond meanwhile) deletes the key at once, with a "del" event instead of "expired".
	if got := s.srv.Do("PEXPIRE", state.LeaseKey(stateKey), "20"); got != "1" {
		s.t.Fatalf("PEXPIRE on the lease: %s (no lease?)", got)
	}
	select {
	case <-expired:
	case <-time.After(10 * time.Second):
		s.t.Fatal("the lease did not expire")
	}
}

// set writes the input value n and signals every replica, as their triggers would.
func (s *replicaSet) set(n int, replicas ...*replica) {
	s.srv.Do("SET", "in", fmt.Sprintf(`{"n":%d}`, n))
	for _, rp := range replicas {
		rp.r.Notify(trigger.KindKeyspace)
	}
}

func outcomesFor(holder *replica, others []*replica, kind, holderOutcome string) []string {
	w := []string{holder.name + " " + kind + " " + holderOutcome}
	for _, o := range others {
		w = append(w, o.name+" "+kind+" skipped:"+metrics.SkipStandby)
	}
	return w
}

func (s *replicaSet) output() map[string]any {
	s.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s.srv.Do("GET", "out")), &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

func (s *replicaSet) checkTotals(values int, replicas ...*replica) {
	s.t.Helper()
	var calls int64
	for _, rp := range replicas {
		calls += rp.h.calls.Load()
	}
	if calls != int64(values) {
		s.t.Errorf("%d handler executions in all for %d values", calls, values)
	}
	if got := s.srv.Do("HGET", stateKey+":meta", state.FieldExecutions); got != fmt.Sprint(values) {
		s.t.Errorf("meta executions = %s, want %d", got, values)
	}
	if got := s.srv.Do("HGET", stateKey, "runs"); got != fmt.Sprint(values) {
		s.t.Errorf("env runs = %s, want %d: a state update was lost", got, values)
	}
}

// N replicas on one key: each value runs once in total, and when the holder dies another
// takes over after the TTL and goes on from the state the first one committed.
func TestReplicasRunEachValueOnceAcrossAFailover(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			s := newReplicaSet(t)
			a := s.start("a", &tagged{name: "a"})
			a.awaitLease(t, lease.EventAcquired)
			s.expect("a catchup skipped:missing") // the catch-up that follows an acquisition
			var standbys []*replica
			for i := 1; i < n; i++ {
				rp := s.start(fmt.Sprintf("r%d", i), &tagged{name: fmt.Sprintf("r%d", i)})
				rp.awaitLease(t, lease.EventStandby)
				standbys = append(standbys, rp)
			}
			all := append([]*replica{a}, standbys...)
			for v := 1; v <= 3; v++ {
				s.set(v, all...)
				s.expect(outcomesFor(a, standbys, "keyspace", "success")...)
			}
			// An ad-hoc invocation reaches every replica too; it also runs once.
			for _, rp := range all {
				rp.r.Invoke([]byte(`{"n":"adhoc"}`))
			}
			s.expect(outcomesFor(a, standbys, "pubsub", "success")...)
			s.set(4, all...)
			s.expect(outcomesFor(a, standbys, "keyspace", "success")...)
			if o := s.output(); o["by"] != "a" || o["runs"] != 5.0 {
				t.Fatalf("output %v", o)
			}

			a.crash()
			// Before the lease runs out, the standbys keep standing by.
			for _, rp := range standbys {
				rp.clk.Advance(replicaTTL / 3)
				rp.awaitLease(t, lease.EventStandby)
			}
			standbys[0].r.Notify(trigger.KindPoll)
			s.expect(standbys[0].name + " poll skipped:" + metrics.SkipStandby)

			s.expireLease()
			for _, rp := range standbys {
				rp.clk.Advance(replicaTTL)
			}
			// The new holder catches up on value 4, which the dead holder ran already.
			var b *replica
			select {
			case o := <-s.outcomes:
				for _, rp := range standbys {
					if o == rp.name+" catchup skipped:unchanged" {
						b = rp
					}
				}
				if b == nil {
					t.Fatalf("outcome %q, want a catch-up that skips the executed value", o)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no replica took over")
			}
			if h, ok := b.l.Held(); !ok || h.Token != 2 {
				t.Fatalf("new holder %s: %+v %v", b.name, h, ok)
			}
			var rest []*replica
			for _, rp := range standbys {
				if rp != b {
					rest = append(rest, rp)
				}
			}
			for v := 5; v <= 7; v++ {
				s.set(v, standbys...)
				s.expect(outcomesFor(b, rest, "keyspace", "success")...)
			}
			if o := s.output(); o["by"] != b.name || o["runs"] != 8.0 || o["n"] != 7.0 {
				t.Fatalf("output after failover %v: state not carried over", o)
			}
			s.checkTotals(8, all...)
			if got := s.srv.Do("HGET", stateKey+":meta", state.FieldFence); got != "2" {
				t.Errorf("meta fence = %s", got)
			}
		})
	}
}

// A holder paused past its lease (here: blocked in its handler while its lease expires and is
// taken over) has its commit refused and writes nothing; it then stands by.
func TestPausedHolderIsFencedOff(t *testing.T) {
	s := newReplicaSet(t)
	ah := &tagged{name: "a", gate: make(chan struct{}), started: make(chan struct{}, 10)}
	a := s.start("a", ah)
	a.awaitLease(t, lease.EventAcquired)
	s.expect("a catchup skipped:missing")
	b := s.start("b", &tagged{name: "b"})
	b.awaitLease(t, lease.EventStandby)

	s.set(1, a, b)
	s.expect("b keyspace skipped:" + metrics.SkipStandby)
	select {
	case <-ah.started: // a is inside its handler, and stays there
	case <-time.After(10 * time.Second):
		t.Fatal("holder did not run")
	}
	// a's clock stands still, as a paused process's does; b's runs past the TTL.
	s.expireLease()
	b.clk.Advance(replicaTTL)
	b.awaitLease(t, lease.EventAcquired)
	s.expect("b catchup success") // value 1 was never committed: b runs it
	if o := s.output(); o["by"] != "b" || o["runs"] != 1.0 {
		t.Fatalf("output %v", o)
	}

	ah.gate <- struct{}{} // a resumes and tries to commit
	s.expect("a keyspace skipped:" + metrics.SkipFenced)
	if o := s.output(); o["by"] != "b" || o["runs"] != 1.0 {
		t.Fatalf("a fenced commit wrote the output: %v", o)
	}
	if got := s.srv.Do("HGETALL", stateKey+":meta"); !strings.Contains(got, "executions:1 ") || !strings.Contains(got, "fence:2") {
		t.Fatalf("meta after a fenced commit: %s", got)
	}
	if _, ok := a.l.Held(); ok {
		t.Fatal("a fenced replica still believes it holds the lease")
	}
	a.awaitLease(t, lease.EventLost)
	a.awaitLease(t, lease.EventStandby)

	s.set(2, a, b)
	s.expect("a keyspace skipped:"+metrics.SkipStandby, "b keyspace success")
	if o := s.output(); o["by"] != "b" || o["runs"] != 2.0 {
		t.Fatalf("output %v", o)
	}
	if n := ah.calls.Load(); n != 1 {
		t.Fatalf("the fenced replica ran %d times", n)
	}
}

// A graceful stop releases the lease and a standby takes over at once: no clock moves.
func TestGracefulStopHandsOverAtOnce(t *testing.T) {
	s := newReplicaSet(t)
	a := s.start("a", &tagged{name: "a"})
	a.awaitLease(t, lease.EventAcquired)
	s.expect("a catchup skipped:missing")
	b := s.start("b", &tagged{name: "b"})
	b.awaitLease(t, lease.EventStandby)
	s.set(1, a, b)
	s.expect("a keyspace success", "b keyspace skipped:"+metrics.SkipStandby)

	a.stop(t)
	if got := s.srv.Do("EXISTS", state.LeaseKey(stateKey)); got != "0" {
		// b may already hold it; then it is b's value.
		if v := s.srv.Do("GET", state.LeaseKey(stateKey)); !strings.HasPrefix(v, "b:") {
			t.Fatalf("lease after a's release: %q", v)
		}
	}
	b.awaitLease(t, lease.EventAcquired)
	s.expect("b catchup skipped:unchanged")
	s.set(2, b)
	s.expect("b keyspace success")
	if o := s.output(); o["by"] != "b" || o["runs"] != 2.0 {
		t.Fatalf("output %v", o)
	}
	s.checkTotals(2, a, b)
}

// A holder that cannot renew (Redis unreachable) stops running once its TTL may have passed,
// since another replica may hold the lease by then.
func TestHolderThatCannotRenewStopsAfterTheTTL(t *testing.T) {
	s := newReplicaSet(t)
	a := s.start("a", &tagged{name: "a"})
	a.awaitLease(t, lease.EventAcquired)
	s.expect("a catchup skipped:missing")
	s.srv.Stop()
	a.clk.Advance(replicaTTL / 3)
	a.awaitLease(t, lease.EventError)
	if _, ok := a.l.Held(); !ok {
		t.Fatal("gave up before the TTL could have passed")
	}
	a.clk.Advance(replicaTTL)
	a.awaitLease(t, lease.EventError)
	a.awaitLease(t, lease.EventLost)
	a.r.Notify(trigger.KindKeyspace)
	s.expect("a keyspace skipped:" + metrics.SkipStandby)
	if n := a.h.calls.Load(); n != 0 {
		t.Fatalf("ran %d times", n)
	}
}

// The holder WATCHes the lease as it reads the input, so its commits are transactions, not
// scripts, while nothing touches the lease (TestPausedHolderIsFencedOff covers the takeover).
// Short runs write no attempt record, so the reads are plain commands too.
func TestHolderCommitsWithTransactions(t *testing.T) {
	s := newReplicaSet(t)
	a := s.start("a", &tagged{name: "a"})
	a.awaitLease(t, lease.EventAcquired)
	s.expect("a catchup skipped:missing")
	s.srv.Do("CONFIG", "RESETSTAT")
	for v := 1; v <= 3; v++ {
		s.set(v, a)
		s.expect("a keyspace success")
	}
	stats := s.srv.Do("INFO", "commandstats")
	if !strings.Contains(stats, "cmdstat_exec:calls=3,") || strings.Contains(stats, "cmdstat_evalsha") || strings.Contains(stats, "cmdstat_eval:") {
		t.Fatalf("want 3 EXEC and no script for 3 fenced commits:\n%s", stats)
	}
	s.checkTotals(3, a)
	if got := s.srv.Do("HGET", stateKey+":meta", state.FieldFence); got != "1" {
		t.Fatalf("meta fence = %s, want the holder's token 1", got)
	}
}
