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
//
// Both keys share K's hash tag, so on a Redis Cluster they live in one slot with the output key
// when K is derived from it.
package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Meta fields.
const (
	FieldLastInput     = "last_input"
	FieldLastExecution = "last_execution"
	FieldExecutions    = "executions"
	FieldHandler       = "handler"
)

// MetaKey is the bookkeeping hash of a state key.
func MetaKey(stateKey string) string { return stateKey + ":meta" }

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
	return &Store{c: o.Client, stateKey: o.StateKey, metaKey: MetaKey(o.StateKey), outputKey: o.OutputKey}, nil
}

// CorruptError reports a state hash that eventrt cannot read back; it is never overwritten.
type CorruptError struct {
	Key, Field string
	Err        error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state %s field %q: %v (fix or HDEL it; eventrt will not overwrite it)", e.Key, e.Field, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// IsCorrupt reports whether err is a state that cannot be read back.
func IsCorrupt(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce)
}

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
	for k, v := range fields {
		if !json.Valid([]byte(v)) {
			return Snapshot{}, &CorruptError{Key: s.stateKey, Field: k, Err: errors.New("value is not JSON")}
		}
	}
	snap := Snapshot{Fields: fields, LastInput: meta[FieldLastInput]}
	if v := meta[FieldLastExecution]; v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return Snapshot{}, &CorruptError{Key: s.metaKey, Field: FieldLastExecution, Err: err}
		}
		snap.LastExecution = t
	}
	if v := meta[FieldExecutions]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Snapshot{}, &CorruptError{Key: s.metaKey, Field: FieldExecutions, Err: err}
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
}

// Commit writes c in one MULTI/EXEC: output, env changes and bookkeeping land together or not
// at all.
func (s *Store) Commit(ctx context.Context, c Commit) error {
	b := s.c.B()
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
	if c.InputID != "" {
		meta = meta.FieldValue(FieldLastInput, c.InputID)
	}
	cmds = append(cmds, meta.Build(),
		b.Hincrby().Key(s.metaKey).Field(FieldExecutions).Increment(1).Build(),
		b.Exec().Build())
	res := s.c.DoMulti(ctx, cmds...)
	for i, r := range res {
		if err := r.Error(); err != nil {
			return fmt.Errorf("commit to %s (command %d of %d): %w", s.outputKey, i+1, len(res), err)
		}
	}
	// Errors of queued commands surface inside EXEC's reply.
	replies, err := res[len(res)-1].ToArray()
	if err != nil {
		return fmt.Errorf("commit to %s: EXEC: %w", s.outputKey, err)
	}
	for _, r := range replies {
		if err := r.Error(); err != nil {
			return fmt.Errorf("commit to %s: %w", s.outputKey, err)
		}
	}
	return nil
}

// Diff returns the env changes that turn prev (the stored JSON fields) into next.
func Diff(prev map[string]string, next map[string][]byte) (set map[string][]byte, del []string) {
	set = make(map[string][]byte)
	for k, v := range next {
		if old, ok := prev[k]; !ok || old != string(v) {
			set[k] = v
		}
	}
	for k := range prev {
		if _, ok := next[k]; !ok {
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
// nil, nil.
func ReadInput(ctx context.Context, c rueidis.Client, key string) ([]byte, error) {
	r := c.Do(ctx, c.B().Get().Key(key).Build())
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
