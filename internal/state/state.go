// Package state owns eventrt's durable state in Redis and every write that must be atomic:
// a function's output, its context.env hash and the bookkeeping that identifies the last input
// executed are committed together in one MULTI/EXEC, so a crash can never leave them
// disagreeing. It also loads that state at start and reads input values.
//
// Layout, for a state key K (default "{<output key>}:env"):
//
//	K        hash  one field per env key, value = JSON of the value (HGETALL K shows the env)
//	K:meta   hash  last_input      identity (SHA-256 prefix) of the last key value executed
//	               last_execution  RFC 3339 time of the last successful run (context.last_execution)
//	               executions      number of successful commits
//	               handler         hash of the handler source that produced the last commit
//	               fence           fencing token of the lease holder that made the last commit
//	                               (key mode with replicas only)
//	               attempt_input   SHA-1 (hex) of the input value whose run started last and has
//	               attempts        not ended, and how many runs of it started (see attempts.go)
//	K:dead   stream key mode's dead letters: values whose runs kept killing the process
//	K:lease  string "<owner>:<token>" of the replica allowed to commit, with a PX TTL; written
//	               by package lease, checked here by every fenced commit
//	K:fence  int    the last fencing token handed out (INCR at every acquisition of K:lease)
//
// All keys share K's hash tag, so on a Redis Cluster they live in one slot with the output key
// when K is derived from it.
//
// A commit is either unfenced (one MULTI/EXEC, a single replica) or fenced: a Lua script that
// first checks that K:lease still holds the committing replica's lease value and writes nothing
// otherwise (ErrFenced). The check and the writes are one atomic step, so a replica that was
// paused past its lease cannot overwrite what its successor committed. A replica reading on a
// connection of its own (ReadWatched) WATCHes K:lease as it reads the input; its commit is then
// a MULTI/EXEC that Redis applies only if K:lease, which held the replica's value at the read,
// was not touched since, and falls back to the script when it was: the same check, cheaper.
package state

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/quote"
)

// Meta fields.
const (
	FieldLastInput     = "last_input"
	FieldLastExecution = "last_execution"
	FieldExecutions    = "executions"
	FieldHandler       = "handler"
	FieldFence         = "fence"
)

// MetaKey is the bookkeeping hash of a state key.
func MetaKey(stateKey string) string { return stateKey + ":meta" }

// LeaseKey is the replica lease of a state key.
func LeaseKey(stateKey string) string { return stateKey + ":lease" }

// FenceKey is the fencing-token counter of a state key.
func FenceKey(stateKey string) string { return stateKey + ":fence" }

// DeadKey is the default key-mode dead-letter stream of a state key (same hash slot).
func DeadKey(stateKey string) string { return stateKey + ":dead" }

// ErrStateChanged is returned by Commit when CheckFields is set and the state hash no longer
// has the number of fields the commit expects: someone deleted it (a reset) or edited it
// while the function ran. Nothing was written; the caller reloads the state and runs again,
// so that a partial hash is never written.
var ErrStateChanged = errors.New("state hash changed outside eventrt: commit refused")

// IsStateChanged reports whether err is a commit refused because the state hash changed.
func IsStateChanged(err error) bool { return errors.Is(err, ErrStateChanged) }

// ErrFenced is returned by Commit when the lease value the commit carries is no longer the one
// in Redis: another replica holds the lease (or nobody does), and nothing was written.
var ErrFenced = errors.New("lease no longer held: commit refused")

// IsFenced reports whether err is a commit refused because the lease was lost.
func IsFenced(err error) bool { return errors.Is(err, ErrFenced) }

// Snapshot is the state as loaded from Redis.
type Snapshot struct {
	// Fields maps each env key to the JSON text of its value.
	Fields        map[string]string
	LastInput     string
	LastExecution time.Time // zero before the first successful run
	Executions    int64
}

// Options configure a Store.
type Options struct {
	Client    rueidis.Client
	StateKey  string
	OutputKey string
}

// Store reads and commits one function's state.
type Store struct {
	c         rueidis.Client
	stateKey  string
	metaKey   string
	leaseKey  string
	outputKey string
}

// New validates o and returns a Store.
func New(o Options) (*Store, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("state: nil Redis client")
	case o.StateKey == "":
		return nil, errors.New("state: empty state key")
	case o.OutputKey == "":
		return nil, errors.New("state: empty output key")
	}
	return &Store{c: o.Client, stateKey: o.StateKey, metaKey: MetaKey(o.StateKey), leaseKey: LeaseKey(o.StateKey), outputKey: o.OutputKey}, nil
}

// CorruptError reports a state hash that eventrt cannot read back; it is never overwritten.
type CorruptError struct {
	Key, Field string
	Err        error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state %s field %s: %v (fix or HDEL it; eventrt will not overwrite it)", e.Key, quote.Value(e.Field), e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// IsCorrupt reports whether err is a state that cannot be read back.
func IsCorrupt(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce)
}

// Key is the state hash.
func (s *Store) Key() string { return s.stateKey }

// Load reads the env hash and its bookkeeping. Each env field must hold valid JSON.
func (s *Store) Load(ctx context.Context) (Snapshot, error) {
	res := s.c.DoMulti(ctx,
		s.c.B().Hgetall().Key(s.stateKey).Build(),
		s.c.B().Hgetall().Key(s.metaKey).Build())
	fields, err := res[0].AsStrMap()
	if err != nil {
		return Snapshot{}, fmt.Errorf("load state %s: %w", s.stateKey, err)
	}
	meta, err := res[1].AsStrMap()
	if err != nil {
		return Snapshot{}, fmt.Errorf("load state %s: %w", s.metaKey, err)
	}
	return decodeSnapshot(s.stateKey, s.metaKey, fields, meta)
}

// decodeSnapshot checks and converts the raw state and meta hashes (key and stream mode alike).
// Each env field must hold valid JSON.
func decodeSnapshot(stateKey, metaKey string, fields, meta map[string]string) (Snapshot, error) {
	for k, v := range fields {
		if !json.Valid([]byte(v)) {
			return Snapshot{}, &CorruptError{Key: stateKey, Field: k, Err: errors.New("value is not JSON")}
		}
	}
	snap := Snapshot{Fields: fields, LastInput: meta[FieldLastInput]}
	if v := meta[FieldLastExecution]; v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return Snapshot{}, &CorruptError{Key: metaKey, Field: FieldLastExecution, Err: err}
		}
		snap.LastExecution = t
	}
	if v := meta[FieldExecutions]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Snapshot{}, &CorruptError{Key: metaKey, Field: FieldExecutions, Err: err}
		}
		snap.Executions = n
	}
	return snap, nil
}

// Commit is what one successful execution writes.
type Commit struct {
	// Output is SET on the output key; nil writes nothing there.
	Output []byte
	// Set and Del are the env changes: fields to (re)write with their JSON, fields to remove.
	Set map[string][]byte
	Del []string
	// InputID, when not empty, records the input value executed (see InputID).
	InputID string
	At      time.Time
	Handler string
	// Fence, when not empty, is the committing replica's lease value ("<owner>:<token>"): the
	// commit happens only while K:lease holds exactly this value, and fails with ErrFenced
	// otherwise. Token is recorded in K:meta fence.
	Fence string
	Token int64
	// CheckFields makes the commit conditional on the state hash holding Fields fields, the
	// number the caller's env was loaded or last committed with; otherwise it fails with
	// ErrStateChanged and writes nothing (a deleted hash would otherwise get only the fields
	// this run changed).
	CheckFields bool
	Fields      int
	// ClearAttempt removes the attempt bookkeeping (see CountAttempt): the run ended.
	ClearAttempt bool
	// Watched says that ReadWatched or Read, on the connection CommitOn is given, WATCHed the
	// lease key (and found it holding Fence) and, with CheckFields, the state hash. The commit is then a MULTI/EXEC that Redis applies only if nothing touched
	// the lease key since (a takeover, a release, its expiry, and also a renewal), and the
	// script when it did not apply. Both check the same thing atomically; the transaction
	// costs Redis a fraction of the script.
	Watched bool
}

// Commit writes c atomically: output, env changes and bookkeeping land together or not at
// all. A commit with neither Fence nor CheckFields is one MULTI/EXEC; any other is a script
// that checks them first (see fencedScript), or, after a read that WATCHed what it checks, a
// MULTI/EXEC that falls back to the script when a watched key was touched.
func (s *Store) Commit(ctx context.Context, c Commit) error { return s.CommitOn(ctx, s.c, c) }

// CommitOn is Commit sent through cc instead of the Store's client: a connection dedicated to
// the caller (rueidis.Client.Dedicate), whose calls never overlap, so rueidis writes and reads
// them on the calling goroutine. cc must reach the node owning the state's keys.
func (s *Store) CommitOn(ctx context.Context, cc rueidis.CoreClient, c Commit) error {
	if c.Fence == "" && !c.CheckFields {
		_, err := s.commitMulti(ctx, cc, c, false)
		return err
	}
	if c.Watched {
		if applied, err := s.commitMulti(ctx, cc, c, true); applied || err != nil {
			return err
		}
	}
	return s.commitFenced(ctx, cc, c)
}

// commitMulti commits c in one MULTI/EXEC. watched: the connection WATCHes the lease key, and
// c.Token goes to the meta hash as the script would write it; applied is false when EXEC was
// refused because a watched key was touched, and nothing was written.
func (s *Store) commitMulti(ctx context.Context, cc rueidis.CoreClient, c Commit, watched bool) (applied bool, err error) {
	b := cc.B()
	cmds := make(rueidis.Commands, 0, 8)
	cmds = append(cmds, b.Multi().Build())
	if c.Output != nil {
		cmds = append(cmds, b.Set().Key(s.outputKey).Value(rueidis.BinaryString(c.Output)).Build())
	}
	if len(c.Del) > 0 {
		cmds = append(cmds, b.Hdel().Key(s.stateKey).Field(c.Del...).Build())
	}
	if len(c.Set) > 0 {
		h := b.Hset().Key(s.stateKey).FieldValue()
		for k, v := range c.Set {
			h = h.FieldValue(k, rueidis.BinaryString(v))
		}
		cmds = append(cmds, h.Build())
	}
	meta := b.Hset().Key(s.metaKey).FieldValue().
		FieldValue(FieldLastExecution, c.At.UTC().Format(time.RFC3339Nano)).
		FieldValue(FieldHandler, c.Handler)
	if watched && c.Fence != "" {
		meta = meta.FieldValue(FieldFence, strconv.FormatInt(c.Token, 10))
	}
	if c.InputID != "" {
		meta = meta.FieldValue(FieldLastInput, c.InputID)
	}
	cmds = append(cmds, meta.Build())
	if c.ClearAttempt {
		cmds = append(cmds, b.Hdel().Key(s.metaKey).Field(FieldAttemptInput, FieldAttempts).Build())
	}
	cmds = append(cmds, b.Hincrby().Key(s.metaKey).Field(FieldExecutions).Increment(1).Build(),
		b.Exec().Build())
	res := cc.DoMulti(ctx, cmds...)
	if watched && rueidis.IsRedisNil(res[len(res)-1].Error()) {
		return false, nil
	}
	for i, r := range res {
		if err := r.Error(); err != nil {
			return false, fmt.Errorf("commit to %s (command %d of %d): %w", s.outputKey, i+1, len(res), err)
		}
	}
	// Errors of queued commands surface inside EXEC's reply.
	replies, err := res[len(res)-1].ToArray()
	if err != nil {
		return false, fmt.Errorf("commit to %s: EXEC: %w", s.outputKey, err)
	}
	for _, r := range replies {
		if err := r.Error(); err != nil {
			return false, fmt.Errorf("commit to %s: %w", s.outputKey, err)
		}
	}
	return true, nil
}

// LuaChunked is the Lua function chunked(cmd, key, first, last) that a commit script uses to
// call cmd on key with ARGV[first..last] in chunks of 1,000: unpack is bounded by Lua's C
// stack (about 8,000 values), and an env may be larger.
const LuaChunked = `
local function chunked(cmd, key, first, last)
  while first <= last do
    local e = math.min(last, first + 999)
    redis.call(cmd, key, unpack(ARGV, first, e))
    first = e + 1
  end
end
`

// fencedScript checks the lease (when ARGV[1] is not empty) and the state hash's number of
// fields (when ARGV[10] is not empty) and applies a commit, in one atomic step. Redis does not
// roll back a script that fails half-way, just as EXEC does not roll back a queued command that
// fails, so the order of the writes mirrors the MULTI/EXEC commit.
//
// KEYS: lease, output, state, meta.
// ARGV: fence value ("" for none), token, has output ("1"/"0"), output, at, handler, input id
// ("" for none), number of env fields to delete n, clear attempt ("1"/"0"), expected number of
// state fields ("" for no check), the n fields, then field/value pairs to set.
// Returns 1 when applied, 0 when fenced, -1 when the state hash changed.
var fencedScript = newScript(`
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[10] ~= '' and redis.call('HLEN', KEYS[3]) ~= tonumber(ARGV[10]) then return -1 end
if ARGV[3] == '1' then redis.call('SET', KEYS[2], ARGV[4]) end
` + LuaChunked + `local ndel = tonumber(ARGV[8])
chunked('HDEL', KEYS[3], 11, 10 + ndel)
chunked('HSET', KEYS[3], 11 + ndel, #ARGV)
redis.call('HSET', KEYS[4], 'last_execution', ARGV[5], 'handler', ARGV[6])
if ARGV[1] ~= '' then redis.call('HSET', KEYS[4], 'fence', ARGV[2]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[4], 'last_input', ARGV[7]) end
if ARGV[9] == '1' then redis.call('HDEL', KEYS[4], 'attempt_input', 'attempts') end
redis.call('HINCRBY', KEYS[4], 'executions', 1)
return 1
`)

// commitFenced runs fencedScript for c on cc.
func (s *Store) commitFenced(ctx context.Context, cc rueidis.CoreClient, c Commit) error {
	args := make([]string, 0, 10+len(c.Del)+2*len(c.Set))
	hasOutput := "0"
	if c.Output != nil {
		hasOutput = "1"
	}
	clear, fields := "0", ""
	if c.ClearAttempt {
		clear = "1"
	}
	if c.CheckFields {
		fields = strconv.Itoa(c.Fields)
	}
	args = append(args, c.Fence, strconv.FormatInt(c.Token, 10), hasOutput, rueidis.BinaryString(c.Output),
		c.At.UTC().Format(time.RFC3339Nano), c.Handler, c.InputID, strconv.Itoa(len(c.Del)), clear, fields)
	args = append(args, c.Del...)
	for k, v := range c.Set {
		args = append(args, k, rueidis.BinaryString(v))
	}
	n, err := fencedScript.exec(ctx, cc, []string{s.leaseKey, s.outputKey, s.stateKey, s.metaKey}, args).AsInt64()
	if err != nil {
		return fmt.Errorf("commit to %s: %w", s.outputKey, err)
	}
	switch n {
	case 1:
		return nil
	case -1:
		return fmt.Errorf("commit to %s: %s does not hold the %d fields last committed: %w", s.outputKey, s.stateKey, c.Fields, ErrStateChanged)
	}
	return fmt.Errorf("commit to %s: %s no longer holds %s: %w", s.outputKey, s.leaseKey, quote.Value(c.Fence), ErrFenced)
}

// script is a Lua script run with EVALSHA, and EVAL when the server does not know it yet.
// rueidis.Lua does the same, but only on a rueidis.Client, not on a dedicated connection.
type script struct{ src, sha string }

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{src: src, sha: hex.EncodeToString(sum[:])}
}

func (sc script) exec(ctx context.Context, cc rueidis.CoreClient, keys, args []string) rueidis.RedisResult {
	res := cc.Do(ctx, cc.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	if re, ok := rueidis.IsRedisErr(res.Error()); ok && re.IsNoScript() {
		res = cc.Do(ctx, cc.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	}
	return res
}

// Diff returns the env changes that turn prev (the stored JSON fields) into next, which yields
// each key once.
func Diff(prev map[string]string, next iter.Seq2[string, []byte]) (set map[string][]byte, del []string) {
	set = make(map[string][]byte)
	kept := 0
	for k, v := range next {
		old, ok := prev[k]
		if ok {
			kept++
		}
		if !ok || old != string(v) {
			set[k] = v
		}
	}
	if kept == len(prev) {
		return set, nil // the usual case: no key went away
	}
	keys := make(map[string]bool)
	for k := range next {
		keys[k] = true
	}
	for k := range prev {
		if !keys[k] {
			del = append(del, k)
		}
	}
	return set, del
}

// InputID identifies an input value: the hex of the first 16 bytes of its SHA-256.
func InputID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// ErrWrongType is returned by ReadInput for a key that is neither a string nor a hash.
var ErrWrongType = errors.New("input key holds neither a string nor a hash")

// ReadInput returns the value of key: a string's bytes, or a hash as a JSON object of its
// fields (string values, keys sorted, so equal hashes give equal bytes). A missing key gives
// nil, nil. c may be a rueidis.Client or a dedicated connection.
func ReadInput(ctx context.Context, c rueidis.CoreClient, key string) ([]byte, error) {
	return inputValue(ctx, c, key, c.Do(ctx, c.B().Get().Key(key).Build()))
}

// ReadWatched is ReadInput of key for a fenced commit on cc, a connection of the caller's own
// (WATCH belongs to a connection). In the same round trip it WATCHes the lease key and reads
// it: lease is its value ("" when there is none). A commit on cc with Watched set (when lease
// is the commit's Fence) can then be a transaction instead of the script.
func (s *Store) ReadWatched(ctx context.Context, cc rueidis.CoreClient, key string) (raw []byte, lease string, err error) {
	b := cc.B()
	// UNWATCH first: a run that did not commit left its WATCH, perhaps touched since.
	res := cc.DoMulti(ctx, b.Unwatch().Build(), b.Watch().Key(s.leaseKey).Build(),
		b.Get().Key(s.leaseKey).Build(), b.Get().Key(key).Build())
	for _, r := range res[:2] {
		if err := r.Error(); err != nil {
			return nil, "", fmt.Errorf("WATCH %s: %w", s.leaseKey, err)
		}
	}
	lease, err = res[2].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, "", fmt.Errorf("GET %s: %w", s.leaseKey, err)
	}
	raw, err = inputValue(ctx, cc, key, res[3])
	return raw, lease, err
}

// inputValue turns the reply r to GET key into ReadInput's result, reading a hash when key
// holds one.
func inputValue(ctx context.Context, c rueidis.CoreClient, key string, r rueidis.RedisResult) ([]byte, error) {
	b, err := r.AsBytes()
	if err == nil {
		return b, nil
	}
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if re, ok := rueidis.IsRedisErr(err); !ok || !bytes.HasPrefix([]byte(re.Error()), []byte("WRONGTYPE")) {
		return nil, fmt.Errorf("GET %s: %w", key, err)
	}
	m, err := c.Do(ctx, c.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && bytes.HasPrefix([]byte(re.Error()), []byte("WRONGTYPE")) {
			return nil, fmt.Errorf("read %s: %w", key, ErrWrongType)
		}
		return nil, fmt.Errorf("HGETALL %s: %w", key, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode hash %s: %w", key, err)
	}
	return out, nil
}
