package rediscluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestInfoField reads fields of INFO replies, RESP3's "txt:" prefix and CRLF line ends
// included, and gives "" for a field that is absent.
func TestInfoField(t *testing.T) {
	info := "txt:# Cluster\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\n"
	for name, want := range map[string]string{"cluster_state": "ok", "cluster_slots_assigned": "16384", "role": ""} {
		if got := InfoField(info, name); got != want {
			t.Errorf("InfoField(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestFormRefusesImpossibleMasters: a topology with no master, or more masters than nodes,
// is refused before any node is asked.
func TestFormRefusesImpossibleMasters(t *testing.T) {
	nodes := make([]Node, 2) // no clients: asking one would panic
	for _, masters := range []int{0, 3} {
		_, err := Form(context.Background(), nodes, masters, time.Second)
		if err == nil || !strings.Contains(err.Error(), "masters among 2 nodes") {
			t.Errorf("Form with %d masters: %v, want a refusal", masters, err)
		}
	}
}
