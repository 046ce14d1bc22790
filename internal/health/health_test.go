package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
)

func TestReadinessFollowsRedisAndChecks(t *testing.T) {
	srv := redistest.Start(t)
	var ups []bool
	c := New(Options{OnRedis: func(up bool) { ups = append(ups, up) }})
	if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "redis: not reachable") {
		t.Fatalf("ready before any check: %v", err)
	}
	c.SetClient(srv.Client())
	c.check(context.Background())
	if err := c.Ready(); err != nil {
		t.Fatalf("not ready with Redis up and no checks: %v", err)
	}
	c.AddCheck("f1", func() error { return errors.New("starting") })
	rec := httptest.NewRecorder()
	c.Readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "f1: starting") {
		t.Fatalf("/readyz = %d %q", rec.Code, rec.Body.String())
	}
	c.Remove("f1")
	srv.Kill()
	c.check(context.Background())
	if err := c.Ready(); err == nil {
		t.Fatal("ready with Redis down")
	}
	rec = httptest.NewRecorder()
	c.Healthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/healthz = %d with Redis down; liveness must not follow Redis", rec.Code)
	}
	if len(ups) != 2 || !ups[0] || ups[1] {
		t.Fatalf("OnRedis saw %v, want [true false]", ups)
	}
}
