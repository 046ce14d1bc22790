package bundle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a watch waits for changes to settle before it calls back: an
// editor's save, a `cp -r` or Kubernetes' swap is several events that make one change.
const DefaultDebounce = 100 * time.Millisecond

// maxDelayFactor bounds the wait under a continuous stream of changes to this many debounce
// periods, so a file rewritten without pause still gets reloaded.
const maxDelayFactor = 10

// WatchOptions configure Watch. The zero value is ready to use.
type WatchOptions struct {
	// Debounce is the quiet time after the last change before onChange runs; DefaultDebounce
	// when zero.
	Debounce time.Duration
	// OnError receives problems of the watch itself, e.g. the kernel's event queue
	// overflowing (onChange also runs then, since a change may have been lost). Nil ignores
	// them.
	OnError func(error)
}

// Watcher is a running watch.
type Watcher struct {
	done chan struct{}
}

// Done is closed when the watch has stopped (its context was cancelled) and onChange will
// not be called again.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Watch calls onChange (debounced, never concurrently) when the bundle at path may have
// changed: a file in the directory tree, the zip, the single program file or its manifest.
// It watches directories, never files, so that replacements by rename and Kubernetes'
// ConfigMap symlink swap (`..data` pointed at a new timestamped directory) are seen. It
// returns once the watch is in place; the watch runs until ctx is cancelled.
func Watch(ctx context.Context, path string, onChange func()) (*Watcher, error) {
	return WatchWith(ctx, path, WatchOptions{}, onChange)
}

// WatchWith is Watch with options.
func WatchWith(ctx context.Context, path string, opts WatchOptions, onChange func()) (*Watcher, error) {
	if onChange == nil {
		return nil, errors.New("bundle: watch: onChange is nil")
	}
	if opts.Debounce < 0 {
		return nil, fmt.Errorf("bundle: watch: debounce %s is negative", opts.Debounce)
	}
	if opts.Debounce == 0 {
		opts.Debounce = DefaultDebounce
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: watch: %w", err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("bundle: watch %s: %w", path, err)
	}
	s := &watchState{fw: fw, opts: opts, onChange: onChange}
	if info.IsDir() {
		s.root = filepath.Clean(path)
		err = s.addTree(s.root, 0)
	} else {
		s.root = filepath.Dir(filepath.Clean(path))
		s.only = filepath.Base(path)
		err = fw.Add(s.root)
	}
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("bundle: watch %s: %w", path, err)
	}
	w := &Watcher{done: make(chan struct{})}
	go s.loop(ctx, w.done)
	return w, nil
}

type watchState struct {
	fw       *fsnotify.Watcher
	opts     WatchOptions
	onChange func()
	root     string
	only     string // base name of the watched file; "" for a directory
}

// addTree watches dir and its visible subdirectories (module directories).
func (s *watchState) addTree(dir string, depth int) error {
	if depth > maxDepth {
		return nil
	}
	if err := s.fw.Add(dir); err != nil {
		return err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		full := filepath.Join(dir, de.Name())
		if fi, err := os.Stat(full); err == nil && fi.IsDir() {
			if err := s.addTree(full, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// relevant says whether an event may change the bundle. Names starting with ".." are
// Kubernetes' atomic-writer entries (`..data`, `..data_tmp`, `..2024_...`): their swap is
// the change. Other hidden names (editor swap files, .git) are not part of a bundle.
func relevant(root, only string, ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	if strings.HasPrefix(name, "..") {
		return filepath.Dir(ev.Name) == root
	}
	if only != "" {
		return filepath.Dir(ev.Name) == root && name == only
	}
	return !strings.HasPrefix(name, ".")
}

func (s *watchState) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer s.fw.Close()
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	var pending bool
	var first time.Time
	touch := func() {
		now := time.Now()
		if !pending {
			pending, first = true, now
			timer.Reset(s.opts.Debounce)
			return
		}
		if now.Sub(first) < maxDelayFactor*s.opts.Debounce {
			timer.Reset(s.opts.Debounce)
		}
	}
	report := func(err error) {
		if s.opts.OnError != nil {
			s.opts.OnError(err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-s.fw.Events:
			if !ok {
				return
			}
			if !relevant(s.root, s.only, ev) {
				continue
			}
			if s.only == "" && ev.Has(fsnotify.Create) {
				// A new module directory: watch it too.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := s.addTree(ev.Name, 1); err != nil {
						report(fmt.Errorf("bundle: watch %s: %w", ev.Name, err))
					}
				}
			}
			touch()
		case err, ok := <-s.fw.Errors:
			if !ok {
				return
			}
			report(fmt.Errorf("bundle: watch %s: %w", s.root, err))
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				touch()
			}
		case <-timer.C:
			pending = false
			if ctx.Err() != nil {
				return
			}
			s.rewatchRoot(report)
			s.onChange()
		}
	}
}

// rewatchRoot restores the watch on the root directory when it was removed and recreated
// (inotify drops the watch of a deleted directory).
func (s *watchState) rewatchRoot(report func(error)) {
	for _, p := range s.fw.WatchList() {
		if p == s.root {
			return
		}
	}
	var err error
	if s.only == "" {
		err = s.addTree(s.root, 0)
	} else {
		err = s.fw.Add(s.root)
	}
	if err != nil {
		report(fmt.Errorf("bundle: watch %s lost: %w", s.root, err))
	}
}
