package state

import (
	"context"
	"testing"
	"time"
)

func TestReadCountsAttempts(t *testing.T) {
	st, s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, release := s.Client().Dedicate()
	defer release()
	s.Do("SET", "in", `{"n":1}`)
	for i := int64(1); i <= 3; i++ {
		rd, err := st.Read(ctx, conn, "in", ReadOptions{Watch: true, Count: true, SameNode: true})
		if err != nil {
			t.Fatal(err)
		}
		if string(rd.Raw) != `{"n":1}` || rd.Attempts != i || rd.AttemptID != AttemptID(rd.Raw) || !rd.Watched {
			t.Fatalf("read %d: %+v", i, rd)
		}
	}
}

// A value in the skip list is read but not counted; a new value starts a count of its own;
// a hash input is counted too (by a second call); a missing key is nothing.
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
	for want := int64(1); want <= 2; want++ {
		rd, err = st.Read(ctx, conn, "in", o)
		if err != nil || string(rd.Raw) != `{"a":"1"}` || rd.Attempts != want || rd.AttemptID != AttemptID(rd.Raw) {
			t.Fatalf("hash read %d: %+v %v", want, rd, err)
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

// A checked commit against a state hash that lost fields (a reset) writes nothing.
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
