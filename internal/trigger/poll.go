package trigger

import "context"

// pollLoop signals KindPoll every PollPeriod, whatever the state of notifications: it is the
// fallback that catches a missed event (or every event, when notifications are off) within one
// period. Deciding whether the value is new is the runner's job. On a cluster every tick also
// re-checks the key's owner: after a coordinated failover nothing else tells that the node
// subscribed became a replica (which, as such, keeps publishing the key's events meanwhile).
// Every tick also has the notification configuration checked (verifyNotifications).
func (w *Watcher) pollLoop(ctx context.Context) {
	t := w.opts.Clock.NewTicker(w.opts.PollPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			w.sink.Notify(KindPoll)
			w.signalRecheck()
			w.signalVerify()
		}
	}
}
