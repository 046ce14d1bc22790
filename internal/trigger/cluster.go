package trigger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/backoff"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// target is where the keyspace channel is subscribed and CONFIG is sent: the shared client
// itself (addr "") or, on a cluster, the client of the node owning the input key.
type target struct {
	addr   string
	client rueidis.Client
}

// maxRedirects bounds the MOVED replies followed while looking for the owner; a cluster that
// is resharding answers with at most a couple.
const maxRedirects = 5

// ownerLoop re-checks the owner of the input key's slot whenever something suggests it may
// have changed, and moves the subscription when it did.
func (w *Watcher) ownerLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.recheck:
		}
		w.recheckOwner(ctx)
	}
}

// recheckOwner finds the owner, retrying with backoff while that fails (the owner died and no
// replica has taken over yet: rueidis retries the dead node's subscription silently, so
// nothing else would ask again), and cancels the current subscription if the owner changed.
func (w *Watcher) recheckOwner(ctx context.Context) {
	bo := backoff.New(w.opts.RetryBackoff, w.opts.MaxRetryBackoff)
	for attempt := 0; ; attempt++ {
		cur, gen := w.current()
		if cur.addr == "" {
			return // no node chosen yet: subscribeLoop is looking for the owner itself
		}
		owner, err := w.resolveOwner(ctx, cur.addr)
		if err == nil {
			if owner.addr != cur.addr {
				w.moveTo(gen, cur.addr, owner.addr)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		w.recordError(err)
		// A failover leaves the owner unknown for a moment (the dead node is still listed;
		// rueidis learns the promoted replica at its next topology refresh, within a
		// second): only a failure that outlasts that is worth a warning.
		if attempt == 4 {
			w.log.Warn("cannot find the cluster node owning the input key; retrying", "slot", w.slot, "err", err)
		} else {
			w.log.Debug("owner of the input key still unknown", "slot", w.slot, "err", err, "attempt", attempt+1)
		}
		if !w.sleep(ctx, bo.Next()) {
			return
		}
		select { // this loop is checking already
		case <-w.recheck:
		default:
		}
	}
}

// moveTo ends attempt gen, subscribed on from, so that subscribeLoop subscribes on to. The
// status turns unsubscribed at once: events of the key no longer reach the old node.
func (w *Watcher) moveTo(gen uint64, from, to string) {
	w.mu.Lock()
	if gen != w.gen || w.cancelSub == nil {
		w.mu.Unlock()
		return // subscribeLoop has moved on by itself, or this attempt is being left already
	}
	w.status.Moves++
	w.ksSub, w.chSub, w.notifOK = false, false, false
	cancel := w.cancelSub
	w.cancelSub = nil
	w.mu.Unlock()
	w.log.Info("input key is served by another cluster node; following it", "slot", w.slot, "from", from, "to", to)
	cancel()
}

// resolveOwner returns the node where writes of the input key execute, starting from the
// node start (the one subscribed so far, or "" to ask CLUSTER SLOTS). It asks the candidate
// itself with a keyed read, which the owner answers and any other node redirects: MOVED to
// the slot's owner, or ASK to the node importing the slot once the key was migrated there.
// Only the candidate's own answer is trusted, because the other nodes learn a failover or a
// migration by gossip, later.
func (w *Watcher) resolveOwner(ctx context.Context, start string) (target, error) {
	nodes := w.client.Nodes()
	addr, fromSlots := start, false
	if addr == "" {
		a, err := w.slotOwner(ctx, nodes, "")
		if err != nil {
			return target{}, err
		}
		addr, fromSlots = a, true
	}
	for range maxRedirects {
		nc, err := w.nodeClient(ctx, &nodes, addr)
		if err == nil {
			err = w.existsOn(ctx, nc)
		}
		var re *rueidis.RedisError
		switch {
		case err == nil:
			return target{addr: addr, client: nc}, nil
		case errors.As(err, &re):
			if to, ok := re.IsMoved(); ok {
				addr = to
				continue
			}
			if to, ok := re.IsAsk(); ok {
				nc, err := w.nodeClient(ctx, &nodes, to)
				if err != nil {
					return target{}, err
				}
				return target{addr: to, client: nc}, nil
			}
		}
		if fromSlots || ctx.Err() != nil {
			return target{}, fmt.Errorf("EXISTS %s on node %s: %w", w.opts.InputKey, addr, err)
		}
		// The node subscribed so far does not answer (it died, or the cluster is down for
		// it): ask the others who owns the slot now.
		a, serr := w.slotOwner(ctx, nodes, addr)
		if serr != nil {
			return target{}, fmt.Errorf("EXISTS %s on node %s: %v; %w", w.opts.InputKey, addr, err, serr)
		}
		addr, fromSlots = a, true
	}
	return target{}, fmt.Errorf("owner of %s (slot %d): more than %d MOVED redirections", w.opts.InputKey, w.slot, maxRedirects)
}

// existsOn sends EXISTS of the input key to one node. It is built with Arbitrary, which
// rueidis does not mark read-only and so does not retry: a dead node must fail the check at
// once, not after CommandTimeout of reconnection attempts.
func (w *Watcher) existsOn(ctx context.Context, nc rueidis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.CommandTimeout)
	defer cancel()
	return nc.Do(ctx, nc.B().Arbitrary("EXISTS").Keys(w.opts.InputKey).Build()).Error()
}

// nodeClient returns the cluster client's connection to addr. A node rueidis does not know
// yet (promoted or added after its last topology refresh) becomes known when a keyed command
// through the cluster client is redirected to it, so one is sent before giving up.
func (w *Watcher) nodeClient(ctx context.Context, nodes *map[string]rueidis.Client, addr string) (rueidis.Client, error) {
	if nc, ok := (*nodes)[addr]; ok {
		return nc, nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.opts.CommandTimeout)
	defer cancel()
	_ = w.client.Do(cctx, w.client.B().Exists().Key(w.opts.InputKey).Build()).Error() // only its side effect matters
	*nodes = w.client.Nodes()
	if nc, ok := (*nodes)[addr]; ok {
		return nc, nil
	}
	return nil, fmt.Errorf("node %s owning %s (slot %d) is not known to the cluster client yet", addr, w.opts.InputKey, w.slot)
}

// slotOwner asks the nodes in turn (skip last, in address order) for CLUSTER SLOTS and returns
// the master serving the input key's slot according to the first that answers.
func (w *Watcher) slotOwner(ctx context.Context, nodes map[string]rueidis.Client, skip string) (string, error) {
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		if a != skip {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	if skip != "" {
		addrs = append(addrs, skip)
	}
	var last error = errors.New("the cluster client knows no node")
	for _, a := range addrs {
		owner, err := w.slotOwnerFrom(ctx, a, nodes[a])
		if err == nil {
			return owner, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		last = err
	}
	return "", fmt.Errorf("no node answered CLUSTER SLOTS: %w", last)
}

// slotOwnerFrom asks node addr for CLUSTER SLOTS (not retried, like existsOn).
func (w *Watcher) slotOwnerFrom(ctx context.Context, addr string, nc rueidis.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.CommandTimeout)
	defer cancel()
	ranges, err := nc.Do(ctx, nc.B().Arbitrary("CLUSTER", "SLOTS").Build()).ToArray()
	if err != nil {
		return "", fmt.Errorf("CLUSTER SLOTS on node %s: %w", addr, err)
	}
	owner, err := ownerInSlots(ranges, w.slot, addr)
	if err != nil {
		return "", fmt.Errorf("CLUSTER SLOTS on node %s: %w", addr, err)
	}
	return owner, nil
}

// ownerInSlots finds slot in a CLUSTER SLOTS reply (ranges of [first, last, [ip, port, id],
// replicas...]) and returns its master's host:port. An empty or "?" ip means "the address you
// reached me at": the host of from.
func ownerInSlots(ranges []rueidis.RedisMessage, slot int, from string) (string, error) {
	for _, r := range ranges {
		e, err := r.ToArray()
		if err != nil || len(e) < 3 {
			return "", fmt.Errorf("%w: malformed slot range", errUnexpectedReply)
		}
		lo, err1 := e[0].AsInt64()
		hi, err2 := e[1].AsInt64()
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("%w: malformed slot range", errUnexpectedReply)
		}
		if int64(slot) < lo || int64(slot) > hi {
			continue
		}
		master, err := e[2].ToArray()
		if err != nil || len(master) < 2 {
			return "", fmt.Errorf("%w: malformed node of slots %d-%d", errUnexpectedReply, lo, hi)
		}
		host, err1 := master[0].ToString()
		port, err2 := master[1].AsInt64()
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("%w: malformed node of slots %d-%d", errUnexpectedReply, lo, hi)
		}
		if host == "" || host == "?" {
			host, _, _ = net.SplitHostPort(from)
		}
		return net.JoinHostPort(host, strconv.FormatInt(port, 10)), nil
	}
	return "", fmt.Errorf("slot %d is served by no node (cluster down?)", slot)
}

// tagForSlot returns a hash tag "{n}" whose slot is slot, for a probe key in the input key's
// slot when the key cannot be wrapped in braces itself. Every slot is reached within a few
// hundred thousand candidates; the bound only guards against a broken hash.
func tagForSlot(slot int) string {
	for n := 0; n < 1<<22; n++ {
		tag := "{" + strconv.Itoa(n) + "}"
		if redisconn.KeySlot(tag) == slot {
			return tag
		}
	}
	return ""
}
