package exprengine

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for [Limits]; [DefaultLimits] returns them together.
const (
	DefaultMaxSourceBytes = 64 << 10
	DefaultMaxNodes       = 10000
	DefaultMemoryBudget   = 1_000_000
	DefaultMaxStringBytes = 1 << 20
	DefaultMaxOutputBytes = 4 << 20
	DefaultTimeout        = time.Second
	// DefaultMaxRunBytes is HANDLER_MEMORY's default: 32 MiB. The shipped Deployment limits
	// the pod to 128 MiB; the daemon idles at about 20 MB, and the garbage collector lets the
	// heap reach about twice what is live, so one run at its budget peaks near 20 + 2 × 32
	// MB, with room left for the runtime, Redis buffers and a second function's run.
	DefaultMaxRunBytes = 32 << 20
	// MinMaxRunBytes is the smallest byte budget accepted: every run needs some (its
	// output's strings, an env merge), and a budget below the string limit's default would
	// only move the failures there.
	MinMaxRunBytes = 1 << 20
	// DefaultMaxRegexBytes bounds a pattern's source (see regex.go).
	DefaultMaxRegexBytes = 16 << 10
	// MaxNesting bounds how deeply brackets may nest in a program's source. expr's parser is
	// recursive and a deep enough nest overflows the goroutine stack, which is fatal, so the
	// source is scanned before it reaches the parser.
	MaxNesting = 256
)

// ErrInvalidLimits is wrapped by the errors [Limits.Validate] returns.
var ErrInvalidLimits = errors.New("invalid limits")

// IsInvalidLimits reports whether err comes from an invalid [Limits].
func IsInvalidLimits(err error) bool { return errors.Is(err, ErrInvalidLimits) }

// Limits bound the resources one program may use. Every field must be positive.
type Limits struct {
	// MaxSourceBytes caps the program source; it is checked before parsing.
	MaxSourceBytes int
	// MaxNodes caps the number of syntax tree nodes (expr.MaxNodes). It also bounds how deep
	// the tree is (a chain of binary operators nests), which expr's checker and compiler
	// walk recursively: keep it in the tens of thousands.
	MaxNodes uint
	// MemoryBudget is expr's vm.VM MemoryBudget: roughly the number of collection elements a
	// run may allocate (ranges, arrays, maps, concat, sort...). Operations that walk nested
	// values (deep equality, flatten, min/max/mean/median) are bounded by it too.
	MemoryBudget uint
	// MaxStringBytes caps the length of any string a run builds.
	MaxStringBytes int
	// MaxOutputBytes caps the encoded output, and separately the encoded env.
	MaxOutputBytes int
	// Timeout is the deadline of one run when the call does not carry one (HANDLER_TIMEOUT).
	Timeout time.Duration
	// MaxRunBytes is the byte budget of one run (HANDLER_MEMORY): what the strings and
	// collections it creates may add up to (see budget.go). At least MinMaxRunBytes.
	MaxRunBytes int
	// MaxRegexBytes caps the source of a pattern given to matches (see regex.go).
	MaxRegexBytes int
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxSourceBytes: DefaultMaxSourceBytes,
		MaxNodes:       DefaultMaxNodes,
		MemoryBudget:   DefaultMemoryBudget,
		MaxStringBytes: DefaultMaxStringBytes,
		MaxOutputBytes: DefaultMaxOutputBytes,
		Timeout:        DefaultTimeout,
		MaxRunBytes:    DefaultMaxRunBytes,
		MaxRegexBytes:  DefaultMaxRegexBytes,
	}
}

// Validate reports the first field that is not usable, wrapping [ErrInvalidLimits].
func (l Limits) Validate() error {
	switch {
	case l.MaxSourceBytes <= 0:
		return fmt.Errorf("%w: MaxSourceBytes must be positive, got %d", ErrInvalidLimits, l.MaxSourceBytes)
	case l.MaxNodes == 0:
		return fmt.Errorf("%w: MaxNodes must be positive, got 0", ErrInvalidLimits)
	case l.MemoryBudget == 0:
		return fmt.Errorf("%w: MemoryBudget must be positive, got 0", ErrInvalidLimits)
	case l.MaxStringBytes <= 0:
		return fmt.Errorf("%w: MaxStringBytes must be positive, got %d", ErrInvalidLimits, l.MaxStringBytes)
	case l.MaxOutputBytes <= 0:
		return fmt.Errorf("%w: MaxOutputBytes must be positive, got %d", ErrInvalidLimits, l.MaxOutputBytes)
	case l.Timeout <= 0:
		return fmt.Errorf("%w: Timeout must be positive, got %s", ErrInvalidLimits, l.Timeout)
	case l.MaxRunBytes < MinMaxRunBytes:
		return fmt.Errorf("%w: MaxRunBytes must be at least %d, got %d", ErrInvalidLimits, MinMaxRunBytes, l.MaxRunBytes)
	case l.MaxRegexBytes <= 0:
		return fmt.Errorf("%w: MaxRegexBytes must be positive, got %d", ErrInvalidLimits, l.MaxRegexBytes)
	}
	return nil
}
