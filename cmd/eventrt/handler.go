package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/runner"
)

// loadHandler loads the bundle at HANDLER_PATH and compiles the selected function.
func loadHandler(ctx context.Context, o config.Options, log *slog.Logger) (runner.Version, error) {
	b, err := bundle.Load(ctx, bundle.Source{Path: o.HandlerPath})
	if err != nil {
		return runner.Version{}, err
	}
	f, err := b.Function(o.HandlerFunction)
	if err != nil {
		return runner.Version{}, err
	}
	lim := exec.DefaultLimits()
	lim.Timeout = o.HandlerTimeout
	lim.MaxOutputBytes = o.MaxOutputBytes
	p, err := exec.Compile(b.Path(f.File), f.Source, lim)
	if err != nil {
		var ce *exec.CompileError
		if errors.As(err, &ce) {
			file, line := f.Position(ce.Line)
			ce.File, ce.Line = b.Path(file), line
			return runner.Version{}, ce
		}
		return runner.Version{}, fmt.Errorf("compile %s: %w", b.Path(f.File), err)
	}
	log.Info("handler compiled", "function", f.Name, "file", b.Path(f.File), "hash", p.Hash())
	return runner.Version{Handler: p, File: b.Path(f.File), ModTime: f.ModTime, Runtime: "expr"}, nil
}

// watchHandler recompiles the handler when its files change (or on SIGHUP) and swaps it into
// the runner between executions. A version that fails to compile is rejected: the old one
// keeps running.
func watchHandler(ctx context.Context, o config.Options, log *slog.Logger, rn *runner.Runner, fm *metrics.Function) error {
	var mu sync.Mutex // the file watch and SIGHUP may ask at once
	reload := func() {
		mu.Lock()
		defer mu.Unlock()
		v, err := loadHandler(ctx, o, log)
		if err != nil {
			fm.Reload(false)
			log.Error("reload rejected; the previous version keeps running", "function", o.HandlerFunction, "err", err)
			return
		}
		if v.Handler.Hash() == rn.Version().Handler.Hash() {
			return
		}
		rn.Swap(v)
		fm.Reload(true)
		log.Info("handler reloaded", "function", o.HandlerFunction, "hash", v.Handler.Hash())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the handler", "function", o.HandlerFunction)
				reload()
			}
		}
	}()
	return bundle.Watch(ctx, o.HandlerPath, reload)
}
