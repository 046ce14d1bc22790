package state

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/redistest"
)

func newStore(t *testing.T) (*Store, *redistest.Server) {
	t.Helper()
	s := redistest.Start(t)
	st, err := New(Options{Client: s.Client(), StateKey: "{out}:env", OutputKey: "out"})
	if err != nil {
		t.Fatal(err)
	}
	return st, s
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{StateKey: "a", OutputKey: "b"}); err == nil {
		t.Fatal("nil client accepted")
	}
}

func TestCommitThenLoad(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Fields) != 0 || snap.LastInput != "" || !snap.LastExecution.IsZero() {
		t.Fatalf("fresh state not empty: %+v", snap)
	}
	at := time.Date(2026, 11, 25, 18, 0, 0, 123, time.UTC)
	err = st.Commit(ctx, Commit{Output: []byte(`{"a":1}`), Set: map[string][]byte{"n": []byte("1"), "s": []byte(`"x"`)},
		InputID: "abc", At: at, Handler: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Do("GET", "out"); got != `{"a":1}` {
		t.Fatalf("output = %q", got)
	}
	if got := s.Do("HGET", "{out}:env", "s"); got != `"x"` {
		t.Fatalf("env field s = %q", got)
	}
	snap, err = st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Fields["n"] != "1" || snap.LastInput != "abc" || !snap.LastExecution.Equal(at) || snap.Executions != 1 {
		t.Fatalf("loaded %+v", snap)
	}
	// A commit without output or input id leaves both as they were and removes a field.
	if err := st.Commit(ctx, Commit{Del: []string{"s"}, At: at.Add(time.Second), Handler: "h1"}); err != nil {
		t.Fatal(err)
	}
	snap, _ = st.Load(ctx)
	if _, ok := snap.Fields["s"]; ok || snap.LastInput != "abc" || snap.Executions != 2 {
		t.Fatalf("after second commit %+v", snap)
	}
	if got := s.Do("GET", "out"); got != `{"a":1}` {
		t.Fatalf("output changed by a nil-output commit: %q", got)
	}
}

func TestLoadRefusesCorruptState(t *testing.T) {
	st, s := newStore(t)
	s.Do("HSET", "{out}:env", "avg", "not json")
	_, err := st.Load(context.Background())
	if !IsCorrupt(err) || !strings.Contains(err.Error(), `{out}:env field "avg"`) {
		t.Fatalf("err = %v", err)
	}
	if got := s.Do("HGET", "{out}:env", "avg"); got != "not json" {
		t.Fatal("corrupt field was touched")
	}
}

func TestCommitReportsRedisErrors(t *testing.T) {
	st, s := newStore(t)
	s.Do("SET", "{out}:env", "a string, not a hash")
	err := st.Commit(context.Background(), Commit{Set: map[string][]byte{"k": []byte("1")}, At: time.Now()})
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("err = %v", err)
	}
	s.Kill()
	err = st.Commit(context.Background(), Commit{Output: []byte("1"), At: time.Now()})
	if err == nil {
		t.Fatal("commit to a dead Redis succeeded")
	}
}

func TestDiff(t *testing.T) {
	set, del := Diff(map[string]string{"a": "1", "b": "2", "c": "3"}, maps.All(map[string][]byte{"a": []byte("1"), "b": []byte("20"), "d": []byte("4")}))
	if len(set) != 2 || string(set["b"]) != "20" || string(set["d"]) != "4" {
		t.Fatalf("set = %v", set)
	}
	if len(del) != 1 || del[0] != "c" {
		t.Fatalf("del = %v", del)
	}
	// Every key kept: nothing to delete.
	set, del = Diff(map[string]string{"a": "1", "b": "2"}, maps.All(map[string][]byte{"a": []byte("1"), "b": []byte("3")}))
	if len(set) != 1 || string(set["b"]) != "3" || del != nil {
		t.Fatalf("set = %v, del = %v", set, del)
	}
	// As many keys as before, one of them new: the old one goes.
	set, del = Diff(map[string]string{"a": "1", "b": "2"}, maps.All(map[string][]byte{"a": []byte("1"), "c": []byte("2")}))
	if len(set) != 1 || string(set["c"]) != "2" || len(del) != 1 || del[0] != "b" {
		t.Fatalf("set = %v, del = %v", set, del)
	}
}

func TestReadInput(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client()
	ctx := context.Background()
	if b, err := ReadInput(ctx, c, "none"); b != nil || err != nil {
		t.Fatalf("missing key: %q %v", b, err)
	}
	s.Do("SET", "str", `{"x":1}`)
	if b, err := ReadInput(ctx, c, "str"); string(b) != `{"x":1}` || err != nil {
		t.Fatalf("string key: %q %v", b, err)
	}
	s.Do("HSET", "h", "b", "2", "a", "1")
	if b, err := ReadInput(ctx, c, "h"); string(b) != `{"a":"1","b":"2"}` || err != nil {
		t.Fatalf("hash key: %q %v", b, err)
	}
	s.Do("RPUSH", "l", "1")
	if _, err := ReadInput(ctx, c, "l"); err == nil || !strings.Contains(err.Error(), "read l") {
		t.Fatalf("list key: %v", err)
	}
}

func TestInputIDStable(t *testing.T) {
	// The first 16 bytes of SHA-256("a"): a stored last_input must keep matching.
	if InputID([]byte("a")) != "ca978112ca1bbdcafac231b39a23dc4d" || InputID([]byte("a")) == InputID([]byte("b")) || len(InputID(nil)) != 32 {
		t.Fatal("InputID not a stable 32-hex identity")
	}
	// SHA-1("a"), as Redis' redis.sha1hex computes it in the pattern runner's count script.
	if AttemptID([]byte("a")) != "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8" {
		t.Fatalf("AttemptID = %s, not redis.sha1hex's", AttemptID([]byte("a")))
	}
}
