package stream

import (
	"errors"
	"fmt"
	"strings"
)

// ErrCrossSlot reports keys that must be committed together but live in different Redis
// Cluster hash slots.
var ErrCrossSlot = errors.New("keys of one atomic commit are in different hash slots")

// IsCrossSlot reports whether err is a cross-slot configuration.
func IsCrossSlot(err error) bool { return errors.Is(err, ErrCrossSlot) }

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash tag, modulo
// 16384.
func Slot(key string) uint16 {
	tag := key
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			tag = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc & 16383
}

// checkSlots returns an ErrCrossSlot error naming every key outside the first key's slot.
func checkSlots(name string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	want := Slot(keys[0])
	var bad []string
	for _, k := range keys[1:] {
		if s := Slot(k); s != want {
			bad = append(bad, fmt.Sprintf("%q (slot %d)", k, s))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("stream consumer %s: %w: stream %q is in slot %d but %s; give them a common hash tag such as {%s}",
		name, ErrCrossSlot, keys[0], want, strings.Join(bad, ", "), hashTagHint(keys[0]))
}

func hashTagHint(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
