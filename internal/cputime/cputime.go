// Package cputime reads the CPU time the process has used. Benchmarks report it per operation
// beside wall time, which other load on a shared machine disturbs far more.
package cputime

import "time"

// Self returns the user and system CPU time this process has used so far. Where the platform
// does not say (not a Unix), it returns 0 and no error.
func Self() (time.Duration, error) { return self() }
