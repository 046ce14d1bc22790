package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventrt/eventrt/internal/lease"
	"github.com/eventrt/eventrt/internal/pattern"
)

// partitionsUnit is a pattern function's share of the keys among its replicas: its
// registration in the function's members registry and its partition leases.
type partitionsUnit struct {
	members  *lease.Members
	parts    *pattern.Partitions
	membersG goroutine
	partsG   goroutine
	forget   func()
}

// startPartitions joins the function's replicas and starts leasing its partitions.
func (d *daemon) startPartitions(ctx context.Context, u *unit, layout *pattern.Layout, log *slog.Logger) (*pattern.Partitions, error) {
	self, err := lease.NewOwner()
	if err != nil {
		return nil, err
	}
	m, err := lease.NewMembers(lease.MembersOptions{Client: d.client, Key: layout.MembersKey(), Self: self,
		// A dead replica's partitions are reassigned within the members TTL and taken over
		// when their leases expire: the lease TTL bounds both.
		TTL:   min(lease.DefaultMembersTTL, d.o.LeaseTTL),
		Clock: d.clk, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := d.retry(ctx, log, "join the replicas", func() error { return m.Join(ctx) }, nil); err != nil {
		return nil, err
	}
	parts, err := pattern.NewPartitions(pattern.PartitionsOptions{Client: d.client, Layout: layout,
		Partitions: d.o.PatternPartitions, Members: m, LeaseTTL: d.o.LeaseTTL, Clock: d.clk, Logger: log})
	if err != nil {
		return nil, err
	}
	pu := &partitionsUnit{members: m, parts: parts}
	pu.membersG = spawn(ctx, "members "+layout.Function, m.Run)
	pu.partsG = spawn(ctx, "partitions "+layout.Function, parts.Run)
	u.partitions = pu
	u.metrics.ObserveLease(func() bool { return len(parts.Owned()) > 0 })
	pu.forget = u.metrics.ObservePartitions(func() int { return len(parts.Owned()) })
	return parts, nil
}

// stopPartitions hands the unit's partitions over after the runner's last commit: it leaves
// the registry first, so that the replicas that remain rebalance and wait for the leases, then
// releases the leases, which wakes them to take over at once.
func (u *unit) stopPartitions(log *slog.Logger, deadline time.Time) bool {
	pu := u.partitions
	if pu == nil {
		return true
	}
	u.partitions = nil
	pu.forget()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := pu.members.Leave(ctx); err != nil {
		log.Warn("leaving the replicas failed; the others notice within the members TTL", "function", u.fn.Name, "err", err)
	}
	ok := pu.membersG.stop(log, deadline)
	ok = pu.partsG.stop(log, deadline) && ok
	pu.parts.Release(ctx)
	return ok
}
