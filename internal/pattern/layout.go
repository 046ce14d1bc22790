package pattern

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/redisconn"
	"github.com/eventrt/eventrt/internal/state"
)

// OutputMode says how a pattern function writes each key's output.
type OutputMode string

const (
	OutputSet     OutputMode = "set"     // SET the key's own output key (a template with '*')
	OutputXAdd    OutputMode = "xadd"    // XADD to the output stream, with the input key in the entry
	OutputPublish OutputMode = "publish" // PUBLISH on the output channel, with the input key in the message
)

// ErrFixedOutput is returned by NewLayout for a SET output key without '*': every input key
// would overwrite the one output.
var ErrFixedOutput = errors.New("a fixed output key in SET mode would be overwritten by every input key")

// IsFixedOutput reports whether err is ErrFixedOutput.
func IsFixedOutput(err error) bool { return errors.Is(err, ErrFixedOutput) }

// Layout maps each input key of a pattern function to the keys its runs write: its output
// (the output template with '*' replaced by what the input pattern's '*' matched, or one fixed
// stream or channel), its state hash and the state's bookkeeping hash, all in one hash slot so
// that one commit writes them atomically on a Redis Cluster too. It also names the function's
// own keys: per slot fences and per partition leases.
type Layout struct {
	Pattern  string
	Output   string
	Mode     OutputMode
	Function string
	templ    bool
	cap      capture
}

// NewLayout validates a pattern function's keys.
func NewLayout(pattern, output string, mode OutputMode, function string) (*Layout, error) {
	if mode == "" {
		mode = OutputSet
	}
	l := &Layout{Pattern: pattern, Output: output, Mode: mode, Function: function, templ: strings.Contains(output, "*")}
	switch {
	case pattern == "" || output == "":
		return nil, errors.New("pattern function: empty input pattern or output key")
	case function == "":
		return nil, errors.New("pattern function: empty function name")
	case mode != OutputSet && mode != OutputXAdd && mode != OutputPublish:
		return nil, fmt.Errorf("pattern function: output mode %q is not one of set, xadd, publish", mode)
	}
	if l.templ {
		c, err := starCapture(pattern)
		if err != nil {
			return nil, err
		}
		l.cap = c
	} else if mode == OutputSet {
		return nil, fmt.Errorf("output key %q: %w; put '*' in it (such as %q) or use OUTPUT_MODE=xadd or publish", output, ErrFixedOutput, "out:*")
	}
	// A key written by a run must not be an input itself: each run would trigger another.
	for _, sample := range []string{"x", "", "metrics:web-1"} {
		k := l.keysFor("in", sample)
		for _, w := range []string{k.Output, k.State, k.Meta} {
			if Match(pattern, w) {
				return nil, fmt.Errorf("pattern function: key %q written by a run matches the input pattern %q (each run would trigger another); choose an output key outside the pattern", w, pattern)
			}
		}
	}
	return l, nil
}

// Keys are the keys of one input key.
type Keys struct {
	Input, Output, State, Meta string
	// Slot is the cluster hash slot of State and Meta, and of Output unless it is a channel.
	Slot int
}

// Keys returns the keys of input, a key matching the pattern.
func (l *Layout) Keys(input string) Keys {
	captured := ""
	if l.templ {
		captured = l.cap.of(input)
	}
	return l.keysFor(input, captured)
}

func (l *Layout) keysFor(input, captured string) Keys {
	k := Keys{Input: input, Output: l.Output}
	if l.templ {
		k.Output = strings.ReplaceAll(l.Output, "*", captured)
		k.State = config.DefaultStateKey(k.Output)
	} else {
		// Fan-in: every input key's state sits in the one output's slot.
		k.State = config.DefaultStateKey(l.Output) + ":" + input
	}
	k.Meta = state.MetaKey(k.State)
	k.Slot = redisconn.KeySlot(k.State)
	return k
}

// CheckSlot reports keys whose output and state cannot be committed together on a cluster
// (an output template whose braces make a tag that the state key does not share).
func (l *Layout) CheckSlot(k Keys) error {
	if l.Mode == OutputPublish {
		return nil
	}
	return redisconn.SameSlot(k.Output, k.State)
}

// FenceKey is the function's fence in slot when its keys are divided into partitions: the
// fencing token of the partition tenure allowed to commit keys of that slot (see Partitions).
// The number of partitions is part of the name, since tokens of one division mean nothing
// in another.
func (l *Layout) FenceKey(slot, partitions int) string {
	return "eventrt:" + SlotTag(slot) + ":" + l.Function + ":fence:" + strconv.Itoa(partitions)
}

// LeaseKeys are the lease of partition p of n (placed in its first slot) and its token
// counter.
func (l *Layout) LeaseKeys(p, n int) (lease, tokens string) {
	base := "eventrt:" + SlotTag(FirstSlot(p, n)) + ":" + l.Function + ":partition:" + strconv.Itoa(n) + ":" + strconv.Itoa(p)
	return base + ":lease", base + ":tokens"
}

// DeadKey is the function's dead-letter stream for the values of keys in slot: a value whose
// runs killed the process too often goes there (it shares the meta hash's slot).
func (l *Layout) DeadKey(slot int) string {
	return "eventrt:" + SlotTag(slot) + ":" + l.Function + ":dead"
}

// MembersKey is the registry of the function's live replicas.
func (l *Layout) MembersKey() string { return "eventrt:{" + l.Function + "}:members" }

// PartitionOf returns the partition of slot among n partitions.
func PartitionOf(slot, n int) int { return slot * n / redisconn.ClusterSlots }

// FirstSlot is the first slot of partition p among n.
func FirstSlot(p, n int) int { return (p*redisconn.ClusterSlots + n - 1) / n }

var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, redisconn.ClusterSlots)
	left := len(tags)
	for n := 0; left > 0; n++ {
		t := strconv.Itoa(n)
		if s := redisconn.KeySlot(t); tags[s] == "" {
			tags[s] = "{" + t + "}"
			left--
		}
	}
	return tags
})

// SlotTag returns a short hash tag "{n}" whose slot is slot.
func SlotTag(slot int) string { return slotTags()[slot] }
