package metrics

import "github.com/prometheus/client_golang/prometheus"

// ObserveKeys exports n(), the number of keys a pattern function holds the state of, as
// eventrt_pattern_keys{function}: one series per function, never one per key. It returns the
// unregistering of the gauge, for when the function stops.
func (f *Function) ObserveKeys(n func() int) (forget func()) {
	return f.observe("pattern_keys", "Keys of a pattern function whose state this process holds in memory.", n)
}

// ObservePartitions exports n(), the partitions of a pattern function's keys this replica
// owns, as eventrt_pattern_partitions_owned{function}.
func (f *Function) ObservePartitions(n func() int) (forget func()) {
	return f.observe("pattern_partitions_owned", "Partitions of a pattern function's keys this replica owns (runs).", n)
}

func (f *Function) observe(name, help string, n func() int) func() {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help,
		ConstLabels: prometheus.Labels{"function": f.name}}, func() float64 { return float64(n()) })
	if err := f.m.Registry.Register(g); err != nil {
		return func() {}
	}
	return func() { f.m.Registry.Unregister(g) }
}
