package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eventrt/eventrt/internal/exec/exprengine"

	"github.com/eventrt/eventrt/internal/bundle"
	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/pyengine"
)

// handlerSet is what one load of the handler bundle yields: the functions to run and a
// compiled version of each.
type handlerSet struct {
	bundle   *bundle.Bundle
	fns      []function
	versions map[string]exec.Version
}

// loadHandlers loads the handler discovered at start (d.src) and compiles every function the
// daemon runs, or starts the Python worker of a Python handler. Any error names the file, line
// and column, or the setting to fix.
func (d *daemon) loadHandlers(ctx context.Context) (*handlerSet, error) {
	o, log, src := d.o, d.log, d.src
	if src.runtime == bundle.RuntimePython && src.path != "" && isPlainFile(src.path) {
		// A Python file is Python whatever its name (/app/pyfile/pyfile has no suffix).
		return d.loadPython(ctx, src.path, cmp.Or(src.name, bundle.PythonFileFunction(src.path)))
	}
	b, err := bundle.Load(ctx, bundle.Source{Path: src.path, URL: src.url, SHA256: o.ZipSHA256, AllowHTTP: o.ZipAllowHTTP})
	if err != nil {
		if src.from != "default" && src.from != "ZIP_URL" {
			return nil, fmt.Errorf("%s=%s: %w", src.from, src.path, err)
		}
		return nil, err
	}
	switch {
	case src.runtime == bundle.RuntimeExpr && b.Runtime == bundle.RuntimePython:
		return nil, fmt.Errorf("HANDLER_RUNTIME=expr, but %s holds Python modules and no .expr programs", b.Origin)
	case src.runtime == bundle.RuntimePython && b.Runtime == bundle.RuntimeExpr:
		return nil, fmt.Errorf("HANDLER_RUNTIME=python, but %s holds .expr programs; unset HANDLER_RUNTIME to run them", b.Origin)
	case b.Runtime == bundle.RuntimePython:
		file := b.Origin
		if b.Form == bundle.FormURL {
			if file, err = d.saveArchive(b); err != nil {
				return nil, err
			}
		}
		return d.loadPython(ctx, file, cmp.Or(src.name, b.PythonFunction))
	}
	set := &handlerSet{bundle: b, versions: map[string]exec.Version{}}
	name := ""
	if b.Manifest == nil {
		if name, err = exprName(b, src.name); err != nil {
			return nil, err
		}
	}
	set.fns = functions(o, b, name)
	var errs []error
	for _, fn := range set.fns {
		v, err := compileFunction(b, fn.Name, limits(o, fn))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Debug("handler compiled", "function", fn.Name, "file", v.File, "hash", v.Handler.Hash())
		set.versions[fn.Name] = v
	}
	return set, errors.Join(errs...)
}

// isPlainFile reports whether p is a file that is not a zip archive.
func isPlainFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && !pyengine.IsZip(p)
}

// saveArchive writes a Python bundle downloaded from ZIP_URL to a file the Python worker can
// import from (zipimport reads a file), named by its digest, in a directory removed at exit.
func (d *daemon) saveArchive(b *bundle.Bundle) (string, error) {
	if d.tmpDir == "" {
		dir, err := os.MkdirTemp("", "eventrt-bundle-")
		if err != nil {
			return "", fmt.Errorf("ZIP_URL holds Python modules, which are imported from a file: %w (set TMPDIR to a writable directory)", err)
		}
		d.tmpDir = dir
	}
	file := filepath.Join(d.tmpDir, b.SHA256[:16]+".zip")
	if err := os.WriteFile(file, b.Archive(), 0o600); err != nil {
		return "", fmt.Errorf("ZIP_URL: saving the Python modules: %w", err)
	}
	return file, nil
}

func limits(o config.Options, fn function) exprengine.Limits {
	lim := exprengine.DefaultLimits()
	lim.Timeout = fn.Timeout
	lim.MaxOutputBytes = o.MaxOutputBytes
	lim.MaxRunBytes = o.HandlerMemory
	return lim
}

// compileFunction compiles one function of b. Errors, at compile time and at run time, name
// the file the failing line comes from (a shared definitions file or the function's own) by a
// path the user can open.
func compileFunction(b *bundle.Bundle, name string, lim exprengine.Limits) (exec.Version, error) {
	f, err := b.Function(name)
	if err != nil {
		return exec.Version{}, err
	}
	p, err := f.Compile(lim)
	if err != nil {
		var ce *exprengine.CompileError
		if errors.As(err, &ce) {
			c := *ce
			c.File = b.Path(c.File)
			return exec.Version{}, &c
		}
		return exec.Version{}, fmt.Errorf("compile %s: %w", b.Path(f.File), err)
	}
	return exec.Version{Handler: bundleHandler{p, b, f}, File: b.Path(f.File), ModTime: f.ModTime, Runtime: "expr"}, nil
}

// bundleHandler is a compiled bundle function whose run errors point into the bundle's files.
type bundleHandler struct {
	*exprengine.Program
	b *bundle.Bundle
	f *bundle.Function
}

func (h bundleHandler) Run(c exec.Call) (exec.Result, error) {
	r, err := h.Program.Run(c)
	if err == nil {
		return r, nil
	}
	err = h.f.Locate(err)
	var ee *exec.Error
	var re *exprengine.RuntimeError
	if errors.As(err, &ee) && errors.As(ee.Err, &re) {
		located := *re
		located.File = h.b.Path(re.File)
		return r, &exec.Error{Kind: ee.Kind, Err: &located}
	}
	return r, err
}

// watchHandlers reloads the bundle when its files change (Kubernetes' ConfigMap symlink swap
// included) or on SIGHUP. A function whose configuration is unchanged gets its new version
// swapped in between executions; a function added, removed or reconfigured by the manifest is
// started or stopped. A version that fails to load or compile is rejected: the old one keeps
// running.
func (d *daemon) watchHandlers(ctx context.Context) error {
	var mu sync.Mutex // the file watch and SIGHUP may ask at once
	reload := func() {
		mu.Lock()
		defer mu.Unlock()
		d.reload(ctx)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var w *bundle.Watcher
	if d.o.ZipURL == "" { // a downloaded bundle is reloaded (fetched again) on SIGHUP only
		var err error
		path := d.src.path
		if w, err = bundle.Watch(ctx, path, reload); err != nil {
			d.log.Warn("cannot watch the handler files; reload on SIGHUP only", "path", path, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			if w != nil {
				<-w.Done()
			}
			return nil
		case <-hup:
			d.log.Info("SIGHUP: reloading handlers")
			reload()
		}
	}
}

func (d *daemon) reload(ctx context.Context) {
	set, err := d.loadHandlers(ctx)
	d.mu.Lock()
	units := make(map[string]*unit, len(d.units))
	for k, u := range d.units {
		units[k] = u
	}
	d.mu.Unlock()
	if set == nil { // the bundle itself did not load
		for _, u := range units {
			u.metrics.Reload(false)
		}
		d.log.Error("reload rejected; the previous version keeps running", "err", err)
		return
	}
	if err != nil {
		d.log.Error("reload rejected for the functions named; their previous version keeps running", "err", err)
	}
	listed := map[string]function{}
	for _, fn := range set.fns {
		listed[fn.Name] = fn
	}
	for name, u := range units {
		fn, isListed := listed[name]
		v, compiled := set.versions[name]
		switch {
		case isListed && !compiled:
			u.metrics.Reload(false)
			delete(listed, name)
		case isListed && fn == u.fn:
			cur := u.runner.Version()
			if v.Handler.Hash() != cur.Handler.Hash() || !v.ModTime.Equal(cur.ModTime) {
				observeFallbacks(v, u.metrics)
				u.runner.Swap(v)
				u.metrics.Reload(true)
				d.log.Info("handler reloaded", "function", name, "hash", v.Handler.Hash())
				retire(cur, fn.Timeout)
			} else {
				retire(v, 0) // an identical version: drop the one just loaded
			}
			delete(listed, name)
		default: // removed from the manifest, or reconfigured (started again below)
			d.log.Info("manifest changed: stopping function", "function", name)
			d.mu.Lock()
			delete(d.units, name)
			d.mu.Unlock()
			d.stopUnit(u, time.Now().Add(d.o.ShutdownTimeout))
		}
	}
	for name, fn := range listed {
		v, compiled := set.versions[name]
		if !compiled {
			continue
		}
		if err := fn.check(); err != nil {
			d.m.Function(name).Reload(false)
			d.log.Error("function from the new manifest refused", "function", name, "err", err)
			continue
		}
		if err := d.startUnit(ctx, fn, v); err != nil {
			d.m.Function(name).Reload(false)
			d.log.Error("cannot start function from the new manifest", "function", name, "err", err)
			continue
		}
		d.m.Function(name).Reload(true)
	}
	d.reportRunning()
}

// loadPython starts the supervised Python worker for the single function the environment
// describes. Python handlers are trusted code: they run with eventrt's permissions and can do
// I/O, unlike expr programs.
func (d *daemon) loadPython(ctx context.Context, file, name string) (*handlerSet, error) {
	o, log := d.o, d.log
	fns := functions(o, nil, name)
	fn := fns[0]
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("python handler: %w", err)
	}
	fm := d.m.Function(fn.Name)
	e, err := pyengine.Start(ctx, pyengine.Options{
		Python: o.Python, File: file, Function: fn.Name, Name: fn.Name, Timeout: fn.Timeout, Env: workerEnv(os.Environ()),
		MemoryLimit: o.PythonMemoryLimit, MaxOutputBytes: o.MaxOutputBytes, SpinWait: o.PythonSpinWait, Logger: log,
		OnRestart: fm.WorkerRestart,
	})
	if err != nil {
		return nil, err
	}
	log.Debug("python handler started", "function", fn.Name, "file", file, "hash", e.Hash())
	return &handlerSet{fns: fns, versions: map[string]exec.Version{
		fn.Name: {Handler: e, File: file, ModTime: st.ModTime(), Runtime: "python"},
	}}, nil
}

// retire closes a handler version that holds resources (a Python worker) once no run can
// still be using it: a run that took the version before the swap ends within its timeout
// (Close itself also waits for a run in progress).
func retire(v exec.Version, after time.Duration) {
	c, ok := v.Handler.(io.Closer)
	if !ok {
		return
	}
	time.AfterFunc(after, func() { _ = c.Close() })
}

// workerEnv is eventrt's environment without the Redis credentials: a Python handler is trusted
// code, but it has no need for them, and one that prints its environment would log them.
func workerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == "REDIS_PASSWORD" || name == "REDIS_URL" {
			continue
		}
		out = append(out, kv)
	}
	return out
}
