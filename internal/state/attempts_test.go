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
