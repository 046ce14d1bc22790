package trigger

import (
	"strconv"
	"strings"
)

// keyspaceChannel is the channel on which Redis publishes the events of key in db.
func keyspaceChannel(db int, key string) string {
	return "__keyspace@" + strconv.Itoa(db) + "__:" + key
}

// onKeyspaceEvent handles one keyspace event of the input key (the message is the event name).
func (w *Watcher) onKeyspaceEvent(event string) {
	if isWriteEvent(event) {
		w.sink.Notify(KindKeyspace)
		return
	}
	if event == "del" {
		// A slot migration moves each key with a DEL on its old node: on a cluster the key's
		// writes may now happen on another node. (One EXISTS tells; a plain DEL costs no more.)
		w.signalRecheck()
	}
}

// isWriteEvent reports whether a keyspace event can have left a new value in the key. It lists
// the events that cannot rather than the ones that can, so that a write event unknown to this
// code (a module's, a newer server's) still triggers a run: a spurious signal costs one read,
// since the runner skips values it already executed, while a missed one costs a poll period.
func isWriteEvent(event string) bool {
	switch event {
	case "del", "expired", "evicted", // the key is gone (UNLINK reports "del" too)
		"rename_from", "move_from", // the key moved away
		"expire", "persist", "hexpire", "hpersist", // only a TTL changed
		"new": // always followed by the write event proper
		return false
	}
	return true
}

// Classes of notify-keyspace-events (Redis 7). 'A' is an alias for allClasses; K and E select
// the keyspace and keyevent channels and carry no class of events.
const (
	allClasses   = "g$lshzxetd"
	knownClasses = allClasses + "nm"
)

// validateEventClasses checks the classes a user asked for.
func validateEventClasses(classes string) error {
	for _, c := range classes {
		if c == 'A' || !strings.ContainsRune(knownClasses, c) {
			return &classError{c}
		}
	}
	return nil
}

type classError struct{ c rune }

func (e *classError) Error() string {
	return "unknown notify-keyspace-events class " + strconv.QuoteRune(e.c) +
		" (want letters of " + strconv.Quote(knownClasses) + ")"
}

// mergeFlags returns current completed with the flags of required it lacks, and those flags
// ("" when current already covers required). current is kept verbatim and only appended to, so
// flags this code does not know (a newer server's) survive; 'A' in current covers allClasses.
func mergeFlags(current, required string) (merged, missing string) {
	var b strings.Builder
	for _, c := range required {
		if covers(current, c) || strings.ContainsRune(b.String(), c) {
			continue
		}
		b.WriteRune(c)
	}
	missing = b.String()
	return current + missing, missing
}

// covers reports whether notify-keyspace-events flags enable flag c.
func covers(flags string, c rune) bool {
	if strings.ContainsRune(flags, c) {
		return true
	}
	return strings.ContainsRune(flags, 'A') && strings.ContainsRune(allClasses, c)
}
