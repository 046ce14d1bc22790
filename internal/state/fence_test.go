package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
)

func TestLayoutKeys(t *testing.T) {
	if LeaseKey("{out}:env") != "{out}:env:lease" || FenceKey("{out}:env") != "{out}:env:fence" {
		t.Fatalf("lease %q fence %q", LeaseKey("{out}:env"), FenceKey("{out}:env"))
	}
}

func TestFencedCommitWritesWhileTheLeaseHolds(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	s.Do("SET", "{out}:env:lease", "a:7")
	at := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	err := st.Commit(ctx, Commit{Output: []byte(`{"v":1}`), Set: map[string][]byte{"n": []byte("1"), "gone": []byte("0")},
		InputID: "id1", At: at, Handler: "h1", Fence: "a:7", Token: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, Commit{Del: []string{"gone"}, Set: map[string][]byte{"n": []byte("2")}, At: at, Handler: "h1", Fence: "a:7", Token: 7}); err != nil {
		t.Fatal(err)
	}
	if got := s.Do("GET", "out"); got != `{"v":1}` {
		t.Fatalf("output %q (a nil-output commit must leave it)", got)
	}
	if got := s.Do("HGETALL", "{out}:env"); got != "map[n:2]" {
		t.Fatalf("env %s", got)
	}
	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.LastInput != "id1" || snap.Executions != 2 || !snap.LastExecution.Equal(at) {
		t.Fatalf("meta %+v", snap)
	}
	if got := s.Do("HGET", "{out}:env:meta", FieldFence); got != "7" {
		t.Fatalf("meta fence %q", got)
	}
}

func TestFencedCommitIsRefusedWithoutTheLease(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	s.Do("SET", "out", "before")
	s.Do("HSET", "{out}:env", "n", "1")
	s.Do("HSET", "{out}:env:meta", "executions", "1", "last_input", "old")
	for name, lease := range map[string]string{"taken over": "b:8", "expired": ""} {
		if lease == "" {
			s.Do("DEL", "{out}:env:lease")
		} else {
			s.Do("SET", "{out}:env:lease", lease)
		}
		err := st.Commit(ctx, Commit{Output: []byte("stale"), Set: map[string][]byte{"n": []byte("99")}, Del: []string{"n"},
			InputID: "new", At: time.Now(), Handler: "h", Fence: "a:7", Token: 7})
		if !IsFenced(err) || !strings.Contains(err.Error(), "{out}:env:lease") {
			t.Fatalf("%s: err = %v, want ErrFenced naming the lease key", name, err)
		}
		if got := s.Do("GET", "out"); got != "before" {
			t.Fatalf("%s: a fenced commit wrote the output: %q", name, got)
		}
		if got := s.Do("HGETALL", "{out}:env"); got != "map[n:1]" {
			t.Fatalf("%s: a fenced commit changed the env: %s", name, got)
		}
		if got := s.Do("HGETALL", "{out}:env:meta"); got != "map[executions:1 last_input:old]" {
			t.Fatalf("%s: a fenced commit changed the meta: %s", name, got)
		}
	}
	// An unfenced commit (a single replica, LEASE=false) ignores the lease entirely.
	if err := st.Commit(ctx, Commit{Output: []byte("single"), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := s.Do("GET", "out"); got != "single" {
		t.Fatalf("unfenced commit: %q", got)
	}
}

// Lua's unpack is bounded by its C stack: an env of thousands of fields must still commit.
func TestFencedCommitOfALargeEnv(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	s.Do("SET", "{out}:env:lease", "a:1")
	set := make(map[string][]byte, 12000)
	for i := range 12000 {
		set[fmt.Sprintf("f%05d", i)] = []byte(fmt.Sprint(i))
	}
	if err := st.Commit(ctx, Commit{Set: set, At: time.Now(), Fence: "a:1", Token: 1}); err != nil {
		t.Fatal(err)
	}
	if got := s.Do("HLEN", "{out}:env"); got != "12000" {
		t.Fatalf("HLEN %s", got)
	}
	del := make([]string, 0, 9000)
	for i := range 9000 {
		del = append(del, fmt.Sprintf("f%05d", i))
	}
	if err := st.Commit(ctx, Commit{Del: del, Set: map[string][]byte{"x": []byte("1")}, At: time.Now(), Fence: "a:1", Token: 1}); err != nil {
		t.Fatal(err)
	}
	if got := s.Do("HLEN", "{out}:env"); got != "3001" {
		t.Fatalf("HLEN after delete %s", got)
	}
}

func TestFencedCommitReportsRedisErrors(t *testing.T) {
	st, s := newStore(t)
	s.Do("SET", "{out}:env:lease", "a:1")
	s.Do("SET", "{out}:env", "a string, not a hash")
	err := st.Commit(context.Background(), Commit{Set: map[string][]byte{"k": []byte("1")}, At: time.Now(), Fence: "a:1", Token: 1})
	if err == nil || IsFenced(err) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkCommit compares the single-replica MULTI/EXEC commit with the fenced script, for
// the classic handler's shape (a ~600-byte output, 16 changed env fields).
func BenchmarkCommit(b *testing.B) {
	s := redistest.Start(b)
	st, err := New(Options{Client: s.Client(), StateKey: "{out}:env", OutputKey: "out"})
	if err != nil {
		b.Fatal(err)
	}
	s.Do("SET", "{out}:env:lease", "bench:1")
	out := []byte(`{"percent_network_egress":16.74,"percent_memory_caching":27.05,` + strings.Repeat(`"avg-util-cpu0-60sec":32.4,`, 16) + `"executions":1}`)
	set := make(map[string][]byte, 16)
	for i := range 16 {
		set[fmt.Sprintf("avg-util-cpu%d-60sec", i)] = []byte("32.400000000000006")
	}
	for _, bc := range []struct {
		name  string
		fence string
	}{{"multi-exec", ""}, {"fenced-lua", "bench:1"}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			c := Commit{Output: out, Set: set, InputID: "0123456789abcdef0123456789abcdef", At: time.Now(), Handler: "h", Fence: bc.fence, Token: 1}
			b.ReportAllocs()
			for b.Loop() {
				if err := st.Commit(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A runner commits on a connection dedicated to it; the fenced script then goes by EVALSHA,
// and by EVAL when the server has never seen it (or flushed its scripts).
func TestCommitOnADedicatedConnection(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	conn, release := s.Client().Dedicate()
	defer release()
	s.Do("SET", "{out}:env:lease", "a:7")
	for i, fence := range []string{"a:7", "a:7", "", "b:8"} {
		if i == 1 {
			s.Do("SCRIPT", "FLUSH")
		}
		out := fmt.Sprintf(`{"i":%d}`, i)
		err := st.CommitOn(ctx, conn, Commit{Output: []byte(out), Set: map[string][]byte{"i": []byte(fmt.Sprint(i))},
			InputID: fmt.Sprint("id", i), At: time.Now(), Handler: "h", Fence: fence, Token: 7})
		if fence == "b:8" {
			if !IsFenced(err) {
				t.Fatalf("commit %d under a lease not held: err = %v, want ErrFenced", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("commit %d (fence %q): %v", i, fence, err)
		}
		if got := s.Do("GET", "out"); got != out {
			t.Fatalf("commit %d: output %q, want %q", i, got, out)
		}
	}
	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Executions != 3 || snap.LastInput != "id2" || snap.Fields["i"] != "2" {
		t.Fatalf("after three commits and a fenced one: %+v", snap)
	}
	if b, err := ReadInput(ctx, conn, "out"); err != nil || string(b) != `{"i":2}` {
		t.Fatalf("ReadInput on the dedicated connection: %q %v", b, err)
	}
}

// commits counts the transactions and scripts the server has run since the last call.
func commits(t *testing.T, s *redistest.Server) (execs, scripts int) {
	t.Helper()
	info := s.Do("INFO", "commandstats")
	s.Do("CONFIG", "RESETSTAT")
	calls := func(cmd string) int {
		_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
		if !ok {
			return 0
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		return n
	}
	return calls("exec"), calls("evalsha") + calls("eval")
}

// A fenced commit after ReadWatched is a transaction while the lease key is untouched; when it
// was touched (a renewal, a takeover) it falls back to the script, which decides.
func TestWatchedCommit(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	conn, release := s.Client().Dedicate()
	defer release()
	s.Do("SET", "in", `{"n":1}`)
	if raw, lease, err := st.ReadWatched(ctx, conn, "in"); err != nil || lease != "" || string(raw) != `{"n":1}` {
		t.Fatalf("ReadWatched without a lease: %q %q %v", raw, lease, err)
	}
	s.Do("SET", "{out}:env:lease", "a:7", "PX", "60000")
	s.Do("SCRIPT", "LOAD", fencedScript.src) // so that each script run is one EVALSHA
	commits(t, s)
	commit := func(i int) error {
		return st.CommitOn(ctx, conn, Commit{Output: []byte(fmt.Sprint(i)), Set: map[string][]byte{"i": []byte(fmt.Sprint(i))},
			InputID: fmt.Sprint("id", i), At: time.Now(), Handler: "h", Fence: "a:7", Token: 7, Watched: true})
	}
	read := func() {
		t.Helper()
		raw, lease, err := st.ReadWatched(ctx, conn, "in")
		if err != nil || lease != "a:7" || string(raw) != `{"n":1}` {
			t.Fatalf("ReadWatched: %q %q %v", raw, lease, err)
		}
	}
	check := func(step string, wantOut string, wantExec, wantScripts int) {
		t.Helper()
		if got := s.Do("GET", "out"); got != wantOut {
			t.Fatalf("%s: output %q, want %q", step, got, wantOut)
		}
		if e, sc := commits(t, s); e != wantExec || sc != wantScripts {
			t.Fatalf("%s: %d EXEC and %d scripts, want %d and %d", step, e, sc, wantExec, wantScripts)
		}
	}

	read()
	if err := commit(1); err != nil {
		t.Fatal(err)
	}
	check("untouched lease", "1", 1, 0)

	read()
	s.Do("PEXPIRE", "{out}:env:lease", "60000") // the holder's own renewal touches the key
	if err := commit(2); err != nil {
		t.Fatal(err)
	}
	check("renewed lease", "2", 1, 1) // EXEC refused, then the script applied it

	read()
	s.Do("PEXPIRE", "{out}:env:lease", "60000") // touched by a run that did not commit...
	read()                                      // ...then read again: a fresh WATCH
	if err := commit(3); err != nil {
		t.Fatal(err)
	}
	check("stale watch", "3", 1, 0)

	read()
	s.Do("SET", "{out}:env:lease", "b:8")
	if err := commit(4); !IsFenced(err) {
		t.Fatalf("commit after a takeover: err = %v, want ErrFenced", err)
	}
	check("taken over", "3", 1, 1)

	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Executions != 3 || snap.LastInput != "id3" || snap.Fields["i"] != "3" {
		t.Fatalf("after three commits and a fenced one: %+v", snap)
	}
	if got := s.Do("HGET", "{out}:env:meta", FieldFence); got != "7" {
		t.Fatalf("meta fence %q", got)
	}
	s.Do("DEL", "in")
	s.Do("HSET", "in", "a", "1")
	if raw, lease, err := st.ReadWatched(ctx, conn, "in"); err != nil || lease != "b:8" || string(raw) != `{"a":"1"}` {
		t.Fatalf("ReadWatched of a hash: %q %q %v", raw, lease, err)
	}
}
