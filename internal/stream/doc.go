// Package stream owns the stream mode of one function: a Consumer reads the input stream
// through a consumer group, runs the handler once per entry, and hands each batch to
// internal/state for one atomic commit. It owns the group's reading, reclaiming, retrying
// and dead-lettering; the Redis writes themselves belong to state.StreamStore.
//
// # Input
//
// An entry with the field DataField ("data") has the JSON of that field as its input (other
// fields are ignored), so a handler written for a key holding the same document works
// unchanged. An entry without it has the map of its fields (string values) as input.
// context.trigger is "stream" and context.entry_id the entry id; context.last_execution is
// the time of the last committed batch (every entry of one batch sees the same value).
//
// # Delivery: at least once from Redis, effectively once in effect
//
// A batch (at most Batch entries, read with XREADGROUP) is executed in stream order and
// committed by one Lua script: the XACK of its entries, their outputs, the env after the
// batch and the bookkeeping land together or not at all. If the process dies before the
// commit, the entries stay pending: the same consumer name reads them again when it
// restarts, and a live replica takes them over as soon as the dead consumer's heartbeat has
// expired (see Hand-over below). An entry's
// output is written only by the commit that acknowledges it, so an entry processed twice
// (reclaimed from a replica that was only slow) appears once. When a commit's reply is lost,
// the state is read back and this consumer's pending entries are read again before anything
// new: what was acknowledged is not redelivered, the state in Redis is the truth.
//
// # Failures
//
// An entry whose handler fails stays pending and is retried when reclaimed after ClaimIdle
// (entries after it are not held back, so a retried entry runs out of order). Its attempt
// count is its delivery count in the group; when an entry fails on attempt MaxAttempts, or
// was delivered more than MaxAttempts times without an outcome (it kept killing the
// process), it is appended to the DeadLetter stream and acknowledged in the same commit. An
// entry whose data field is not valid JSON goes there at once. A dead letter carries the
// entry's own fields followed by eventrt:source (the original id), eventrt:error and
// eventrt:attempts; to replay one, XADD its fields without the eventrt: ones. An entry with
// more than state.DeadFoldFields (256) field/value pairs has them folded into one field,
// eventrt:fields, a JSON array of its field and value strings in order (bytes that are not
// UTF-8 become U+FFFD); to replay it, XADD that array's elements. A poison entry never
// blocks the stream. A commit that cannot be applied whole (a key it writes holds another
// type, such as a string left on the output key by key mode) is refused before it writes
// anything: it is logged once with the key, its entries stay pending with their delivery
// counts unchanged, and it is retried with a backoff (up to 5s) until the key is fixed.
//
// # Outputs
//
// xadd (the default) appends each non-nil output to the Output stream as fields data (the
// JSON) and source (the input entry id), capped with MAXLEN ~ OutputMaxLen when one is set (uncapped by default); set writes the
// last output of each batch to the Output key; publish publishes each output on the Output
// channel. A nil output writes nothing.
//
// # Replicas, ordering and throughput
//
// Replicas in one group share the entries: each batch goes to one of them.
//
//   - A handler that does not use state (exec.Handler.UsesState false) needs no coordination:
//     within a batch it runs on Workers goroutines and its outputs are written in stream
//     order; batches of different replicas interleave, so the output stream is ordered within
//     a batch but not globally. Throughput grows with replicas until Redis is the limit.
//   - A stateful handler runs one entry at a time, in stream order, each seeing the env the
//     previous one left. Every commit increments the state version in K:meta and a stateful
//     commit requires the version its batch started from; a replica that loses that race
//     reloads the state, drops the entries another replica acknowledged meanwhile and runs
//     the rest again. No state update is lost, but state updates are applied in commit order,
//     not global stream order, and commits are serialised: N stateful replicas give
//     availability (a dead replica's entries are reclaimed), not more throughput than one.
//
// Batches are pipelined: while one batch executes, the next two are being read when there is
// a backlog, the next one when the consumer has caught up (one read after the other, so they
// come in stream order), and the previous one committed (a stateful
// batch runs on the state its predecessor's commit will leave and is executed again if that
// commit loses a race). Memory is bounded by those four batches, and nothing more is read
// until they move on, which is the backpressure when Redis or the handler is slower than the
// input. Batches read ahead are dropped when the consumer must reread (a lost commit reply, a
// read error): their entries are pending for this consumer, and its history read returns them.
//
// # Hand-over
//
// Every consumer heartbeats in a registry of the group's live consumers (lease.Members, key
// MembersKey). When Run's context ends, the consumer stops reading, finishes the batches it
// read ahead and everything still pending under its name (entries a read cut short may have
// delivered), commits, and leaves the registry, within DrainTimeout; whatever is left is taken
// over at once by a live consumer, which sees it leave. A consumer that dies without a goodbye
// drops out of the registry within HeartbeatTTL; the live consumers then XCLAIM its pending
// entries (a consumer that starts does so before reading anything new). Entries are claimed
// only from consumer names that Redis reports not alive just before the claim; the idle
// reclaim (XAUTOCLAIM after ClaimIdle) remains for failed entries, which any consumer retries.
//
// Order across a hand-over: a stop keeps stream order (the stopping consumer commits every
// entry it was delivered before a consumer started afterwards reads on from the group's
// position), and so does a consumer that starts after another died (it processes the dead
// one's entries, oldest first, before new ones). A consumer that was already running when
// another died has processed newer entries meanwhile: the dead one's entries (at most its
// read-ahead, three batches) are applied after them, as any replica's are in commit order.
//
// # Redis Cluster
//
// The commit script touches the stream, the state hash and its :meta, the dead-letter stream
// and (for xadd and set) the output key, which must therefore share one hash slot: use a
// common hash tag, for example "{metrics}:in", "{metrics}:out". The default dead-letter and
// state keys derive from the stream and output names with such a tag. New refuses keys in
// different slots on a cluster client, and CheckSlots reports them for a start-up check.
package stream
