package redisconn

import (
	"context"
	"testing"
	"time"
)

type ctxKey struct{}

func TestCallContextOutlivesCancel(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	ctx, done := CallContext(parent, time.Hour)
	defer done()
	cancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("cancelling the caller ended the call: %v", err)
	}
	if ctx.Value(ctxKey{}) != "v" {
		t.Fatal("the caller's values are lost")
	}
	dl, ok := ctx.Deadline()
	if !ok || time.Until(dl) < 59*time.Minute {
		t.Fatalf("deadline = %v, %v; want about an hour from now", dl, ok)
	}
}

func TestCallContextBoundedByTimeoutAndCallersDeadline(t *testing.T) {
	short, done := CallContext(context.Background(), time.Nanosecond)
	defer done()
	<-short.Done()
	if short.Err() != context.DeadlineExceeded {
		t.Fatalf("timeout: err = %v, want the deadline", short.Err())
	}
	want := time.Now().Add(time.Minute)
	parent, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	ctx, done2 := CallContext(parent, time.Hour)
	defer done2()
	if dl, ok := ctx.Deadline(); !ok || !dl.Equal(want) {
		t.Fatalf("deadline = %v, %v; want the caller's %v", dl, ok, want)
	}
}
