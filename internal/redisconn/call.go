package redisconn

import (
	"context"
	"time"
)

// CallContext returns the context for one Redis round trip (a command, a pipeline, a script):
// ctx's values and deadline without its cancellation, bounded by timeout as well. A round trip
// that has begun is let finish when the caller's run is cancelled (a shutdown), so that the
// caller learns whether a write applied rather than guessing: a commit or a lease script cut
// off after Redis ran it would leave the caller's view behind Redis'. A deadline the caller
// set (a drain deadline) and the timeout still bound the wait on a Redis that does not answer.
func CallContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}
