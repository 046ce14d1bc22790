package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/state"
)

// Defaults of Options.
const (
	DefaultGroup       = "eventrt"
	DefaultStart       = "0"
	DefaultDataField   = "data"
	DefaultBatch       = 256
	DefaultBlock       = time.Second
	DefaultClaimIdle   = 30 * time.Second
	DefaultMaxAttempts = 5
	// DefaultOutputMaxLen leaves an xadd output uncapped: a cap trims outputs that no
	// consumer may have read yet (the outputs of Benthos and Dapr are uncapped by default too).
	DefaultOutputMaxLen     = 0
	DefaultDeadLetterMaxLen = 100000
	DefaultLagInterval      = 10 * time.Second
	DefaultRedisTimeout     = 5 * time.Second
	DefaultOutputMode       = OutputXAdd
	// DefaultDrainTimeout bounds how long a stopping consumer finishes the entries it holds.
	DefaultDrainTimeout = 5 * time.Second
	// MaxBatch bounds Batch: a batch is held in memory and committed in one script call.
	MaxBatch = config.MaxStreamBatch
)

// NoDataField as Options.DataField turns decoding off: the input is always the fields map.
const NoDataField = "-"

// Uncapped as OutputMaxLen or DeadLetterMaxLen leaves that stream without a MAXLEN.
const Uncapped = -1

// OutputMode says where outputs go: see state.OutputMode.
type OutputMode = state.OutputMode

// Output modes.
const (
	OutputXAdd    = state.OutputXAdd
	OutputSet     = state.OutputSet
	OutputPublish = state.OutputPublish
)

// Options configure a Consumer. Zero values take the defaults above.
type Options struct {
	Name   string // module.function, used in logs and metric labels
	Client rueidis.Client
	// Stream is the input stream; Group the consumer group (DefaultGroup); Consumer this
	// process' name in it (the host name, which is the pod name on Kubernetes).
	Stream, Group, Consumer string
	// Start is where a group created by eventrt starts: "0" (oldest entry, the default: nothing
	// written before the first deployment is skipped) or "$" (only new entries).
	Start string
	// DataField names the field whose JSON becomes the input (DefaultDataField); NoDataField
	// makes the input always the map of the entry's fields.
	DataField string
	// Batch is the most entries read, executed and committed together (DefaultBatch).
	Batch int
	// Block is how long one XREADGROUP waits for new entries (DefaultBlock); it also bounds
	// how late a reclaim or lag tick is handled while the stream is idle.
	Block time.Duration
	// ClaimIdle is how long an entry stays pending (a failed entry, or one held by a consumer
	// that died) before XAUTOCLAIM takes it over (DefaultClaimIdle). ClaimInterval is how
	// often that check runs on the Clock (ClaimIdle/2 by default).
	ClaimIdle, ClaimInterval time.Duration
	// MaxAttempts is the delivery count at which a failing entry goes to the dead-letter
	// stream (DefaultMaxAttempts).
	MaxAttempts int
	// DeadLetter is the dead-letter stream (DefaultDeadLetterKey(Stream)); DeadLetterMaxLen
	// caps it approximately (DefaultDeadLetterMaxLen, Uncapped for none).
	DeadLetter       string
	DeadLetterMaxLen int64
	// Output is a key (xadd, set) or a channel (publish); OutputMode defaults to xadd;
	// OutputMaxLen caps an xadd output approximately; 0 or Uncapped leaves it uncapped
	// (DefaultOutputMaxLen).
	Output       string
	OutputMode   OutputMode
	OutputMaxLen int64
	// StateKey holds env (config.DefaultStateKey(Output) by default).
	StateKey string
	// Workers is how many entries of a batch a handler that does not use state runs at once.
	// 0, the default, is one fewer than GOMAXPROCS (at least 1), read at every batch: the
	// consumer's reads and commits, and a Redis on the same machine, need a core of their
	// own, or the workers starve them and wait for them (on 2 cores shared with Redis, 1
	// worker moved 87-96k entries/s and 2 workers 79-81k). Stateful handlers always run one
	// entry at a time.
	Workers int
	// Host and Port are what context.host and context.port report.
	Host string
	Port int
	// RedisTimeout bounds each Redis call other than the blocking read (DefaultRedisTimeout).
	RedisTimeout time.Duration
	// MembersKey is the registry of the group's live consumers (lease.Members); HeartbeatTTL is how soon a consumer that stopped
	// heartbeating counts as dead and its pending entries are taken over
	// (lease.DefaultMembersTTL).
	// DefaultMembersKey(Stream, Group) by default.
	MembersKey   string
	HeartbeatTTL time.Duration
	// DrainTimeout bounds how long Run, once its context ends, goes on finishing the entries
	// delivered to this consumer (read ahead, or delivered by a read cut short) before it
	// leaves the registry (DefaultDrainTimeout); what is left is taken over by a live
	// consumer at once.
	DrainTimeout time.Duration
	// LagInterval is how often the group's lag and pending count are exported.
	LagInterval time.Duration
	Metrics     *metrics.Function
	Logger      *slog.Logger
	Clock       clock.Clock
	// BeforeCommit, a test hook, is called with the ids a batch is about to acknowledge; an
	// error aborts the batch without committing and Run returns it, as a crash would.
	BeforeCommit func(ids []string) error
	// Observe, when set, is told about each batch once it is settled; it runs on the Run
	// goroutine. Tests use it to await progress.
	Observe func(Report)
}

// Report describes one settled batch.
type Report struct {
	Source       Source
	Entries      int // entries in the batch as read
	Acked        int // entries this batch acknowledged with their outputs
	Failed       int // entries left pending for a retry
	DeadLettered int
	Conflicts    int   // versioned commits lost to another replica before this one settled
	Err          error // a Redis error: the batch's entries stay pending
}

// Source says how a batch's entries were delivered.
type Source string

const (
	SourceNew     Source = "new"     // XREADGROUP >
	SourcePending Source = "pending" // this consumer's own pending entries (start, recovery)
	SourceClaimed Source = "claimed" // XAUTOCLAIM
)

// DefaultDeadLetterKey derives the dead-letter stream from the input stream so that both
// share a hash slot: "in" gives "{in}:dead"; a name with braces of its own keeps them.
func DefaultDeadLetterKey(stream string) string {
	if strings.ContainsAny(stream, "{}") {
		return stream + ":dead"
	}
	return "{" + stream + "}:dead"
}

// DefaultMembersKey derives the registry of a group's consumers from the input stream and
// the group (same hash slot as the stream): "in", "eventrt" give "{in}:consumers:eventrt".
func DefaultMembersKey(stream, group string) string {
	if strings.ContainsAny(stream, "{}") {
		return stream + ":consumers:" + group
	}
	return "{" + stream + "}:consumers:" + group
}

// ErrInvalid marks an invalid Options value.
var ErrInvalid = errors.New("invalid stream options")

// IsInvalid reports whether err is an Options validation failure.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

func invalid(name, format string, args ...any) error {
	return fmt.Errorf("stream consumer %s: %w: %s", name, ErrInvalid, fmt.Sprintf(format, args...))
}

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		return o, fmt.Errorf("stream consumer: %w: empty function name", ErrInvalid)
	}
	if o.Client == nil {
		return o, invalid(o.Name, "nil Redis client")
	}
	if o.Stream == "" || o.Output == "" {
		return o, invalid(o.Name, "empty stream or output")
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Consumer == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return o, invalid(o.Name, "no consumer name and no host name (%v)", err)
		}
		o.Consumer = h
	}
	if o.Start == "" {
		o.Start = DefaultStart
	}
	if o.DataField == "" {
		o.DataField = DefaultDataField
	}
	switch {
	case o.Batch == 0:
		o.Batch = DefaultBatch
	case o.Batch < 0 || o.Batch > MaxBatch:
		return o, invalid(o.Name, "batch %d outside 1..%d", o.Batch, MaxBatch)
	}
	if o.Block <= 0 {
		o.Block = DefaultBlock
	}
	if o.Block < time.Millisecond {
		return o, invalid(o.Name, "block %v below 1ms", o.Block)
	}
	if o.ClaimIdle == 0 {
		o.ClaimIdle = DefaultClaimIdle
	}
	if o.ClaimIdle < time.Millisecond {
		return o, invalid(o.Name, "claim idle %v below 1ms", o.ClaimIdle)
	}
	if o.ClaimInterval <= 0 {
		o.ClaimInterval = max(o.ClaimIdle/2, time.Millisecond)
	}
	switch {
	case o.MaxAttempts == 0:
		o.MaxAttempts = DefaultMaxAttempts
	case o.MaxAttempts < 0:
		return o, invalid(o.Name, "max attempts %d below 1", o.MaxAttempts)
	}
	if o.DeadLetter == "" {
		o.DeadLetter = DefaultDeadLetterKey(o.Stream)
	}
	if o.OutputMode == "" {
		o.OutputMode = DefaultOutputMode
	}
	if !o.OutputMode.Valid() {
		return o, invalid(o.Name, "output mode %q: want xadd, set or publish", o.OutputMode)
	}
	var err error
	if o.OutputMaxLen, err = maxLen(o.Name, "output", o.OutputMaxLen, DefaultOutputMaxLen); err != nil {
		return o, err
	}
	if o.DeadLetterMaxLen, err = maxLen(o.Name, "dead-letter", o.DeadLetterMaxLen, DefaultDeadLetterMaxLen); err != nil {
		return o, err
	}
	if o.StateKey == "" {
		o.StateKey = config.DefaultStateKey(o.Output)
	}
	keys := map[string]string{"stream": o.Stream, "dead-letter stream": o.DeadLetter, "state key": o.StateKey, "state meta key": state.MetaKey(o.StateKey)}
	if o.OutputMode != OutputPublish {
		keys["output"] = o.Output
	}
	for a, ka := range keys {
		for b, kb := range keys {
			if a < b && ka == kb {
				return o, invalid(o.Name, "%s and %s are both %q", a, b, ka)
			}
		}
	}
	if o.Workers < 0 {
		return o, invalid(o.Name, "Workers %d is negative", o.Workers)
	}
	if o.RedisTimeout <= 0 {
		o.RedisTimeout = DefaultRedisTimeout
	}
	if o.LagInterval <= 0 {
		o.LagInterval = DefaultLagInterval
	}
	if o.MembersKey == "" {
		o.MembersKey = DefaultMembersKey(o.Stream, o.Group)
	}
	if o.HeartbeatTTL <= 0 {
		o.HeartbeatTTL = lease.DefaultMembersTTL
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New().Function(o.Name)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	return o, nil
}

// maxLen maps 0 to the default and Uncapped to 0 (what state expects for "no cap").
func maxLen(name, what string, v, def int64) (int64, error) {
	switch {
	case v == 0:
		return def, nil
	case v == Uncapped:
		return 0, nil
	case v < 0:
		return 0, invalid(name, "%s MAXLEN %d: want a positive cap or Uncapped", what, v)
	}
	return v, nil
}
