package main

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestMemoryLimit(t *testing.T) {
	const container = 128 << 20 // deploy/base's 128Mi
	containerF := float64(container)
	ninety := int64(containerF * MemoryLimitRatio)
	cases := []struct {
		name     string
		env      map[string]string
		provider memlimit.Provider
		want     int64 // the limit set; -1: none set
		log      string
	}{
		{"cgroup limit", nil, memlimit.Limit(container), ninety, "source=cgroup"},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "64MiB"}, memlimit.Limit(container), -1, "source=GOMEMLIMIT"},
		{"no container limit", nil, func() (uint64, error) { return 0, memlimit.ErrNoLimit }, -1, "none (no container memory limit"},
		{"unreadable cgroup", nil, func() (uint64, error) { return 0, errors.New("no mountinfo") }, -1, "container memory limit unknown"},
		{"huge limit", nil, memlimit.Limit(math.MaxUint64), math.MaxInt64, "source=cgroup"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			set := int64(-1)
			memoryLimit(log, func(k string) string { return c.env[k] }, c.provider, func(n int64) int64 {
				if n >= 0 {
					set = n
				}
				return 1 << 30
			})
			if set != c.want {
				t.Errorf("limit set %d, want %d", set, c.want)
			}
			if !strings.Contains(buf.String(), c.log) || strings.Count(buf.String(), "\n") != 1 {
				t.Errorf("log %q, want one line containing %q", buf.String(), c.log)
			}
		})
	}
}
