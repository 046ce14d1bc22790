package trigger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
)

const notifyParam = "notify-keyspace-events"

// setupLoop runs one setup round per signal: at start and after every (re)subscription of the
// keyspace channel. A signal that arrives during a round (the server restarted again) queues
// exactly one more round. It also runs the poll ticks' configuration checks, so that a check
// and a round never overlap.
func (w *Watcher) setupLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.setup:
			w.setupRound(ctx)
		case <-w.verify:
			w.verifyNotifications(ctx)
		}
	}
}

// setupRound makes sure keyspace events flow on the node subscribed (retrying transient
// failures with backoff), then signals KindCatchup. The order matters: a write between the
// resubscription and the configuration produced no event, so the catch-up read must come after
// the configuration. A round whose node was left meanwhile (the key moved) gives up: the
// subscription on the new node queues a round of its own.
func (w *Watcher) setupRound(ctx context.Context) {
	bo := backoff.New(w.opts.RetryBackoff, w.opts.MaxRetryBackoff)
	tgt, gen := w.current()
	for attempt := 0; tgt.client != nil; attempt++ {
		err := w.ensureNotifications(ctx, tgt, gen)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		w.recordError(err)
		w.signalRecheck() // on a cluster the node may be failing because it lost the key
		// The first command after a reconnect may meet a connection that died with the old
		// server (rueidis does not retry writes): only a second failure is worth a warning.
		if attempt == 1 {
			w.log.Warn("cannot check keyspace notification config; retrying", "err", err)
		} else {
			w.log.Debug("keyspace notification config still failing", "err", err, "attempt", attempt+1)
		}
		if !w.sleep(ctx, bo.Next()) {
			return
		}
		if _, now := w.current(); now != gen {
			return
		}
	}
	w.catchUp()
}

// catchUp signals KindCatchup, then counts it: whoever sees the count can rely on the sink
// having the signal.
func (w *Watcher) catchUp() {
	w.sink.Notify(KindCatchup)
	w.mu.Lock()
	w.status.Catchups++
	w.mu.Unlock()
}

// verifyNotifications reads notify-keyspace-events again while the subscription stays up.
// Another client (an admin's CONFIG SET, a second tool managing the same server) can drop the
// classes eventrt needs without any reconnect; events would then stop silently and every run
// would wait for a poll tick until the next reconnect. Missing classes are dealt with as at
// start-up (applyNotifications), and once they are back the key is caught up, since writes in
// the gap produced no event. Classes an admin adds back are noticed too. A server that refused
// CONFIG is left alone: only a probe, which writes a key, could tell, too much for every tick.
func (w *Watcher) verifyNotifications(ctx context.Context) {
	w.mu.Lock()
	tgt, gen, ok := w.tgt, w.gen, w.notifOK
	skip := tgt.client == nil || !w.ksSub || w.status.ConfigRefused
	w.mu.Unlock()
	if skip {
		return
	}
	current, err := w.configGet(ctx, tgt)
	if err != nil {
		// A lost connection is the subscription's to handle: it reconnects and sets up again.
		w.recordError(err)
		return
	}
	_, missing := mergeFlags(current, w.required)
	if missing == "" {
		w.setNotifications(gen, true, current, false) // first: whoever reads the line sees the status
		if !ok {
			w.log.Info("keyspace notifications are enabled on the server now; events trigger runs again",
				"notify_keyspace_events", current, "node", tgt.addr)
		}
		return
	}
	if ok && w.opts.ConfigureNotifications {
		w.log.Warn("notify-keyspace-events lost classes while connected (changed by another client); setting them again",
			"notify_keyspace_events", current, "missing", missing, "node", tgt.addr)
	}
	if err := w.applyNotifications(ctx, tgt, gen, current); err != nil {
		w.recordError(err) // transient: the next tick tries again
		return
	}
	w.mu.Lock()
	repaired := w.notifOK && gen == w.gen
	w.mu.Unlock()
	if repaired {
		w.catchUp()
	}
}

// ensureNotifications reads notify-keyspace-events on tgt and completes it with CONFIG SET when
// it lacks a required flag; when CONFIG is refused it probes instead. It returns an error only
// for a transient failure worth retrying; every other outcome is recorded in the status (if
// attempt gen is still the current one).
func (w *Watcher) ensureNotifications(ctx context.Context, tgt target, gen uint64) error {
	current, err := w.configGet(ctx, tgt)
	if err != nil {
		if isTransient(err) {
			return err
		}
		return w.probeNotifications(ctx, tgt, gen, err)
	}
	return w.applyNotifications(ctx, tgt, gen, current)
}

// applyNotifications is ensureNotifications once notify-keyspace-events was read (current).
func (w *Watcher) applyNotifications(ctx context.Context, tgt target, gen uint64, current string) error {
	merged, missing := mergeFlags(current, w.required)
	if missing == "" {
		w.setNotifications(gen, true, current, false)
		return nil
	}
	if !w.opts.ConfigureNotifications {
		w.setNotifications(gen, false, current, false)
		w.warnNoNotifications("keyspace notifications lack classes and ConfigureNotifications is off; relying on polling",
			"notify_keyspace_events", current, "missing", missing)
		return nil
	}
	if err := w.configSet(ctx, tgt, merged); err != nil {
		if isTransient(err) {
			return err
		}
		return w.probeNotifications(ctx, tgt, gen, err)
	}
	w.log.Info("enabled keyspace notifications", "notify_keyspace_events", merged, "was", current, "node", tgt.addr)
	w.setNotifications(gen, true, merged, false)
	return nil
}

// configGet and configSet go to tgt's client: on a cluster, the node owning the key, since
// keyspace events are node-local and a keyless command on the cluster client would reach an
// arbitrary node.
func (w *Watcher) configGet(ctx context.Context, tgt target) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.CommandTimeout)
	defer cancel()
	c := tgt.client
	m, err := c.Do(ctx, c.B().ConfigGet().Parameter(notifyParam).Build()).AsStrMap()
	if err != nil {
		return "", fmt.Errorf("CONFIG GET %s%s: %w", notifyParam, onNode(tgt.addr), err)
	}
	v, ok := m[notifyParam]
	if !ok {
		return "", fmt.Errorf("CONFIG GET %s%s: %w: parameter missing", notifyParam, onNode(tgt.addr), errUnexpectedReply)
	}
	return v, nil
}

func (w *Watcher) configSet(ctx context.Context, tgt target, flags string) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.CommandTimeout)
	defer cancel()
	c := tgt.client
	cmd := c.B().ConfigSet().ParameterValue().ParameterValue(notifyParam, flags).Build()
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("CONFIG SET %s %q%s: %w", notifyParam, flags, onNode(tgt.addr), err)
	}
	return nil
}

// probeNotifications handles a refused CONFIG (cause) by checking whether events arrive anyway.
func (w *Watcher) probeNotifications(ctx context.Context, tgt target, gen uint64, cause error) error {
	refused := fmt.Errorf("%w: %w", ErrConfigRefused, cause)
	w.recordError(refused)
	res, err := w.probe(ctx, tgt)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && isTransient(err) {
		return err
	}
	ok := res.strings && res.hashes
	w.setNotifications(gen, ok, "", true)
	switch {
	case ok:
		w.log.Debug("CONFIG refused but keyspace notifications arrive", "config_err", cause)
	case err != nil:
		w.recordError(err)
		w.warnNoNotifications("CONFIG refused and the notification probe failed; relying on polling",
			"config_err", cause, "probe_err", err, "poll_period", w.opts.PollPeriod)
	default:
		w.warnNoNotifications("CONFIG refused and keyspace notifications do not arrive; relying on polling",
			"config_err", cause, "string_events", res.strings, "hash_events", res.hashes,
			"poll_period", w.opts.PollPeriod)
	}
	return nil
}

// setNotifications records the outcome of a setup round for attempt gen, unless a newer
// attempt (on another node) has begun.
func (w *Watcher) setNotifications(gen uint64, ok bool, config string, refused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if gen != w.gen {
		return
	}
	w.notifOK = ok
	w.status.NotifyConfig = config
	w.status.ConfigRefused = refused
	if ok {
		w.warned = false
	}
}

// warnNoNotifications logs the "relying on polling" warning once, not on every reconnect: it
// is logged again only after notifications have worked in between.
func (w *Watcher) warnNoNotifications(msg string, args ...any) {
	w.mu.Lock()
	first := !w.warned
	w.warned = true
	w.mu.Unlock()
	if first {
		w.log.Warn(msg, args...)
	} else {
		w.log.Debug(msg, args...)
	}
}

// errUnexpectedReply marks a reply this code cannot use (a Redis-compatible server that lacks
// the parameter, say): retrying would not change it.
var errUnexpectedReply = errors.New("unexpected reply")

// isTransient reports whether err may go away by retrying: no reply at all (connection,
// timeout), or a server busy with something else. Any other error reply (unknown command,
// NOPERM, invalid argument) is an answer and will stay the same.
func isTransient(err error) bool {
	if errors.Is(err, errUnexpectedReply) || rueidis.IsParseErr(err) {
		return false
	}
	var re *rueidis.RedisError
	if !errors.As(err, &re) || re.IsNil() {
		return true
	}
	if re.IsLoading() || re.IsTryAgain() || re.IsClusterDown() {
		return true
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "BUSY") || strings.HasPrefix(msg, "MASTERDOWN")
}
