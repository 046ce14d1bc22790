package metrics_test

import (
	"testing"

	"github.com/eventrt/eventrt/internal/exec"
	"github.com/eventrt/eventrt/internal/exec/pyengine"
	"github.com/eventrt/eventrt/internal/metrics"
	"github.com/eventrt/eventrt/internal/trigger"
)

// The closed label sets that metrics creates at 0 hold every value their sources can report:
// a value missing here would be created on its first use, at 1, and its first occurrence
// would go unseen by increase().
func TestLabelSetsCoverTheirSources(t *testing.T) {
	m := metrics.New()
	f := m.Function("f")
	f.Mode(metrics.ModeKey)
	f.Mode(metrics.ModeStream)
	f.Mode(metrics.ModePattern)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]map[string]bool{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				key := mf.GetName() + " " + l.GetName()
				if have[key] == nil {
					have[key] = map[string]bool{}
				}
				have[key][l.GetValue()] = true
			}
		}
	}
	for _, c := range []struct {
		series string
		values []string
	}{
		{"eventrt_errors_total kind", []string{string(exec.KindDecode), string(exec.KindHandler), string(exec.KindTimeout), string(exec.KindOutput), string(exec.KindMemory), string(exec.KindInternal), metrics.ErrRedis}},
		{"eventrt_worker_restarts_total reason", []string{pyengine.ReasonTimeout, pyengine.ReasonCrash, pyengine.ReasonMemory}},
		{"eventrt_executions_total trigger", []string{string(trigger.KindKeyspace), string(trigger.KindPubSub), string(trigger.KindPoll), string(trigger.KindCatchup), metrics.TriggerStream}},
		{"eventrt_dead_letters_total mode", []string{metrics.ModeKey, metrics.ModeStream, metrics.ModePattern}},
		{"eventrt_reloads_total outcome", []string{metrics.OutcomeSuccess, metrics.OutcomeFailure}},
	} {
		for _, v := range c.values {
			if !have[c.series][v] {
				t.Errorf("%s: no series for %q at registration", c.series, v)
			}
		}
	}
}
