package state

// DecodeSnapshot checks and converts a state hash and its meta hash read by the caller (a
// pattern function reads many keys' state in one pipeline). Each env field must hold valid
// JSON.
func DecodeSnapshot(stateKey, metaKey string, fields, meta map[string]string) (Snapshot, error) {
	return decodeSnapshot(stateKey, metaKey, fields, meta)
}

// AttemptCountScript is the Lua source CountAttempt runs (KEYS: meta; ARGV: id, skip...),
// for a caller that pipelines the counts of many keys.
func AttemptCountScript() string { return countScript.src }
