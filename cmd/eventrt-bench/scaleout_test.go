package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScaleOutRows: the scale-out rows run end to end on a small key set (a cluster, 1, 2 and
// 4 replicas, one SIGTERM and one SIGKILL hand-over) and print every row with a result; the
// executions add up to the values written. The shares of so few keys are not judged.
func TestScaleOutRows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-master cluster and four eventrt processes")
	}
	bin := filepath.Join(t.TempDir(), "eventrt")
	if out, err := exec.Command("go", "build", "-o", bin, "../eventrt").CombinedOutput(); err != nil {
		t.Fatalf("build eventrt: %v\n%s", err, out)
	}
	repo, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p := &patternBench{repo: repo, bin: bin, log: &log}
	if p.tpl, err = loadTemplate(testSample); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	const keys = 300
	p.scaleOut(context.Background(), &out, keys, 1, DefaultScaleLeaseTTL)
	rows := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(rows) != 7 {
		t.Fatalf("%d rows, want 7 (spread, 3 shares, total, 2 hand-overs):\n%s\n%s", len(rows), out.String(), log.String())
	}
	for _, r := range rows {
		if strings.Contains(r, "failed") || strings.Contains(r, "not measured") {
			t.Errorf("row failed: %s\n%s", r, log.String())
		}
	}
	if total := rows[4]; !strings.Contains(total, "900 ÷ 900") || !strings.HasSuffix(total, "| met |") {
		t.Errorf("executions row: %s, want 900 ÷ 900, met", total)
	}
	for _, r := range rows[5:] {
		if !strings.Contains(r, " s, median of 1 ") {
			t.Errorf("hand-over row without its time: %s", r)
		}
	}
}

// TestScaleShareTarget: the share target judges a share × N within ±20% of 1.
func TestScaleShareTarget(t *testing.T) {
	for v, want := range map[float64]bool{1: true, 0.8: true, 1.2: true, 0.79: false, 1.21: false} {
		if got := targetScaleShare.met(v); got != want {
			t.Errorf("met(%v) = %v, want %v", v, got, want)
		}
	}
	if s := targetScaleShare.String(); s != "share of the executions 1/N ± 20%" {
		t.Errorf("target reads %q", s)
	}
}
