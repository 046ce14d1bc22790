package state

import (
	"context"
	"testing"
	"time"
)

// Read reports the count a run of the value would have: the runs of it recorded in the meta
// hash (MarkAttempt) plus this one; a new value starts at 1. Reading writes nothing.
func TestReadCountsAttempts(t *testing.T) {
	st, s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, release := s.Client().Dedicate()
	defer release()
	s.Do("SET", "in", `{"n":1}`)
	id := AttemptID([]byte(`{"n":1}`))
	for i := int64(1); i <= 3; i++ {
		rd, err := st.Read(ctx, conn, "in", ReadOptions{Watch: true, Count: true, SameNode: true})
		if err != nil {
			t.Fatal(err)
		}
		if string(rd.Raw) != `{"n":1}` || rd.Attempts != i || rd.AttemptID != id || !rd.Watched {
			t.Fatalf("read %d: %+v", i, rd)
		}
		if err := MarkAttempt(ctx, s.Client(), "{out}:env:meta", id, i); err != nil {
			t.Fatal(err)
		}
	}
	s.Do("SET", "in", `{"n":2}`)
	if rd, err := st.Read(ctx, conn, "in", ReadOptions{Count: true, SameNode: true}); err != nil || rd.Attempts != 1 {
		t.Fatalf("a new value: %+v %v", rd, err)
	}
	if got := s.Do("HGET", "{out}:env:meta", FieldAttempts); got != "3" {
		t.Fatalf("a read wrote the count: %q", got)
	}
}

// A value in the skip list is read but not counted; a hash input is counted too (read by a
// second call on a cluster, in the same round trip here); a missing key is nothing.
func TestReadSkipsAndHashes(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	conn, release := s.Client().Dedicate()
	defer release()
	s.Do("SET", "in", "v1")
	o := ReadOptions{Watch: true, Count: true, SameNode: true}
	rd, err := st.Read(ctx, conn, "in", ReadOptions{Count: true, SameNode: true, Skip: []string{AttemptID([]byte("v1"))}})
	if err != nil || string(rd.Raw) != "v1" || rd.Attempts != 0 {
		t.Fatalf("skipped value: %+v %v", rd, err)
	}
	s.Do("SET", "in", "v2")
	if rd, err = st.Read(ctx, conn, "in", o); err != nil || rd.Attempts != 1 {
		t.Fatalf("new value: %+v %v", rd, err)
	}
	s.Do("DEL", "in")
	s.Do("HSET", "in", "a", "1")
	s.Do("HSET", "{out}:env:meta", FieldAttemptInput, AttemptID([]byte(`{"a":"1"}`)), FieldAttempts, "1")
	for _, o := range []ReadOptions{o, {Count: true}} {
		rd, err = st.Read(ctx, conn, "in", o)
		if err != nil || string(rd.Raw) != `{"a":"1"}` || rd.Attempts != 2 || rd.AttemptID != AttemptID(rd.Raw) {
			t.Fatalf("hash read %+v: %+v %v", o, rd, err)
		}
	}
	s.Do("DEL", "in")
	if rd, err = st.Read(ctx, conn, "in", o); err != nil || rd.Raw != nil || rd.Attempts != 0 {
		t.Fatalf("missing key: %+v %v", rd, err)
	}
	s.Do("HSET", "{out}:env", "x", "1", "y", "2")
	if rd, err = st.Read(ctx, conn, "in", o); err != nil || rd.Fields != 2 {
		t.Fatalf("state fields: %+v %v", rd, err)
	}
}

func TestCheckedCommitRefusesAChangedState(t *testing.T) {
	st, s := newStore(t)
	ctx := context.Background()
	s.Do("HSET", "{out}:env", "a", "1", "b", "2")
	s.Do("DEL", "{out}:env")
	err := st.Commit(ctx, Commit{Output: []byte("1"), Set: map[string][]byte{"a": []byte("3")}, At: time.Now(),
		CheckFields: true, Fields: 2})
	if !IsStateChanged(err) {
		t.Fatalf("commit on a reset state = %v, want ErrStateChanged", err)
	}
	if s.Do("EXISTS", "{out}:env") != "0" || s.Do("EXISTS", "out") != "0" {
		t.Fatal("a refused commit wrote something")
	}
	if err := st.Commit(ctx, Commit{Output: []byte("1"), Set: map[string][]byte{"a": []byte("3")}, At: time.Now(),
		CheckFields: true, Fields: 0, ClearAttempt: true}); err != nil {
		t.Fatal(err)
	}
	if n, err := Reset(ctx, s.Client(), "{out}:env"); err != nil || n != 2 {
		t.Fatalf("Reset = %d %v, want both keys deleted", n, err)
	}
}
