package pattern

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/clock"
	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// DefaultPartitions is the number of partitions the 16384 hash slots are divided into: the
// most replicas that can share one pattern function's keys.
const DefaultPartitions = 64

// Membership is the live view of a function's replicas (lease.Members).
type Membership interface {
	Self() string
	Live() []string
	Changes() <-chan struct{}
}

// PartitionsOptions configure Partitions.
type PartitionsOptions struct {
	Client     rueidis.Client
	Layout     *Layout
	Partitions int // default DefaultPartitions
	Members    Membership
	// LeaseTTL bounds how long a dead replica's partitions stay unowned.
	LeaseTTL time.Duration
	Clock    clock.Clock
	Logger   *slog.Logger
}

// Partitions is this replica's share of a pattern function's keys. The hash slots are divided
// into P partitions; from the live replicas (Members), every replica computes the same
// assignment (rendezvous hashing capped at P/N partitions a replica, so that each owns
// about 1/N and a join or leave moves few), and runs a lease (package lease) for each
// partition assigned to it. It owns the keys of a partition while it holds that lease: its
// fencing token is the tenure a run of those keys commits under. A tenure first claims each
// slot it runs keys of (the slot's fence key takes its token, unless a later tenure's is
// there), and every commit checks the slot's fence in the same script as its writes: a
// replica that lost a partition (paused, partitioned away, or slow to notice) can write
// nothing once its successor has claimed the slot, and the successor's reads come after that
// claim, so they see everything the predecessor committed.
type Partitions struct {
	o       PartitionsOptions
	changes chan struct{}
	gained  atomic.Bool

	mu     sync.Mutex
	leases map[int]*partLease
}

type partLease struct {
	l      *lease.Lease
	cancel context.CancelFunc
	done   chan struct{}
}

// NewPartitions validates o.
func NewPartitions(o PartitionsOptions) (*Partitions, error) {
	switch {
	case o.Client == nil || o.Layout == nil || o.Members == nil:
		return nil, errors.New("pattern partitions: nil client, layout or members")
	case o.Partitions < 0 || o.Partitions > redisconn.ClusterSlots:
		return nil, fmt.Errorf("pattern partitions: %d partitions: want 1 to %d", o.Partitions, redisconn.ClusterSlots)
	}
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Partitions{o: o, changes: make(chan struct{}, 1), leases: map[int]*partLease{}}, nil
}

// Token returns the fencing token under which keys of slot run, and whether this replica
// holds the slot's partition.
func (p *Partitions) Token(slot int) (int64, bool) {
	p.mu.Lock()
	pl := p.leases[PartitionOf(slot, p.o.Partitions)]
	p.mu.Unlock()
	if pl == nil {
		return 0, false
	}
	h, ok := pl.l.Held()
	return h.Token, ok
}

// Fenced tells the partition of slot that its tenure token lost the slot to a later one.
func (p *Partitions) Fenced(slot int, token int64) {
	p.mu.Lock()
	pl := p.leases[PartitionOf(slot, p.o.Partitions)]
	p.mu.Unlock()
	if pl != nil {
		pl.l.Fenced(token)
	}
}

// FenceKey is the fence of slot for this division into partitions.
func (p *Partitions) FenceKey(slot int) string { return p.o.Layout.FenceKey(slot, p.o.Partitions) }

// Changes is signalled when a partition is acquired or lost.
func (p *Partitions) Changes() <-chan struct{} { return p.changes }

// Gained reports whether a partition was acquired since the last call: its keys need a
// catch-up.
func (p *Partitions) Gained() bool { return p.gained.Swap(false) }

// Gaining reports whether a partition was acquired and Gained has not been asked since.
func (p *Partitions) Gaining() bool { return p.gained.Load() }

// Settled reports whether this replica holds every partition assigned to it in its current
// view of the replicas.
func (p *Partitions) Settled() bool {
	self := p.o.Members.Self()
	assigned := Assign(p.o.Members.Live(), p.o.Partitions)
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, m := range assigned {
		if m != self {
			continue
		}
		pl := p.leases[n]
		if pl == nil {
			return false
		}
		if _, ok := pl.l.Held(); !ok {
			return false
		}
	}
	return true
}

// Owned returns the partitions this replica holds now.
func (p *Partitions) Owned() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var owned []int
	for n, pl := range p.leases {
		if _, ok := pl.l.Held(); ok {
			owned = append(owned, n)
		}
	}
	slices.Sort(owned)
	return owned
}

// Run follows the membership: it leases the partitions assigned to this replica and gives
// up the others, until ctx ends. It does not release what it holds then: call Release after
// the runner's last commit.
func (p *Partitions) Run(ctx context.Context) error {
	for {
		p.rebalance(ctx)
		select {
		case <-ctx.Done():
			p.mu.Lock()
			leases := p.leases
			p.mu.Unlock()
			for _, pl := range leases {
				pl.cancel()
				<-pl.done
			}
			return nil
		case <-p.o.Members.Changes():
		}
	}
}

// rebalance starts leasing newly assigned partitions and releases the ones assigned away.
func (p *Partitions) rebalance(ctx context.Context) {
	self := p.o.Members.Self()
	assigned := Assign(p.o.Members.Live(), p.o.Partitions)
	p.mu.Lock()
	var drop []*partLease
	for n, pl := range p.leases {
		if assigned[n] != self {
			drop = append(drop, pl)
			delete(p.leases, n)
		}
	}
	started := 0
	for n := range p.o.Partitions {
		if assigned[n] != self || p.leases[n] != nil {
			continue
		}
		pl, err := p.start(ctx, n, self)
		if err != nil {
			p.o.Logger.Error("cannot lease partition", "partition", n, "err", err)
			continue
		}
		p.leases[n] = pl
		started++
	}
	p.mu.Unlock()
	if started > 0 || len(drop) > 0 {
		p.o.Logger.Info("partitions rebalanced", "replicas", len(p.o.Members.Live()), "leasing", started, "giving_up", len(drop))
	}
	signal(p.changes) // partitions given up stop running at once
	for _, pl := range drop {
		pl.cancel()
		<-pl.done
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.LeaseTTL)
		if _, err := pl.l.Release(rctx); err != nil {
			p.o.Logger.Warn("partition not released; its new owner takes it when it expires", "err", err)
		}
		cancel()
	}
}

func (p *Partitions) start(ctx context.Context, n int, self string) (*partLease, error) {
	key, tokens := p.o.Layout.LeaseKeys(n, p.o.Partitions)
	l, err := lease.New(lease.Options{Client: p.o.Client, Key: key, FenceKey: tokens, Owner: self, TTL: p.o.LeaseTTL,
		Clock: p.o.Clock, Logger: slog.New(quiet{p.o.Logger.Handler()}).With("partition", n)})
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pl := &partLease{l: l, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pl.done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = l.Run(lctx) })
		for {
			select {
			case <-lctx.Done():
				wg.Wait()
				return
			case <-l.Changes():
				if _, held := l.Held(); held {
					p.gained.Store(true)
				}
				signal(p.changes)
			}
		}
	}()
	return pl, nil
}

// Release gives up every partition held, so that the replicas that remain take them over at
// once. Call it after Run has returned and the runner has stopped.
func (p *Partitions) Release(ctx context.Context) {
	p.mu.Lock()
	leases := p.leases
	p.leases = map[int]*partLease{}
	p.mu.Unlock()
	for _, pl := range leases {
		if _, err := pl.l.Release(ctx); err != nil {
			p.o.Logger.Warn("partition not released; its new owner takes it when it expires", "err", err)
		}
	}
}

// Assign maps each of n partitions to one of the live members: rendezvous hashing (each
// partition goes to the member ranking it highest) capped at n/N partitions a member
// (n%N members one more), taken in partition order, so that every replica computing it from the same view
// gets the same answer, shares are within one partition of each other, and a member joining
// or leaving moves about 1/N of the partitions.
func Assign(live []string, n int) []string {
	out := make([]string, n)
	if len(live) == 0 {
		return out
	}
	// Every member takes n/N partitions, and n%N of them one more.
	floor, extra := n/len(live), n%len(live)
	count := make(map[string]int, len(live))
	type ranked struct {
		m string
		h uint64
	}
	rank := make([]ranked, len(live))
	for p := range n {
		for i, m := range live {
			h := fnv.New64a()
			h.Write([]byte(m))
			h.Write([]byte{0})
			h.Write([]byte(strconv.Itoa(p)))
			rank[i] = ranked{m, h.Sum64()}
		}
		slices.SortFunc(rank, func(a, b ranked) int {
			switch {
			case a.h > b.h:
				return -1
			case a.h < b.h:
				return 1
			}
			return 0
		})
		for _, c := range rank {
			if count[c.m] < floor || (count[c.m] == floor && extra > 0) {
				if count[c.m] == floor {
					extra--
				}
				out[p] = c.m
				count[c.m]++
				break
			}
		}
	}
	return out
}

// quiet passes on warnings and errors only: a replica's leases are many, and their
// acquisitions and releases are told once per rebalance (by Partitions) instead.
type quiet struct{ slog.Handler }

func (q quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && q.Handler.Enabled(ctx, l)
}

func (q quiet) WithAttrs(a []slog.Attr) slog.Handler { return quiet{q.Handler.WithAttrs(a)} }
func (q quiet) WithGroup(g string) slog.Handler      { return quiet{q.Handler.WithGroup(g)} }
