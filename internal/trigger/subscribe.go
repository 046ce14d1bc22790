package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
)

// subscribeLoop keeps the keyspace channel and the trigger channel subscribed until ctx ends.
// Both go in one SUBSCRIBE so that their messages reach the Sink in the order Redis sent them,
// and so that on a cluster both can follow the node owning the key (PUBLISH reaches every node).
//
// rueidis' shared client resubscribes by itself after a connection loss (Receive retries
// internally); this loop covers what it does not: a Receive that returns anyway (retries
// disabled, the server unsubscribed us, SUBSCRIBE refused by an ACL) and, on a cluster, a
// Receive that ownerLoop cancelled because the key moved to another node.
func (w *Watcher) subscribeLoop(ctx context.Context) {
	channels := []string{w.keyspaceChannel}
	if w.opts.Channel != "" {
		channels = append(channels, w.opts.Channel)
	}
	bo := backoff.New(w.opts.RetryBackoff, w.opts.MaxRetryBackoff)
	lastWarned := ""
	// afterMove: the key moved and no subscription has been confirmed on its new node yet,
	// so the next confirmation is the move completing, not a reconnect.
	afterMove := false
	for attempt := 0; ; attempt++ {
		tgt, err := w.pickTarget(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.subscribeFailed(fmt.Errorf("find the node owning %s (slot %d): %w", w.opts.InputKey, w.slot, err), &lastWarned)
			if attempt == 0 {
				w.signalSetup() // read the key once anyway (setupRound has no node to configure)
			}
			if !w.sleep(ctx, bo.Next()) {
				return
			}
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		gen := w.beginAttempt(tgt, cancel, afterMove)
		confirms := w.keyspaceConfirms.Load()
		rctx := rueidis.WithOnSubscriptionHook(sctx, func(s rueidis.PubSubSubscription) { w.onSubscription(gen, s) })
		rctx = rueidis.WithOnReceiveReturnHook(rctx, func(err error, c rueidis.CommandClient) error {
			// Runs after every connection's Receive, including those rueidis retries.
			w.setSubscribed(gen, false)
			if sctx.Err() != nil {
				// Receive does not UNSUBSCRIBE when it returns: without this the server
				// (or the node the key left) would keep pushing events to a connection
				// nobody reads for them.
				w.unsubscribe(c, channels...)
			} else {
				// The connection to the node broke: it may have died and lost the key.
				w.signalRecheck()
			}
			return err
		})
		cmd := tgt.client.B().Subscribe().Channel(channels...).Build()
		err = tgt.client.Receive(rctx, cmd, w.onMessage)
		moved := ctx.Err() == nil && sctx.Err() != nil // only ownerLoop cancels sctx alone
		cancel()
		w.setSubscribed(gen, false)
		if ctx.Err() != nil {
			return
		}
		confirmed := w.keyspaceConfirms.Load() > confirms
		afterMove = moved || (afterMove && !confirmed)
		if moved || confirmed {
			bo.Reset() // this attempt worked for a while: start the backoff over
			lastWarned = ""
		}
		if moved {
			continue // not a failure: subscribe on the new owner at once
		}
		if err == nil {
			err = errors.New("unsubscribed by the server")
		}
		w.subscribeFailed(fmt.Errorf("subscribe %q%s: %w", channels, onNode(tgt.addr), err), &lastWarned)
		if attempt == 0 && w.keyspaceConfirms.Load() == 0 {
			// The subscription may never come (an ACL denying the channel): read the key once
			// anyway instead of waiting for the first poll.
			w.signalSetup()
		}
		if !w.sleep(ctx, bo.Next()) {
			return
		}
	}
}

// subscribeFailed records err and warns once per distinct error.
func (w *Watcher) subscribeFailed(err error, lastWarned *string) {
	w.recordError(err)
	if msg := err.Error(); msg != *lastWarned {
		w.log.Warn("trigger subscription lost; resubscribing", "err", err)
		*lastWarned = msg
	} else {
		w.log.Debug("trigger subscription still failing", "err", err)
	}
}

// onNode names a cluster node in an error message ("" when not a cluster).
func onNode(addr string) string {
	if addr == "" {
		return ""
	}
	return " on node " + addr
}

// pickTarget returns the node to subscribe on: the shared client itself, or on a cluster the
// node owning the key's slot (found from the node subscribed so far, if any).
func (w *Watcher) pickTarget(ctx context.Context) (target, error) {
	if !w.cluster {
		return target{client: w.client}, nil
	}
	cur, _ := w.current()
	return w.resolveOwner(ctx, cur.addr)
}

// beginAttempt makes tgt the current node and returns the new attempt's number.
func (w *Watcher) beginAttempt(tgt target, cancel context.CancelFunc, afterMove bool) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	w.tgt, w.cancelSub, w.afterMove = tgt, cancel, afterMove
	w.ksSub, w.chSub, w.notifOK = false, false, false
	return w.gen
}

// onSubscription observes subscribe confirmations of attempt gen. It runs on rueidis' pipeline
// goroutine, so it only records and signals: the configuration work happens in setupLoop.
func (w *Watcher) onSubscription(gen uint64, s rueidis.PubSubSubscription) {
	var subscribed bool
	switch s.Kind {
	case "subscribe":
		subscribed = true
	case "unsubscribe":
	default:
		return
	}
	keyspace := s.Channel == w.keyspaceChannel
	reconnect := false
	w.mu.Lock()
	if gen != w.gen {
		w.mu.Unlock()
		return
	}
	switch {
	case keyspace:
		w.ksSub = subscribed
		if subscribed {
			n := w.keyspaceConfirms.Add(1)
			if w.afterMove {
				w.afterMove = false
			} else if n > 1 {
				w.status.Reconnects++
				reconnect = true
			}
			// A restarted server has forgotten a CONFIG SET, a new owner may never have had
			// it: unknown until setup checks.
			w.notifOK = false
		}
	case s.Channel == w.opts.Channel:
		w.chSub = subscribed
	}
	w.mu.Unlock()
	if keyspace && subscribed {
		w.signalSetup()
		if reconnect {
			w.signalRecheck() // the node restarted: it may have lost the slot meanwhile
		}
	}
}

// onMessage dispatches one message; it runs on the pipeline goroutine.
func (w *Watcher) onMessage(m rueidis.PubSubMessage) {
	switch m.Channel {
	case w.keyspaceChannel:
		w.onKeyspaceEvent(m.Message)
	case w.opts.Channel:
		w.onChannelMessage(m.Message)
	}
}

// setSubscribed records the state of both channels for attempt gen.
func (w *Watcher) setSubscribed(gen uint64, v bool) {
	w.mu.Lock()
	if gen == w.gen {
		w.ksSub, w.chSub = v, v
	}
	w.mu.Unlock()
}

// unsubscribe sends UNSUBSCRIBE on the connection c a Receive used, without waiting (see
// redisconn.Unsubscriber; Run waits for it before it returns). Failure is only logged: the
// connection is then broken, and a broken connection carries no subscription.
func (w *Watcher) unsubscribe(c rueidis.CommandClient, channels ...string) {
	w.unsub.Send(c, c.B().Unsubscribe().Channel(channels...).Build())
}
