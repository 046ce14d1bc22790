package stream

import (
	"fmt"

	"github.com/eventrt/eventrt/internal/redisconn"
)

// ErrCrossSlot reports keys that must be committed together but live in different Redis
// Cluster hash slots.
var ErrCrossSlot = redisconn.ErrCrossSlot

// IsCrossSlot reports whether err is a cross-slot configuration.
func IsCrossSlot(err error) bool { return redisconn.IsCrossSlot(err) }

// checkSlots returns an ErrCrossSlot error naming every key of one commit with its slot when
// they do not share one.
func checkSlots(name string, keys []string) error {
	if err := redisconn.SameSlot(keys...); err != nil {
		return fmt.Errorf("stream consumer %s: %w", name, err)
	}
	return nil
}
