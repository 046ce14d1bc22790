package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventrt/eventrt/internal/pattern"
)

// partitionsUnit is a pattern function's share of the keys among its replicas.
type partitionsUnit struct {
	parts *pattern.Partitions
}

// startPartitions joins the function's replicas and starts leasing its partitions.
func (d *daemon) startPartitions(ctx context.Context, u *unit, layout *pattern.Layout, log *slog.Logger) (*pattern.Partitions, error) {
	return nil, nil
}

// stopPartitions hands the unit's partitions over: it leaves the replicas (the others
// rebalance at once) and releases its leases, after the runner's last commit.
func (u *unit) stopPartitions(log *slog.Logger, deadline time.Time) bool {
	return true
}
