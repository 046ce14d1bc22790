package redisconn_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/redistest"
)

// A Receive ended while messages keep coming is unsubscribed without waiting for the command
// timeout: the messages queued behind its unread channel must not hold up the reply.
func TestUnsubscriberUnderAFlowOfMessages(t *testing.T) {
	srv := redistest.Start(t)
	sub, pub := srv.Client(), srv.Client()
	const channel = "flow"
	const timeout = 2 * time.Minute // a stall would show as this long a wait

	// Keep publishing until the test ends, more than Receive's channel holds.
	flowCtx, stopFlow := context.WithCancel(context.Background())
	flowDone := make(chan struct{})
	go func() {
		defer close(flowDone)
		for i := 0; flowCtx.Err() == nil; i++ {
			_ = pub.Do(flowCtx, pub.B().Publish().Channel(channel).Message(strconv.Itoa(i)).Build()).Error()
		}
	}()
	defer func() { stopFlow(); <-flowDone }()

	u := &redisconn.Unsubscriber{Timeout: timeout, OnError: func(err error) { t.Errorf("UNSUBSCRIBE: %v", err) }}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 1)
	rctx := rueidis.WithOnReceiveReturnHook(ctx, func(err error, cc rueidis.CommandClient) error {
		u.Send(cc, cc.B().Unsubscribe().Channel(channel).Build())
		return err
	})
	returned := make(chan error, 1)
	go func() {
		returned <- sub.Receive(rctx, sub.B().Subscribe().Channel(channel).Build(), func(rueidis.PubSubMessage) {
			select {
			case got <- struct{}{}:
			default:
			}
			// A slow handler: the pipe fills Receive's channel while the caller stops.
			time.Sleep(time.Millisecond)
		})
	}()
	select {
	case <-got:
	case err := <-returned:
		t.Fatalf("Receive returned before a message: %v", err)
	}
	cancel()
	if err := <-returned; err != context.Canceled {
		t.Fatalf("Receive = %v, want context.Canceled", err)
	}
	waited := make(chan struct{})
	go func() { u.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(timeout / 2):
		t.Fatal("UNSUBSCRIBE still unanswered: the connection's reader is blocked")
	}
	n, err := pub.Do(context.Background(), pub.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
	if err != nil {
		t.Fatal(err)
	}
	if n[channel] != 0 {
		t.Fatalf("NUMSUB %s = %d after Wait, want 0", channel, n[channel])
	}
}
