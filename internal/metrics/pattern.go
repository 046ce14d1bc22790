package metrics

import "github.com/prometheus/client_golang/prometheus"

// ObserveKeys exports n(), the number of keys a pattern function holds the state of, as
// eventrt_pattern_keys{function}: one series per function, never one per key. It returns the
// unregistering of the gauge, for when the function stops.
func (f *Function) ObserveKeys(n func() int) (forget func()) {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "pattern_keys",
		Help:        "Keys of a pattern function whose state this process holds in memory.",
		ConstLabels: prometheus.Labels{"function": f.name}}, func() float64 { return float64(n()) })
	if err := f.m.Registry.Register(g); err != nil {
		return func() {}
	}
	return func() { f.m.Registry.Unregister(g) }
}
