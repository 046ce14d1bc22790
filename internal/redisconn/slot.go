package redisconn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// ClusterSlots is the number of hash slots of every Redis Cluster.
const ClusterSlots = 16384

// ErrCrossSlot is wrapped by CheckSameSlot's error.
var ErrCrossSlot = errors.New("keys that commit together do not share one hash slot")

// IsCrossSlot reports whether err comes from CheckSameSlot finding keys in different slots.
func IsCrossSlot(err error) bool { return errors.Is(err, ErrCrossSlot) }

// KeySlot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash tag (the part
// between the first '{' and the next '}', when not empty) or else of the whole key, modulo
// ClusterSlots. It is what CLUSTER KEYSLOT answers, without the round trip.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % ClusterSlots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the variant Redis Cluster uses.
// Bitwise rather than table-driven: keys are short and this runs at start-up, not per event.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// CheckSameSlot returns an error naming every key with its slot when client is a cluster
// client and keys do not all hash to one slot. Keys written in one MULTI/EXEC (output, state,
// state meta, lease) must: a cluster refuses a transaction across slots, so eventrt says so at
// start-up rather than failing on the first commit. Empty keys (an unset optional key) are
// ignored. On a standalone server every key qualifies and the result is nil. No command is
// sent: the slot is computed locally.
func CheckSameSlot(client rueidis.Client, keys ...string) error {
	if client == nil || client.Mode() != rueidis.ClientModeCluster {
		return nil
	}
	return SameSlot(keys...)
}

// SameSlot is CheckSameSlot for a client known to be a cluster client.
func SameSlot(keys ...string) error {
	first, same := -1, true
	var b strings.Builder
	for _, k := range keys {
		if k == "" {
			continue
		}
		slot := KeySlot(k)
		if first < 0 {
			first = slot
		} else if slot != first {
			same = false
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(k) + " (slot " + strconv.Itoa(slot) + ")")
	}
	if same {
		return nil
	}
	return fmt.Errorf("%w on this Redis Cluster: %s; give them a common hash tag such as %s",
		ErrCrossSlot, b.String(), suggestTag(keys))
}

// suggestTag proposes a hash tag for the error message: the first key's own tag, or the first
// key wrapped in braces.
func suggestTag(keys []string) string {
	for _, k := range keys {
		if k == "" {
			continue
		}
		if i := strings.IndexByte(k, '{'); i >= 0 {
			if j := strings.IndexByte(k[i+1:], '}'); j > 0 {
				return k[i : i+j+2]
			}
		}
		return "{" + k + "}"
	}
	return "{tag}"
}
