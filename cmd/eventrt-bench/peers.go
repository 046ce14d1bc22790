package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
)

// What the driver reads from the repository, relative to its root: nothing outside it. The
// go test packages hold the engines' benchmarks. The legacy runtime is the project's own
// stand-in for the course image; it runs the same classic course handler as eventrt's Python
// rows, so those rows compare runtimes, not handlers. A test checks that every one exists.
const (
	samplePath        = "examples/classic/metrics-sample.json"
	classicExprPath   = "examples/classic"
	statelessExprPath = "examples/stateless"
	classicPythonPath = "examples/python/usermodule.py"
	legacyRuntimePath = "bench/peers/legacy_runtime.py"
	exprBenchPkg      = "./internal/exec/exprengine/"
	pythonBenchPkg    = "./internal/exec/pyengine/"
)

// eventrtPython is the interpreter eventrt's Python engine starts (PYTHON's default), which
// the Python rows need on PATH.
const eventrtPython = "python3"

// needPython returns a missing-peer error when eventrt's Python engine cannot start its
// worker here, so a Python row says why it did not run instead of failing on the daemon.
func needPython() error {
	if _, err := exec.LookPath(eventrtPython); err != nil {
		return missingf("%s not found on PATH: eventrt's Python engine runs it (apt-get install python3)", eventrtPython)
	}
	return nil
}

// needLegacy returns a missing-peer error naming what the legacy runtime lacks here: its
// files, the interpreter, or the interpreter's redis module.
func (s *session) needLegacy(ctx context.Context) error {
	for _, f := range []string{legacyRuntimePath, classicPythonPath} {
		if _, err := os.Stat(filepath.Join(s.o.Repo, f)); err != nil {
			return missingf("%s: %v", f, err)
		}
	}
	if _, err := exec.LookPath(s.o.Python); err != nil {
		return missingf("interpreter %s for the legacy runtime: %v (apt-get install python3, or -python)", s.o.Python, err)
	}
	if out, err := exec.CommandContext(ctx, s.o.Python, "-c", "import redis").CombinedOutput(); err != nil {
		return missingf("the redis module of %s, which the legacy runtime imports (apt-get install python3-redis): %s",
			s.o.Python, lastLines(out, 1))
	}
	return nil
}

// repoPath is p (one of the paths above) under the repository root.
func (s *session) repoPath(p string) string { return filepath.Join(s.o.Repo, p) }
