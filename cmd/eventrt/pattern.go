package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/pattern"
	"github.com/eventrt/eventrt/internal/trigger"
)

// patternLayout validates a pattern function's keys (at start, before anything connects).
func (f function) patternLayout() (*pattern.Layout, error) {
	mode := pattern.OutputMode(f.OutputMode)
	l, err := pattern.NewLayout(f.InputKey, f.OutputKey, mode, f.Name)
	if err != nil {
		return nil, fmt.Errorf("function %s (REDIS_INPUT_KEY=%q, REDIS_OUTPUT_KEY=%q): %w", f.Name, f.InputKey, f.OutputKey, err)
	}
	if f.StateKey != config.DefaultStateKey(f.OutputKey) {
		return nil, fmt.Errorf("function %s: STATE_KEY %q cannot be set for a pattern function: each input key's state is derived from its output key", f.Name, f.StateKey)
	}
	return l, nil
}

// patternExecutor adapts a pattern runner to the unit's executor.
type patternExecutor struct{ r *pattern.Runner }

func (p patternExecutor) Swap(v exec.Version)   { p.r.Swap(v) }
func (p patternExecutor) Version() exec.Version { return p.r.Version() }

// startPatternUnit starts a pattern function: its runner (with its scanner), its watcher
// and, with LEASE=true, its share of the keys among the replicas.
func (d *daemon) startPatternUnit(ctx context.Context, configured, fn function, v exec.Version, fm *metrics.Function, log *slog.Logger) error {
	layout, err := fn.patternLayout()
	if err != nil {
		return err
	}
	u := &unit{fn: configured, metrics: fm, runsMany: true}
	var owner *pattern.Partitions
	if d.o.Lease {
		if owner, err = d.startPartitions(ctx, u, layout, log); err != nil {
			return err
		}
	}
	client, err := d.batchClient(ctx, log)
	if err != nil {
		u.stopPartitions(d.log, time.Now().Add(d.o.ShutdownTimeout))
		return err
	}
	rn, err := pattern.New(pattern.Options{
		Name: fn.Name, Client: client, Layout: layout, Host: d.o.RedisHost, Port: d.o.RedisPort,
		PollAlways: fn.PollAlways, CacheKeys: d.o.PatternCacheKeys, OutputMaxLen: int64(d.o.OutputMaxLen),
		StateTTL: d.o.StateTTL, MaxAttempts: d.o.KeyMaxAttempts, Owner: owner, Metrics: fm, Logger: d.log, Clock: d.clk,
	}, v)
	if err != nil {
		u.stopPartitions(d.log, time.Now().Add(d.o.ShutdownTimeout))
		return err
	}
	var sub rueidis.Client
	if err = d.retry(ctx, log, "subscription client", func() error {
		var err error
		sub, err = rueidis.NewClient(d.redisCo)
		return err
	}, nil); err != nil {
		u.stopPartitions(d.log, time.Now().Add(d.o.ShutdownTimeout))
		return err
	}
	w, err := trigger.NewPattern(trigger.PatternOptions{
		Client: sub, DB: d.o.RedisDB, Pattern: fn.InputKey, Channel: fn.Channel, PollPeriod: fn.Period,
		ConfigureNotifications: d.o.NotifyConfig, Clock: d.clk, Logger: log,
	}, rn)
	if err != nil {
		sub.Close()
		u.stopPartitions(d.log, time.Now().Add(d.o.ShutdownTimeout))
		return err
	}
	u.runner, u.sub = patternExecutor{rn}, sub
	u.runnerG = spawn(ctx, "pattern runner "+fn.Name, rn.Run)
	u.triggerG = spawn(ctx, "pattern triggers "+fn.Name, w.Run)
	fm.ObserveNotifications(func() bool { return w.Status().Notifications })
	u.forgetKeys = fm.ObserveKeys(rn.Keys)
	var ready atomic.Bool
	d.hc.AddCheck(fn.Name, func() error {
		// Ready once every node is subscribed, the partitions assigned are held, and a
		// catch-up scan that started after that has run to its end (the runner idle): a
		// write from then on triggers a run of its own.
		if ready.Load() {
			return nil
		}
		if st := w.Status(); !st.Subscribed || st.Catchups == 0 {
			return errors.New("triggers not in place yet")
		}
		if !rn.CaughtUp() {
			return errors.New("partitions or first catch-up scan in progress")
		}
		ready.Store(true)
		return nil
	})
	d.mu.Lock()
	d.units[fn.Name] = u
	d.mu.Unlock()
	log.Info("running", "input_pattern", fn.InputKey, "output_key", fn.OutputKey, "output_mode", layout.Mode,
		"trigger_channel", fn.Channel, "period", fn.Period, "hash", v.Handler.Hash(), "partitions", owner != nil)
	return nil
}

// isPattern reports whether fn runs as a pattern function.
func (f function) isPattern() bool { return f.InputMode == bundle.InputPattern }
