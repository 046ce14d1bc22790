package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"
)

// legacy measures the course runtime stand-in. It polls every INTERVAL (5 s by default, kept
// here), so each trial waits for a random share of one period before its SET: the latency is
// then spread over the polling cycle as it is for a collector that writes at any moment,
// rather than always landing just after a poll (the worst case). The offsets are stratified
// over the period so that few trials still cover it evenly.
func (s *session) legacy(ctx context.Context) {
	row := latencyRow{Name: fmt.Sprintf("legacy runtime (%s, polls every %v)", legacyRuntimePath, s.o.LegacyInterval), Kind: latOther}
	defer func() { s.rep.Latency = append(s.rep.Latency, row) }()
	if s.o.LegacyTrials == 0 {
		row.Status = rowStatus{skipped, "-legacy-trials=0"}
		return
	}
	if err := s.needLegacy(ctx); err != nil {
		row.Status = statusOf(err)
		return
	}
	script, module := s.repoPath(legacyRuntimePath), s.repoPath(classicPythonPath)
	in, out := "bench:legacy:metrics", "bench:legacy:output"
	env := append(s.redisEnv(), "REDIS_INPUT_KEY="+in, "REDIS_OUTPUT_KEY="+out, "USERMODULE="+module, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	s.logf("starting the legacy runtime: %d trials, about %v", s.o.LegacyTrials, time.Duration(s.o.LegacyTrials+1)*s.o.LegacyInterval)
	proc, err := startChild("legacy runtime", filepath.Dir(script), env, s.o.Python, script)
	if err != nil {
		row.Status = statusOf(err)
		return
	}
	defer proc.Stop(5 * time.Second)
	p, err := newProbe(ctx, s.rc, in, out)
	if err != nil {
		row.Status = statusOf(err)
		return
	}
	defer p.Close()
	timeout := 2*s.o.LegacyInterval + 5*time.Second
	ts := s.ts.Next()
	if _, err := p.Trial(ctx, s.tpl.Doc(ts), ts, timeout); err != nil { // warm-up; sets the phase
		if proc.Exited() {
			err = errors.New(proc.ExitReason())
		}
		row.Status = statusOf(fmt.Errorf("warm-up: %w", err))
		return
	}
	n := s.o.LegacyTrials
	offsets := make([]time.Duration, n)
	for i := range offsets {
		offsets[i] = time.Duration((float64(i) + rand.Float64()) / float64(n) * float64(s.o.LegacyInterval))
	}
	rand.Shuffle(n, func(i, j int) { offsets[i], offsets[j] = offsets[j], offsets[i] })
	var samples []time.Duration
	for i, off := range offsets {
		if err := sleepCtx(ctx, off); err != nil {
			row.Status = statusOf(err)
			return
		}
		ts := s.ts.Next()
		d, err := p.Trial(ctx, s.tpl.Doc(ts), ts, timeout)
		if err != nil {
			row.Status = statusOf(fmt.Errorf("trial %d: %w", i+1, err))
			return
		}
		samples = append(samples, d)
	}
	row.Stats = summarize(samples)
	if rss, hwm, err := proc.Memory(); err == nil {
		s.rep.Memory = append(s.rep.Memory, memRow{Process: "legacy runtime (Python)",
			When: fmt.Sprintf("idle, after %d runs", n+1), RSS: rss, HWM: hwm})
	}
}
