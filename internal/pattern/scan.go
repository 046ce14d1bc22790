package pattern

import (
	"context"
	"sort"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/trigger"
)

// scanner walks the key space with SCAN MATCH <pattern> TYPE string, on every node of a
// cluster (each holds only its own keys). A catch-up pass walks it all and hands every key
// to the runner (which runs those whose value differs from the last one executed); a poll
// tick walks at most ScanPerTick keys per node, continuing where the last tick stopped, so
// that a large key space is covered over several periods at a bounded cost per tick. SCAN
// may return a key twice; the runner's pending set absorbs that.
type scanner struct {
	r *Runner
	// cursors of the poll walk, per node address ("" on a standalone server).
	cursors map[string]uint64
}

func (s *scanner) run(ctx context.Context) {
	s.cursors = map[string]uint64{}
	for {
		select {
		case <-ctx.Done():
			return
		case kind := <-s.r.rescan:
			s.r.mu.Lock()
			req := s.r.scanReq
			s.r.mu.Unlock()
			if s.catchUp(ctx, kind) {
				s.r.mu.Lock()
				s.r.scanDone = max(s.r.scanDone, req)
				s.r.mu.Unlock()
			}
		case <-s.r.poll:
			s.pollTick(ctx)
		}
	}
}

// nodes returns the clients to scan: the client itself, or each node of a cluster.
func (s *scanner) nodes() map[string]rueidis.Client {
	c := s.r.o.Client
	if c.Mode() != rueidis.ClientModeCluster {
		return map[string]rueidis.Client{"": c}
	}
	return c.Nodes()
}

// catchUp walks every key once; it reports whether the walk completed.
func (s *scanner) catchUp(ctx context.Context, kind trigger.Kind) bool {
	r := s.r
	r.mu.Lock()
	r.overflow = false
	r.mu.Unlock()
	ok := true
	for addr, nc := range sorted(s.nodes()) {
		var cursor uint64
		for {
			keys, next, err := s.scanOnce(ctx, nc, cursor)
			if err != nil {
				if ctx.Err() == nil {
					r.redisError("scan "+addr, err)
				}
				ok = false
				break
			}
			for _, k := range keys {
				if !s.owned(k) {
					continue
				}
				if !r.enqueueWait(ctx, k, kind) {
					return false
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return ok
}

// pollTick walks up to ScanPerTick keys of each node.
func (s *scanner) pollTick(ctx context.Context) {
	r := s.r
	nodes := s.nodes()
	for addr := range s.cursors {
		if _, ok := nodes[addr]; !ok {
			delete(s.cursors, addr)
		}
	}
	for addr, nc := range sorted(nodes) {
		cursor, seen := s.cursors[addr], 0
		for seen < r.o.ScanPerTick {
			keys, next, err := s.scanOnce(ctx, nc, cursor)
			if err != nil {
				if ctx.Err() == nil {
					r.redisError("scan "+addr, err)
				}
				break
			}
			seen += max(len(keys), 1)
			for _, k := range keys {
				if s.owned(k) {
					r.NotifyKey(k, trigger.KindPoll)
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		s.cursors[addr] = cursor
	}
}

func (s *scanner) owned(key string) bool {
	if s.r.o.Owner == nil {
		return true
	}
	_, ok := s.r.o.Owner.Token(s.r.o.Layout.Keys(key).Slot)
	return ok
}

func (s *scanner) scanOnce(ctx context.Context, nc rueidis.Client, cursor uint64) ([]string, uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.r.o.RedisTimeout)
	defer cancel()
	cmd := nc.B().Scan().Cursor(cursor).Match(s.r.o.Layout.Pattern).Count(int64(s.r.o.ScanCount)).Type("string").Build()
	e, err := nc.Do(rctx, cmd).AsScanEntry()
	if err != nil {
		return nil, 0, err
	}
	return e.Elements, e.Cursor, nil
}

// sorted iterates nodes in address order, so that runs are reproducible.
func sorted(nodes map[string]rueidis.Client) func(yield func(string, rueidis.Client) bool) {
	return func(yield func(string, rueidis.Client) bool) {
		addrs := make([]string, 0, len(nodes))
		for a := range nodes {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		for _, a := range addrs {
			if !yield(a, nodes[a]) {
				return
			}
		}
	}
}
