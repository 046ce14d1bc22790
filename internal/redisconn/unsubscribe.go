package redisconn

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Unsubscriber sends the UNSUBSCRIBE (or PUNSUBSCRIBE) of a Receive that its caller ended.
//
// rueidis' Receive does not unsubscribe when its context ends, so the server would go on
// pushing messages to a connection nobody reads them for; the only client on that connection
// is the one Receive's return hook is given. The command must not be sent from inside the hook:
// until the hook returns, rueidis still delivers the subscription's messages to Receive's
// channel (16 deep, no longer read), and the connection's reader, blocked on that channel, never
// reads the reply. Under a steady flow of messages a hook that waits for its UNSUBSCRIBE stalls
// every shutdown for the whole command timeout. Send runs the command in a goroutine of its own,
// which finishes once the hook has returned and rueidis has dropped the channel; Wait waits for
// the commands sent, so that a component's Run still returns unsubscribed.
type Unsubscriber struct {
	// Timeout bounds each command (a Redis that does not answer).
	Timeout time.Duration
	// OnError, when set, is told of a command that failed.
	OnError func(error)

	wg sync.WaitGroup
}

// Send sends cmd on cc, the client a receive-return hook is given, without waiting for it.
func (u *Unsubscriber) Send(cc rueidis.CommandClient, cmd rueidis.Completed) {
	u.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), u.Timeout)
		defer cancel()
		if err := cc.Do(ctx, cmd).Error(); err != nil && u.OnError != nil {
			u.OnError(err)
		}
	})
}

// Wait waits for every command sent to be answered or to fail.
func (u *Unsubscriber) Wait() { u.wg.Wait() }
