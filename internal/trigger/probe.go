package trigger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// probeResult says which write events a probe saw arrive.
type probeResult struct {
	strings bool // "set" (class $)
	hashes  bool // "hset" (class h)
}

// probe checks whether keyspace events arrive without knowing the configuration: it subscribes
// to a fresh probe key's keyspace channel, writes the key as a string and then as a hash (with
// a short PX so nothing is left behind), and waits up to ProbeTimeout (wall time: it bounds a
// network round trip, not a schedule) for both events. The error is for a probe that could not
// run (subscription or write failed); a probe that ran reports what it saw.
//
// The subscription goes to tgt (on a cluster, the node owning the input key, whose slot the
// probe key shares) and the writes through the shared client, which routes them to that slot's
// owner: the probe exercises exactly the node the Watcher listens to.
func (w *Watcher) probe(ctx context.Context, tgt target) (probeResult, error) {
	var res probeResult
	key := probeKey(w.probeTag, rand.Uint64())
	ch := keyspaceChannel(w.opts.DB, key)

	pctx, cancel := context.WithTimeout(ctx, w.opts.CommandTimeout+w.opts.ProbeTimeout)
	subscribed := make(chan struct{}, 1)
	events := make(chan string, 16)
	rctx := rueidis.WithOnSubscriptionHook(pctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "subscribe" && s.Channel == ch {
			select {
			case subscribed <- struct{}{}:
			default:
			}
		}
	})
	rctx = rueidis.WithOnReceiveReturnHook(rctx, func(err error, c rueidis.CommandClient) error {
		w.unsubscribe(c, ch)
		return err
	})
	done := make(chan error, 1)
	go func() {
		done <- tgt.client.Receive(rctx, tgt.client.B().Subscribe().Channel(ch).Build(),
			func(m rueidis.PubSubMessage) {
				select {
				case events <- m.Message:
				default: // only "set" and "hset" matter, and they come first
				}
			})
	}()
	received := false
	defer func() {
		cancel()
		if !received {
			<-done
		}
	}()
	recvErr := func(err error) (probeResult, error) {
		received = true
		if err == nil {
			err = fmt.Errorf("%w: subscription ended", errUnexpectedReply)
		}
		return res, fmt.Errorf("probe subscribe %s%s: %w", ch, onNode(tgt.addr), err)
	}

	select {
	case <-subscribed:
	case err := <-done:
		return recvErr(err)
	case <-pctx.Done():
		return res, fmt.Errorf("probe subscribe %s: %w", ch, pctx.Err())
	}

	ttl := w.opts.ProbeTimeout + time.Second
	b := w.client.B()
	for i, r := range w.client.DoMulti(pctx,
		b.Set().Key(key).Value("1").Px(ttl).Build(),
		b.Del().Key(key).Build(),
		b.Hset().Key(key).FieldValue().FieldValue("probe", "1").Build(),
		b.Pexpire().Key(key).Milliseconds(ttl.Milliseconds()).Build(),
	) {
		if err := r.Error(); err != nil {
			return res, fmt.Errorf("probe write %d on %s: %w", i, key, err)
		}
	}

	timer := time.NewTimer(w.opts.ProbeTimeout)
	defer timer.Stop()
	for !(res.strings && res.hashes) {
		select {
		case ev := <-events:
			switch ev {
			case "set":
				res.strings = true
			case "hset":
				res.hashes = true
			}
		case <-timer.C:
			return res, nil
		case err := <-done:
			return recvErr(err)
		case <-pctx.Done():
			return res, fmt.Errorf("probe %s: %w", ch, pctx.Err())
		}
	}
	return res, nil
}

// probeKey names a fresh probe key with tag, a hash tag in the input key's slot, because on a
// cluster keyspace events are node-local: the probe must exercise the node that owns the input
// key.
func probeKey(tag string, nonce uint64) string {
	return "eventrt:probe:" + tag + ":" + strconv.FormatUint(nonce, 16)
}

// hashTag returns a "{tag}" that hashes to inputKey's slot: its own hash tag when it has one,
// else the whole key in braces. A key without a tag but with a '}' cannot be wrapped; "" then
// (the slot only matters on a cluster, where New finds another tag in the slot).
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i : i+j+2]
		}
	}
	if strings.IndexByte(key, '}') >= 0 {
		return ""
	}
	return "{" + key + "}"
}
