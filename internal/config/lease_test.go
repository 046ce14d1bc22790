package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLeaseSettings(t *testing.T) {
	o, err := Parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Lease || o.LeaseTTL != DefaultLeaseTTL || DefaultLeaseTTL != 10*time.Second {
		t.Fatalf("defaults: LEASE=%v LEASE_TTL=%v", o.Lease, o.LeaseTTL)
	}
	o, err = Parse([]string{"--lease-ttl", "2.5"}, env(map[string]string{"LEASE": "false", "LEASE_TTL": "30s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Lease || o.LeaseTTL != 2500*time.Millisecond {
		t.Fatalf("LEASE=%v LEASE_TTL=%v", o.Lease, o.LeaseTTL)
	}
	for v, want := range map[string]string{
		"100ms": `invalid LEASE_TTL="100ms": must be at least 500ms`,
		"never": `invalid LEASE_TTL="never"`,
		"0":     `invalid LEASE_TTL="0": must be positive`,
	} {
		if _, err := Parse(nil, env(map[string]string{"LEASE_TTL": v}), io.Discard); err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("LEASE_TTL=%s: %v, want %q", v, err, want)
		}
	}
	if _, err := Parse(nil, env(map[string]string{"LEASE": "sometimes"}), io.Discard); err == nil || !strings.Contains(err.Error(), `invalid LEASE="sometimes"`) {
		t.Errorf("LEASE=sometimes: %v", err)
	}
	var usage strings.Builder
	_, _ = Parse([]string{"-h"}, env(nil), &usage)
	if !strings.Contains(usage.String(), "-lease-ttl") || !strings.Contains(usage.String(), "env LEASE_TTL, default \"10s\"") {
		t.Errorf("usage lacks LEASE_TTL:\n%s", usage.String())
	}
}
