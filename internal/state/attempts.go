package state

// Poison values in key mode. A value whose run kills the process (the kernel's OOM killer, a
// crash) would be read again by the catch-up run of every restart and kill it again: a crash
// loop until someone changes the key. So a run of a key value that lasts long enough to be at
// risk is recorded in K:meta while it runs (MarkAttempt; the read of the value reads the count
// in its round trip, Store.Read), and the record is cleared when the run ends, however it ends
// (its commit, or ClearAttempt after a failure that wrote nothing). A count left behind means runs that never ended; a value
// whose count passes the caller's limit is not run again but moved to the dead-letter stream
// (DeadLetter), which also records it as executed so that it is skipped until the key
// changes.
//
// The count is keyed by the SHA-1 of the raw value (computed in Go, and by redis.sha1hex in
// the script of CountAttempt), and only one value is counted at a time (attempt_input, attempts): a new value starts
// at 1. These functions take the key and the meta hash as arguments, so a function watching
// many keys can keep one count per key.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/quote"
)

// Attempt bookkeeping fields of K:meta.
const (
	FieldAttemptInput = "attempt_input"
	FieldAttempts     = "attempts"
)

// AttemptID identifies a value for the attempt count: the hex SHA-1 of its bytes, as Redis'
// redis.sha1hex computes it.
func AttemptID(raw []byte) string {
	sum := sha1.Sum(raw)
	return hex.EncodeToString(sum[:])
}

// countBody counts a run of the value id in the meta hash KEYS[1] unless id is one of
// ARGV[2...] (values the caller will not run: the one it executed last, the one that failed
// last), and leaves the count in n.
const countBody = `
local n = 0
local skip = false
for i = 2, #ARGV do if ARGV[i] == id then skip = true end end
if not skip then
  if redis.call('HGET', KEYS[1], 'attempt_input') == id then
    n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  else
    redis.call('HSET', KEYS[1], 'attempt_input', id, 'attempts', 1)
    n = 1
  end
end
`

// countScript counts a run of the value ARGV[1] in the meta hash KEYS[1]. Reply: n.
var countScript = newScript(`
local id = ARGV[1]
` + countBody + `
return n
`)

// CountAttempt counts a run of the value id (AttemptID) in meta unless id is one of skip,
// and returns the count, this run included (0 when skipped). Run by itself it costs a round
// trip; Read does the same in the round trip of the read when it can.
func CountAttempt(ctx context.Context, cc rueidis.CoreClient, meta, id string, skip ...string) (int64, error) {
	args := append([]string{id}, skip...)
	n, err := countScript.exec(ctx, cc, []string{meta}, args).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("count attempt in %s: %w", meta, err)
	}
	return n, nil
}

// ClearAttempt removes the attempt count from meta: the run ended without a commit (a clean
// failure is a failure, not an attempt that killed the process).
func ClearAttempt(ctx context.Context, cc rueidis.CoreClient, meta string) error {
	if err := cc.Do(ctx, cc.B().Hdel().Key(meta).Field(FieldAttemptInput, FieldAttempts).Build()).Error(); err != nil {
		return fmt.Errorf("clear attempt in %s: %w", meta, err)
	}
	return nil
}

// MarkAttempt records in meta that run n of the value id has started and not ended yet: what a
// run that lasts long enough to be at risk (one that allocates its way to the OOM killer) does
// while it runs, so that the runs that kill the process are counted without a write on the
// path of every short run (see runner.Options.AttemptMarkAfter).
func MarkAttempt(ctx context.Context, cc rueidis.CoreClient, meta, id string, n int64) error {
	cmd := cc.B().Hset().Key(meta).FieldValue().FieldValue(FieldAttemptInput, id).
		FieldValue(FieldAttempts, strconv.FormatInt(n, 10)).Build()
	if err := cc.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("mark attempt in %s: %w", meta, err)
	}
	return nil
}

// DeadLetterMaxLen caps a key-mode dead-letter stream (approximate MAXLEN).
const DeadLetterMaxLen = 10000

// DeadValueBytes is how much of a dead value a dead letter keeps; eventrt:input_bytes gives
// its full length, and the key still holds it until it changes.
const DeadValueBytes = 64 << 10

// Key-mode dead-letter fields.
const (
	DeadFieldKey        = "eventrt:key"
	DeadFieldInput      = "eventrt:input"
	DeadFieldInputBytes = "eventrt:input_bytes"
	DeadFieldInputID    = "eventrt:input_id"
)

// Dead is a key value to move to the dead-letter stream.
type Dead struct {
	DeadLetter string // the dead-letter stream, in the meta hash's slot
	Key        string // the input key
	Raw        []byte
	// InputID (InputID(raw)) is recorded as the last input executed, so the value is skipped
	// until the key changes.
	InputID  string
	Error    string
	Attempts int64
	At       time.Time
}

// DeadLetter appends d to its dead-letter stream, records the value as executed and clears
// its attempt count, in one MULTI/EXEC.
func (s *Store) DeadLetter(ctx context.Context, cc rueidis.CoreClient, d Dead) error {
	raw := d.Raw
	if len(raw) > DeadValueBytes {
		raw = raw[:DeadValueBytes]
	}
	b := cc.B()
	res := cc.DoMulti(ctx, b.Multi().Build(),
		b.Xadd().Key(d.DeadLetter).Maxlen().Almost().Threshold(strconv.Itoa(DeadLetterMaxLen)).Id("*").FieldValue().
			FieldValue(DeadFieldKey, d.Key).
			FieldValue(DeadFieldInput, rueidis.BinaryString(raw)).
			FieldValue(DeadFieldInputBytes, strconv.Itoa(len(d.Raw))).
			FieldValue(DeadFieldInputID, AttemptID(d.Raw)).
			FieldValue(DeadFieldError, quote.Text(d.Error)).
			FieldValue(DeadFieldAttempts, strconv.FormatInt(d.Attempts, 10)).Build(),
		b.Hset().Key(s.metaKey).FieldValue().FieldValue(FieldLastInput, d.InputID).Build(),
		b.Hdel().Key(s.metaKey).Field(FieldAttemptInput, FieldAttempts).Build(),
		b.Exec().Build())
	for _, r := range res {
		if err := r.Error(); err != nil {
			return fmt.Errorf("dead-letter %s to %s: %w", d.Key, d.DeadLetter, err)
		}
	}
	replies, err := res[len(res)-1].ToArray()
	if err != nil {
		return fmt.Errorf("dead-letter %s to %s: EXEC: %w", d.Key, d.DeadLetter, err)
	}
	for _, r := range replies {
		if err := r.Error(); err != nil {
			return fmt.Errorf("dead-letter %s to %s: %w", d.Key, d.DeadLetter, err)
		}
	}
	return nil
}

// Read is what Store.Read returns.
type Read struct {
	Raw []byte // the value; nil when the key is missing
	// AttemptID identifies Raw for the attempt count; Attempts is the count, this run
	// included (0 when not counted: Count off, or the value was in Skip).
	AttemptID string
	Attempts  int64
	// Fields is the state hash's number of fields at the read.
	Fields int64
	// Lease is the lease key's value (WatchLease only; "" when there is none).
	Lease string
	// Watched: the read WATCHed the state hash (and the lease key with WatchLease) on its
	// connection; a commit with Watched set may then be a transaction.
	Watched bool
}

// ReadOptions say what Store.Read does besides reading the input.
type ReadOptions struct {
	// Watch WATCHes the state hash on cc, a connection of the caller's own (WATCH belongs
	// to a connection); WatchLease also the lease key, and reads it.
	Watch, WatchLease bool
	// Count reads the value's attempt count (runs of it that started and never ended)
	// and reports the count this run would have, unless its id is in Skip. Reading writes
	// nothing: a run is recorded as an attempt only while it runs (MarkAttempt).
	Count bool
	Skip  []string
	// SameNode: the input key and the state keys are on one node (not a cluster, or one
	// hash slot), so the value and the count are read in one round trip.
	SameNode bool
}

// Read reads the input key for a run, in one round trip of plain reads: the value, its attempt
// count (o.Count), the state hash's number of fields, and with o.Watch a WATCH of what a
// checked commit checks. On a cluster an input key in another slot than the state costs a
// second round trip for the count.
func (s *Store) Read(ctx context.Context, cc rueidis.CoreClient, key string, o ReadOptions) (Read, error) {
	var rd Read
	b := cc.B()
	together := o.Count && o.SameNode
	cmds := make(rueidis.Commands, 0, 6)
	if o.Watch {
		// A run that did not commit left its WATCH, perhaps touched since.
		cmds = append(cmds, b.Unwatch().Build())
	}
	if o.Watch {
		if o.WatchLease {
			cmds = append(cmds, b.Watch().Key(s.stateKey, s.leaseKey).Build())
		} else {
			cmds = append(cmds, b.Watch().Key(s.stateKey).Build())
		}
	}
	readAt := len(cmds)
	cmds = append(cmds, b.Get().Key(key).Build())
	leaseAt := len(cmds)
	if o.WatchLease {
		cmds = append(cmds, b.Get().Key(s.leaseKey).Build())
	}
	countAt := len(cmds)
	if together {
		cmds = append(cmds, b.Hmget().Key(s.metaKey).Field(FieldAttemptInput, FieldAttempts).Build())
	}
	hlenAt := len(cmds)
	cmds = append(cmds, b.Hlen().Key(s.stateKey).Build())
	res := cc.DoMulti(ctx, cmds...)
	for i, r := range res {
		if i == readAt || i == leaseAt && o.WatchLease {
			continue
		}
		if err := r.Error(); err != nil {
			return rd, fmt.Errorf("read %s: %w", key, err)
		}
	}
	if o.WatchLease {
		lease, err := res[leaseAt].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return rd, fmt.Errorf("GET %s: %w", s.leaseKey, err)
		}
		rd.Lease = lease
	}
	n, err := res[hlenAt].AsInt64()
	if err != nil {
		return rd, fmt.Errorf("HLEN %s: %w", s.stateKey, err)
	}
	rd.Fields, rd.Watched = n, o.Watch
	raw, err := inputValue(ctx, cc, key, res[readAt])
	if err != nil || raw == nil {
		return rd, err
	}
	rd.Raw, rd.AttemptID = raw, AttemptID(raw)
	if !o.Count || slices.Contains(o.Skip, rd.AttemptID) {
		return rd, nil
	}
	count := res[countAt]
	if !together {
		count = cc.Do(ctx, b.Hmget().Key(s.metaKey).Field(FieldAttemptInput, FieldAttempts).Build())
	}
	fields, err := count.ToArray()
	if err != nil || len(fields) != 2 {
		return rd, fmt.Errorf("read attempts in %s: %w", s.metaKey, errors.Join(err, errors.New("unexpected reply")))
	}
	rd.Attempts = 1
	if id, _ := fields[0].ToString(); id == rd.AttemptID {
		prior, _ := fields[1].AsInt64()
		rd.Attempts += max(prior, 0)
	}
	return rd, nil
}

// Reset deletes a function's state hash and its bookkeeping (K and K:meta, with the attempt
// count): the next run sees an empty env, and a running eventrt notices (see Store.Read) and
// never writes a partial hash. It returns how many of the two keys existed.
func Reset(ctx context.Context, c rueidis.CoreClient, stateKey string) (int64, error) {
	n, err := c.Do(ctx, c.B().Del().Key(stateKey, MetaKey(stateKey)).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("reset state %s: %w", stateKey, err)
	}
	return n, nil
}
