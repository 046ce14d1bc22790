package state

import (
	"context"
	"fmt"
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
