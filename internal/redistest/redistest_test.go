package redistest

import "testing"

func TestStartRestartKeepsDataForgetsConfig(t *testing.T) {
	s := Start(t, `notify-keyspace-events ""`)
	if got := s.Do("CONFIG", "GET", "notify-keyspace-events"); got != "map[notify-keyspace-events:]" {
		t.Fatalf("initial notify-keyspace-events = %q", got)
	}
	s.Do("CONFIG", "SET", "notify-keyspace-events", "K$")
	s.Do("SET", "k", "v")
	s.Restart()
	if got := s.Do("GET", "k"); got != "v" {
		t.Fatalf("after restart GET k = %q, want v", got)
	}
	if got := s.Do("CONFIG", "GET", "notify-keyspace-events"); got != "map[notify-keyspace-events:]" {
		t.Fatalf("after restart notify-keyspace-events = %q, want it forgotten", got)
	}
}

func TestRenamedConfig(t *testing.T) {
	s := Start(t, `rename-command CONFIG ""`)
	if got := s.Do("PING"); got != "PONG" {
		t.Fatalf("PING = %q", got)
	}
}
