package state

// Stream mode. A stream function's batch commit runs as one Lua script, not MULTI/EXEC,
// because two decisions must be taken inside the atomic step: whether the state version is
// still the one the batch was executed against (replicas of a stateful handler), and which
// entries are still unacknowledged (an entry reclaimed and committed by another replica must
// not be written twice). XACK's reply answers the second question per entry: its output is
// written only when this commit is the one that acknowledged it.
//
// K:meta gains two fields in stream mode:
//
//	version     incremented by every stream commit (including those of stateless handlers and
//	            dead-letter moves), so "version unchanged" means "nobody acknowledged anything"
//	last_entry  id of the last entry acknowledged

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Stream bookkeeping fields of K:meta.
const (
	FieldVersion   = "version"
	FieldLastEntry = "last_entry"
)

// Dead-letter fields added after an entry's own fields.
const (
	DeadFieldSource   = "eventrt:source"
	DeadFieldError    = "eventrt:error"
	DeadFieldAttempts = "eventrt:attempts"
)

// OutputMode says where a stream function's outputs go.
type OutputMode string

const (
	// OutputXAdd appends each output to a stream (fields data and source).
	OutputXAdd OutputMode = "xadd"
	// OutputSet writes the last output of each batch to a string key.
	OutputSet OutputMode = "set"
	// OutputPublish publishes each output on a channel.
	OutputPublish OutputMode = "publish"
)

// Valid reports whether m is a known mode.
func (m OutputMode) Valid() bool {
	return m == OutputXAdd || m == OutputSet || m == OutputPublish
}

// ErrVersionConflict is returned by StreamStore.Commit when the state version changed since
// the batch's snapshot: another replica committed first, nothing was written.
var ErrVersionConflict = errors.New("state version changed since the batch started")

// IsVersionConflict reports whether err is a versioned commit that lost the race.
func IsVersionConflict(err error) bool { return errors.Is(err, ErrVersionConflict) }

// StreamOptions configure a StreamStore.
type StreamOptions struct {
	Client rueidis.Client
	// Stream and Group identify the input and the consumer group whose entries are acked.
	Stream, Group string
	StateKey      string
	// Output is a key (xadd, set) or a channel (publish).
	Output     string
	OutputMode OutputMode
	// OutputMaxLen caps an xadd output stream (approximate MAXLEN); 0 leaves it uncapped.
	OutputMaxLen int64
	DeadLetter   string
	// DeadLetterMaxLen caps the dead-letter stream (approximate MAXLEN); 0 leaves it uncapped.
	DeadLetterMaxLen int64
}

// StreamStore loads and commits one stream function's state.
type StreamStore struct {
	o       StreamOptions
	metaKey string
	keys    []string
}

// NewStreamStore validates o and returns a StreamStore.
func NewStreamStore(o StreamOptions) (*StreamStore, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("state: nil Redis client")
	case o.Stream == "" || o.Group == "":
		return nil, errors.New("state: empty stream or group")
	case o.StateKey == "":
		return nil, fmt.Errorf("state: empty state key for stream %s", o.Stream)
	case o.Output == "":
		return nil, fmt.Errorf("state: empty output for stream %s", o.Stream)
	case o.DeadLetter == "":
		return nil, fmt.Errorf("state: empty dead-letter key for stream %s", o.Stream)
	case !o.OutputMode.Valid():
		return nil, fmt.Errorf("state: output mode %q for stream %s: want xadd, set or publish", o.OutputMode, o.Stream)
	case o.OutputMaxLen < 0 || o.DeadLetterMaxLen < 0:
		return nil, fmt.Errorf("state: negative MAXLEN for stream %s", o.Stream)
	}
	s := &StreamStore{o: o, metaKey: MetaKey(o.StateKey)}
	s.keys = []string{o.Stream, o.StateKey, s.metaKey, o.DeadLetter}
	if o.OutputMode != OutputPublish {
		s.keys = append(s.keys, o.Output)
	}
	return s, nil
}

// Keys returns the keys a commit touches, which on a Redis Cluster must share one hash slot
// (a publish channel is not a key and is not listed).
func (s *StreamStore) Keys() []string { return append([]string(nil), s.keys...) }

// StreamSnapshot is a stream function's state as loaded from Redis.
type StreamSnapshot struct {
	Snapshot
	// Version is K:meta version (0 before the first commit).
	Version   int64
	LastEntry string
}

// loadScript reads the state and, for a batch that lost a version race, which of its entries
// are still pending for this consumer, in one atomic step: an entry acknowledged after the
// snapshot would change the version again and be caught by the next commit.
var loadScript = rueidis.NewLuaScript(`
local env = redis.call('HGETALL', KEYS[1])
local meta = redis.call('HGETALL', KEYS[2])
local pend = {}
for i = 3, #ARGV do
  local r = redis.call('XPENDING', KEYS[3], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  pend[#pend + 1] = #r
end
return {env, meta, pend}
`)

// Load reads the env hash and its bookkeeping. For each id in ids it also reports whether
// the entry is still pending for consumer (not acknowledged, not claimed by another).
func (s *StreamStore) Load(ctx context.Context, consumer string, ids []string) (StreamSnapshot, []bool, error) {
	args := make([]string, 0, 2+len(ids))
	args = append(args, s.o.Group, consumer)
	args = append(args, ids...)
	res, err := loadScript.Exec(ctx, s.o.Client, []string{s.o.StateKey, s.metaKey, s.o.Stream}, args).ToArray()
	if err != nil {
		return StreamSnapshot{}, nil, fmt.Errorf("load state %s: %w", s.o.StateKey, err)
	}
	if len(res) != 3 {
		return StreamSnapshot{}, nil, fmt.Errorf("load state %s: unexpected reply of %d elements", s.o.StateKey, len(res))
	}
	fields, err := res[0].AsStrMap()
	if err != nil {
		return StreamSnapshot{}, nil, fmt.Errorf("load state %s: %w", s.o.StateKey, err)
	}
	meta, err := res[1].AsStrMap()
	if err != nil {
		return StreamSnapshot{}, nil, fmt.Errorf("load state %s: %w", s.metaKey, err)
	}
	flags, err := res[2].AsIntSlice()
	if err != nil || len(flags) != len(ids) {
		return StreamSnapshot{}, nil, fmt.Errorf("load state %s: pending flags: %d for %d ids (%v)", s.o.StateKey, len(flags), len(ids), err)
	}
	snap, err := decodeSnapshot(s.o.StateKey, s.metaKey, fields, meta)
	if err != nil {
		return StreamSnapshot{}, nil, err
	}
	out := StreamSnapshot{Snapshot: snap, LastEntry: meta[FieldLastEntry]}
	if v := meta[FieldVersion]; v != "" {
		if out.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return StreamSnapshot{}, nil, &CorruptError{Key: s.metaKey, Field: FieldVersion, Err: err}
		}
	}
	pending := make([]bool, len(flags))
	for i, f := range flags {
		pending[i] = f > 0
	}
	return out, pending, nil
}

// StreamEntry is an entry to acknowledge, with its output (nil: nothing is written).
type StreamEntry struct {
	ID     string
	Output []byte
}

// DeadEntry is an entry to move to the dead-letter stream and acknowledge.
type DeadEntry struct {
	ID string
	// Fields are the entry's own field/value pairs, flat; nil for an entry deleted from the
	// input stream.
	Fields   []string
	Error    string
	Attempts int64
}

// StreamCommit is what one batch writes.
type StreamCommit struct {
	// CheckVersion makes the commit conditional on K:meta version still being Version.
	CheckVersion bool
	Version      int64
	// Entries are acknowledged in order; the output of each one this commit acknowledges is
	// written (xadd, publish) or, for set, the last such output is.
	Entries []StreamEntry
	Dead    []DeadEntry
	// Set and Del are the env changes of the batch.
	Set map[string][]byte
	Del []string
	// Executions is the number of successful executions the batch holds; when positive,
	// last_execution becomes At.
	Executions int
	LastEntry  string
	At         time.Time
	Handler    string
}

// StreamCommitted is the outcome of a commit.
type StreamCommitted struct {
	// Version is the state version after the commit.
	Version int64
	// Acked counts entries of Entries this commit acknowledged; the others had been
	// acknowledged already (by a replica that reclaimed them) and wrote nothing.
	Acked int
	// DeadLettered counts entries of Dead this commit moved.
	DeadLettered int
}

// commitScript applies a batch. KEYS: stream, state, meta, dead letter [, output key].
// ARGV: group, expected version ("" = unconditional), mode, channel, output maxlen, dead
// maxlen, at, handler, executions, last entry, then counted lists: entries (id, output),
// env set (field, json), env del (field), dead (id, error, attempts, n, n field strings).
var commitScript = rueidis.NewLuaScript(`
local stream, statek, meta, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, expect, mode = ARGV[1], ARGV[2], ARGV[3]
local target = KEYS[5] or ARGV[4]
local maxlen, deadmax = ARGV[5], ARGV[6]
local function xadd(key, cap, f)
  if cap ~= '0' then
    redis.call('XADD', key, 'MAXLEN', '~', cap, '*', unpack(f))
  else
    redis.call('XADD', key, '*', unpack(f))
  end
end
if expect ~= '' then
  local v = redis.call('HGET', meta, 'version')
  if not v then v = '0' end
  if v ~= expect then return {0, tonumber(v), 0, 0} end
end
local p = 11
local n = tonumber(ARGV[p]); p = p + 1
local acked, last = 0, false
for k = 1, n do
  local id, out = ARGV[p], ARGV[p + 1]; p = p + 2
  if redis.call('XACK', stream, group, id) == 1 then
    acked = acked + 1
    if out ~= '' then
      if mode == 'xadd' then
        xadd(target, maxlen, {'data', out, 'source', id})
      elseif mode == 'publish' then
        redis.call('PUBLISH', target, out)
      else
        last = out
      end
    end
  end
end
if last then redis.call('SET', target, last) end
n = tonumber(ARGV[p]); p = p + 1
for k = 1, n do
  redis.call('HSET', statek, ARGV[p], ARGV[p + 1]); p = p + 2
end
n = tonumber(ARGV[p]); p = p + 1
for k = 1, n do
  redis.call('HDEL', statek, ARGV[p]); p = p + 1
end
n = tonumber(ARGV[p]); p = p + 1
local dl = 0
for k = 1, n do
  local id, err, att, nf = ARGV[p], ARGV[p + 1], ARGV[p + 2], tonumber(ARGV[p + 3]); p = p + 4
  local f = {}
  for j = 1, nf do f[j] = ARGV[p]; p = p + 1 end
  if redis.call('XACK', stream, group, id) == 1 then
    f[#f + 1] = 'eventrt:source'; f[#f + 1] = id
    f[#f + 1] = 'eventrt:error'; f[#f + 1] = err
    f[#f + 1] = 'eventrt:attempts'; f[#f + 1] = att
    xadd(dead, deadmax, f)
    dl = dl + 1
  end
end
local ver = redis.call('HINCRBY', meta, 'version', 1)
if ARGV[10] ~= '' then redis.call('HSET', meta, 'last_entry', ARGV[10]) end
local execs = tonumber(ARGV[9])
if execs > 0 then
  redis.call('HSET', meta, 'last_execution', ARGV[7], 'handler', ARGV[8])
  redis.call('HINCRBY', meta, 'executions', execs)
end
return {1, ver, acked, dl}
`)

// Commit applies c atomically: acknowledgements, outputs, env changes, dead letters and
// bookkeeping land together or not at all. With CheckVersion, a version that moved on gives
// ErrVersionConflict and writes nothing.
func (s *StreamStore) Commit(ctx context.Context, c StreamCommit) (StreamCommitted, error) {
	n := 12 + 2*len(c.Entries) + 2*len(c.Set) + len(c.Del)
	for _, d := range c.Dead {
		n += 4 + len(d.Fields)
	}
	args := make([]string, 0, n)
	expect := ""
	if c.CheckVersion {
		expect = strconv.FormatInt(c.Version, 10)
	}
	channel := ""
	if s.o.OutputMode == OutputPublish {
		channel = s.o.Output
	}
	args = append(args, s.o.Group, expect, string(s.o.OutputMode), channel,
		strconv.FormatInt(s.o.OutputMaxLen, 10), strconv.FormatInt(s.o.DeadLetterMaxLen, 10),
		c.At.UTC().Format(time.RFC3339Nano), c.Handler, strconv.Itoa(c.Executions), c.LastEntry,
		strconv.Itoa(len(c.Entries)))
	for _, e := range c.Entries {
		args = append(args, e.ID, rueidis.BinaryString(e.Output))
	}
	args = append(args, strconv.Itoa(len(c.Set)))
	for k, v := range c.Set {
		args = append(args, k, rueidis.BinaryString(v))
	}
	args = append(args, strconv.Itoa(len(c.Del)))
	args = append(args, c.Del...)
	args = append(args, strconv.Itoa(len(c.Dead)))
	for _, d := range c.Dead {
		if len(d.Fields)%2 != 0 {
			return StreamCommitted{}, fmt.Errorf("commit to %s: dead entry %s has an odd number of field strings", s.o.Stream, d.ID)
		}
		args = append(args, d.ID, d.Error, strconv.FormatInt(d.Attempts, 10), strconv.Itoa(len(d.Fields)))
		args = append(args, d.Fields...)
	}
	res, err := commitScript.Exec(ctx, s.o.Client, s.keys, args).AsIntSlice()
	if err != nil {
		return StreamCommitted{}, fmt.Errorf("commit stream %s to %s: %w", s.o.Stream, s.o.Output, err)
	}
	if len(res) != 4 {
		return StreamCommitted{}, fmt.Errorf("commit stream %s to %s: unexpected reply of %d elements", s.o.Stream, s.o.Output, len(res))
	}
	out := StreamCommitted{Version: res[1], Acked: int(res[2]), DeadLettered: int(res[3])}
	if res[0] == 0 {
		return out, fmt.Errorf("commit stream %s: %w (expected version %d, found %d)", s.o.Stream, ErrVersionConflict, c.Version, res[1])
	}
	return out, nil
}
