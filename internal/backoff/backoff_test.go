package backoff

import (
	"testing"
	"time"
)

func TestGrowsAndCaps(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	var last time.Duration
	for i := 0; i < 10; i++ {
		d := b.Next()
		if d < 80*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("step %d: %s outside [80ms, 1.2s]", i, d)
		}
		last = d
	}
	if last < 800*time.Millisecond {
		t.Fatalf("after 10 steps %s, want near the 1s cap", last)
	}
	b.Reset()
	if d := b.Next(); d > 120*time.Millisecond {
		t.Fatalf("after reset %s, want about 100ms", d)
	}
}

func TestExactSeries(t *testing.T) {
	for _, c := range []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"zero value: defaults, no jitter", Backoff{},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
				1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}},
		{"cap not a power of two", Backoff{Min: time.Second, Max: 3 * time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{"max below min", Backoff{Min: time.Second, Max: time.Millisecond},
			[]time.Duration{time.Second, time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i, want := range c.want {
				if got := c.b.Next(); got != want {
					t.Fatalf("delay %d = %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestDelayFarAlongStaysAtMax(t *testing.T) {
	b := Backoff{Min: time.Nanosecond, Max: time.Hour}
	for _, n := range []int{42, 61, 62, 63, 1000, 1 << 30} {
		if d := b.Delay(n); d != time.Hour {
			t.Errorf("Delay(%d) = %s, want the 1h cap", n, d)
		}
	}
	var long Backoff
	for range 200 {
		long.Next()
	}
	if d := long.Next(); d != DefaultMax {
		t.Errorf("after 200 delays %s, want %s", d, DefaultMax)
	}
}

func TestJitterSpreads(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Second, Jitter: 0.2}
	seen := map[time.Duration]bool{}
	for range 100 {
		d := b.Next()
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("%s outside 1s ±20%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 100: not spread", len(seen))
	}
}
