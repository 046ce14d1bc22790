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
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// DeadFieldFields replaces the fields of an entry that has more than DeadFoldFields of
	// them: it holds them all, in order, as a JSON array of strings [field, value, ...].
	DeadFieldFields = "eventrt:fields"
)

// DeadFoldFields is the most field/value pairs a dead letter carries as fields of its own.
// XADD cannot be split and the commit script passes a dead letter's fields to it through
// Lua's unpack, which fails beyond about 8000 values; folding the rare larger entry into
// DeadFieldFields keeps every dead letter one entry, replayable, and the script bounded.
const DeadFoldFields = 256

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

// ErrRefused is returned by StreamStore.Commit when the commit could not be applied whole
// (a key it writes holds another type, a counter it increments is not an integer): it wrote
// nothing, and retrying cannot succeed until the key is fixed.
var ErrRefused = errors.New("commit refused, nothing written")

// IsRefused reports whether err is a commit that was refused and wrote nothing.
func IsRefused(err error) bool { return errors.Is(err, ErrRefused) }

// RefusedError is a refused commit and the key that made it fail; it unwraps to ErrRefused
// and to the Redis error reply, whose text names the key and what is wrong with it.
type RefusedError struct {
	Key string
	Err error
}

func (e *RefusedError) Error() string   { return e.Err.Error() }
func (e *RefusedError) Unwrap() []error { return []error{ErrRefused, e.Err} }

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
	// CheckVersion makes the commit conditional on K:meta version still being Version and
	// the state hash still holding Fields fields (the number the batch ran on: a deleted hash
	// is a reset, and the batch runs again on it); either failing is ErrVersionConflict.
	CheckVersion bool
	Version      int64
	Fields       int
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
// maxlen, at, handler, executions, last entry, expected number of state fields ("" = no
// check), then counted lists: entries (id, output),
// env set (field, json), env del (field), dead (id, error, attempts, n, n field strings).
//
// Redis does not roll a script back: a command that fails halfway leaves the writes before
// it in place, here acknowledgements whose outputs and dead letters would be lost. So every
// way a write can fail is checked before the first one: each key written must be missing or
// of the type its commands need (a key-mode output left on the same key is a string), the
// counters HINCRBY increments must be integers, and no dead entry has more field strings
// than unpack can take (Lua's C stack holds about 8000 values; Commit folds larger ones).
// A refusal is an error reply and nothing is written.
var commitScript = rueidis.NewLuaScript("local maxdead = " + strconv.Itoa(2*DeadFoldFields) + "\n" + `
local stream, statek, meta, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, expect, mode = ARGV[1], ARGV[2], ARGV[3]
local target = KEYS[5] or ARGV[4]
local maxlen, deadmax = ARGV[5], ARGV[6]
local checks = {{'stream', stream, 'stream'}, {'state', statek, 'hash'}, {'meta', meta, 'hash'}, {'dead-letter', dead, 'stream'}}
if mode == 'xadd' then
  checks[#checks + 1] = {'output', target, 'stream'}
elseif mode == 'set' then
  checks[#checks + 1] = {'output', target, 'string'}
end
for _, c in ipairs(checks) do
  local t = redis.call('TYPE', c[2])['ok']
  if t ~= 'none' and t ~= c[3] then
    return redis.error_reply('WRONGTYPE eventrt: ' .. c[1] .. " key '" .. c[2] .. "' holds a " .. t .. ', not a ' .. c[3])
  end
end
local counters = redis.call('HMGET', meta, 'version', 'executions')
for i, name in ipairs({'version', 'executions'}) do
  local v = counters[i]
  if v and v ~= '0' and (#v > 18 or not string.match(v, '^-?[1-9]%d*$')) then
    return redis.error_reply("ERR eventrt: meta key '" .. meta .. "' field " .. name .. ' is not an integer')
  end
end
local v = counters[1] or '0'
if expect ~= '' and v ~= expect then return {0, tonumber(v), 0, 0} end
-- A state hash whose number of fields is not the one the batch ran on was deleted (a reset)
-- or edited: lose the race as for another version, so that the batch runs again on it.
if ARGV[11] ~= '' and redis.call('HLEN', statek) ~= tonumber(ARGV[11]) then return {0, tonumber(v), 0, 0} end
local p = 12
local ne = tonumber(ARGV[p]); local pe = p + 1; p = pe + 2 * ne
local ns = tonumber(ARGV[p]); local ps = p + 1; p = ps + 2 * ns
local nd = tonumber(ARGV[p]); local pd = p + 1; p = pd + nd
local nx = tonumber(ARGV[p]); local px = p + 1
p = px
for k = 1, nx do
  local nf = tonumber(ARGV[p + 3])
  if nf > maxdead then
    return redis.error_reply('ERR eventrt: dead-letter entry ' .. ARGV[p] .. ' has ' .. nf .. ' field strings, more than ' .. maxdead)
  end
  p = p + 4 + nf
end
-- Writes from here on cannot fail.
local function xadd(key, cap, f)
  if cap ~= '0' then
    redis.call('XADD', key, 'MAXLEN', '~', cap, '*', unpack(f))
  else
    redis.call('XADD', key, '*', unpack(f))
  end
end
p = pe
local acked, last, added = 0, false, false
for k = 1, ne do
  local id, out = ARGV[p], ARGV[p + 1]; p = p + 2
  if redis.call('XACK', stream, group, id) == 1 then
    acked = acked + 1
    if out ~= '' then
      -- Spelled out rather than through xadd: no table and no unpack for every entry, and
      -- trimmed once after the loop (the script is atomic: nobody sees the stream between).
      if mode == 'xadd' then
        redis.call('XADD', target, '*', 'data', out, 'source', id)
        added = true
      elseif mode == 'publish' then
        redis.call('PUBLISH', target, out)
      else
        last = out
      end
    end
  end
end
if added and maxlen ~= '0' then redis.call('XTRIM', target, 'MAXLEN', '~', maxlen) end
if last then redis.call('SET', target, last) end
p = ps
for k = 1, ns do
  redis.call('HSET', statek, ARGV[p], ARGV[p + 1]); p = p + 2
end
for k = pd, pd + nd - 1 do
  redis.call('HDEL', statek, ARGV[k])
end
p = px
local dl = 0
for k = 1, nx do
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
// ErrVersionConflict and writes nothing; a key that would make a write fail (see
// commitScript) gives a RefusedError naming it and writes nothing. A dead entry with more
// than DeadFoldFields pairs is written with its fields folded into DeadFieldFields.
func (s *StreamStore) Commit(ctx context.Context, c StreamCommit) (StreamCommitted, error) {
	n := 13 + 2*len(c.Entries) + 2*len(c.Set) + len(c.Del)
	for _, d := range c.Dead {
		n += 4 + len(d.Fields)
	}
	args := make([]string, 0, n)
	expect, fields := "", ""
	if c.CheckVersion {
		expect = strconv.FormatInt(c.Version, 10)
		fields = strconv.Itoa(c.Fields)
	}
	channel := ""
	if s.o.OutputMode == OutputPublish {
		channel = s.o.Output
	}
	args = append(args, s.o.Group, expect, string(s.o.OutputMode), channel,
		strconv.FormatInt(s.o.OutputMaxLen, 10), strconv.FormatInt(s.o.DeadLetterMaxLen, 10),
		c.At.UTC().Format(time.RFC3339Nano), c.Handler, strconv.Itoa(c.Executions), c.LastEntry, fields,
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
		fields := d.Fields
		if len(fields) > 2*DeadFoldFields {
			folded, err := foldFields(fields)
			if err != nil {
				return StreamCommitted{}, fmt.Errorf("commit to %s: dead entry %s: %w", s.o.Stream, d.ID, err)
			}
			fields = []string{DeadFieldFields, folded}
		}
		args = append(args, d.ID, d.Error, strconv.FormatInt(d.Attempts, 10), strconv.Itoa(len(fields)))
		args = append(args, fields...)
	}
	res, err := commitScript.Exec(ctx, s.o.Client, s.keys, args).AsIntSlice()
	if err != nil {
		if key := s.refusedKey(err); key != "" {
			err = &RefusedError{Key: key, Err: err}
		}
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

// refusedKey returns the key named by an error reply of commitScript's checks ("WRONGTYPE
// eventrt: output key ...", "ERR eventrt: meta key ..."), or "" for any other error.
func (s *StreamStore) refusedKey(err error) string {
	var re *rueidis.RedisError
	if !errors.As(err, &re) || re.IsNil() {
		return ""
	}
	// rueidis drops the ERR prefix of an error reply.
	msg := strings.TrimPrefix(strings.TrimPrefix(re.Error(), "ERR "), "WRONGTYPE ")
	rest, ok := strings.CutPrefix(msg, "eventrt: ")
	if !ok {
		return ""
	}
	role, _, _ := strings.Cut(rest, " ")
	switch role {
	case "stream":
		return s.o.Stream
	case "state":
		return s.o.StateKey
	case "meta":
		return s.metaKey
	case "dead-letter":
		return s.o.DeadLetter
	case "output":
		return s.o.Output
	}
	return ""
}

// foldFields encodes an entry's flat field/value strings as one JSON array, in order (an
// object would lose repeated fields). JSON holds text: bytes that are not UTF-8 become U+FFFD.
func foldFields(fields []string) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return "", fmt.Errorf("fold %d field strings into %s: %w", len(fields), DeadFieldFields, err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
