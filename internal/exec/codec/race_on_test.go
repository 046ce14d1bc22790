//go:build race

package codec

// raceEnabled: the race detector makes sync.Pool drop items at random, so tests of reuse
// through a pool are skipped.
const raceEnabled = true
