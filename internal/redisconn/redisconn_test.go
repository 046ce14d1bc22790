package redisconn

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/eventrt/eventrt/internal/redistest"
	"github.com/redis/rueidis"
)

func TestClientOptionFromURL(t *testing.T) {
	cases := []struct {
		url        string
		addrs      []string
		user, pass string
		db         int
		tls        bool
	}{
		{"redis://app:s3cret@cache.internal:6380/2", []string{"cache.internal:6380"}, "app", "s3cret", 2, false},
		{"redis://:s3cret@cache.internal", []string{"cache.internal:6379"}, "", "s3cret", 0, false},
		{"redis://cache.internal/", []string{"cache.internal:6379"}, "", "", 0, false},
		{"redis://", []string{"localhost:6379"}, "", "", 0, false},
		{"REDIS://[::1]:7000/0", []string{"[::1]:7000"}, "", "", 0, false},
		{"rediss://app:s3cret@127.0.0.1:6380/1", []string{"127.0.0.1:6380"}, "app", "s3cret", 1, true},
		{"redis://u:p%40ss%23w%2F@h:1", []string{"h:1"}, "u", "p@ss#w/", 0, false},
		{"redis://h:7000?addr=h2:7001&addr=h3:7002", []string{"h:7000", "h2:7001", "h3:7002"}, "", "", 0, false},
	}
	for _, c := range cases {
		opt, err := Options{URL: c.url, Host: "ignored", Port: 1, Password: "ignored", DB: 9}.ClientOption()
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if !reflect.DeepEqual(opt.InitAddress, c.addrs) || opt.Username != c.user || opt.Password != c.pass ||
			opt.SelectDB != c.db || (opt.TLSConfig != nil) != c.tls || !opt.DisableCache {
			t.Errorf("%s: got addrs=%v user=%q pass=%q db=%d tls=%v cache-off=%v", c.url, opt.InitAddress,
				opt.Username, opt.Password, opt.SelectDB, opt.TLSConfig != nil, opt.DisableCache)
		}
		if opt.TLSConfig != nil && (opt.TLSConfig.InsecureSkipVerify || opt.TLSConfig.RootCAs == nil) {
			t.Errorf("%s: TLS config skips verification or has no roots", c.url)
		}
	}
}

func TestClientOptionRejectsBadURLWithoutLeakingIt(t *testing.T) {
	cases := []struct{ url, want string }{
		{"http://user:hunter2x@h", `scheme "http"`},
		{"cache.internal:6379", "not of the form"},
		{"redis://user:hunter2x@h/abc", "path must be /<database number>"},
		{"redis://user:hunter2x@h/1/2", "path must be /<database number>"},
		{"redis://user:hunter2x@h/-1", "path must be /<database number>"},
		{"redis://user:hunter2x@h:99999", "port"},
		{"redis://user:hunter2x@h?skip_verify=true", `"skip_verify" is not supported`},
		{"redis://user:hunter2x@h?addr=nohostport", "addr"},
		// Unescaped '#', '/' and '?' in a password shift the URL's parts around.
		{"redis://user:hun#ter2x@h", "'#'"},
		{"redis://user:hunter2x/9@h", "cannot be parsed"},
		{"redis://user:123/hunter2x@h", "path must be"},
		{"redis://user:hun?ter2x@h", "cannot be parsed"},
	}
	for _, c := range cases {
		_, err := Options{URL: c.url}.ClientOption()
		if err == nil {
			t.Errorf("%s: no error", c.url)
			continue
		}
		msg := err.Error()
		if !IsInvalid(err) || !strings.Contains(msg, c.want) || !strings.Contains(msg, "URL") {
			t.Errorf("%s: error %q, want IsInvalid naming URL and containing %q", c.url, msg, c.want)
		}
		for _, secret := range []string{"hunter2x", "hun", "ter2x", "123"} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s: error %q contains part of the password (%q)", c.url, msg, secret)
			}
		}
	}
}

func TestClientOptionFromFields(t *testing.T) {
	opt, err := Options{}.ClientOption()
	if err != nil || !reflect.DeepEqual(opt.InitAddress, []string{"localhost:6379"}) || opt.TLSConfig != nil {
		t.Fatalf("defaults: %v %v", opt.InitAddress, err)
	}
	opt, err = Options{Host: "::1", Port: 7000, Username: "app", Password: "pw", DB: 3, ClientName: "eventrt"}.ClientOption()
	if err != nil || !reflect.DeepEqual(opt.InitAddress, []string{"[::1]:7000"}) || opt.Username != "app" ||
		opt.Password != "pw" || opt.SelectDB != 3 || opt.ClientName != "eventrt" {
		t.Fatalf("fields: %+v %v", opt, err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Port: 70000}, "Port 70000"},
		{Options{Port: -1}, "Port -1"},
		{Options{DB: -1}, "DB -1"},
		{Options{Host: "cache:6380"}, `Host "cache:6380" contains a port`},
		{Options{Host: "a/b"}, `Host "a/b"`},
		{Options{CAFile: "/etc/ca.pem"}, "CAFile /etc/ca.pem is set but the connection is not TLS"},
		{Options{URL: "rediss://h", CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
	} {
		_, err := c.o.ClientOption()
		if err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.o, err, c.want)
		}
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Options{URL: "rediss://h", CAFile: notPEM}).ClientOption(); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("non-PEM CA file: %v", err)
	}
}

func TestRedacted(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Host: "cache", Port: 6380, Username: "app", Password: "hunter2x", DB: 2}, "redis://app:xxxxx@cache:6380/2"},
		{Options{Password: "hunter2x"}, "redis://:xxxxx@localhost:6379/0"},
		{Options{Username: "app"}, "redis://app@localhost:6379/0"},
		{Options{URL: "rediss://app:hunter2x@127.0.0.1:6380/1?addr=127.0.0.1:6381"}, "rediss://app:xxxxx@127.0.0.1:6380/1?addr=127.0.0.1%3A6381"},
		{Options{URL: "redis://app:hun#ter2x@h"}, "<invalid redis settings>"},
	}
	for _, c := range cases {
		if got := c.o.Redacted(); got != c.want {
			t.Errorf("Redacted() = %q, want %q", got, c.want)
		}
	}
}

func ping(t *testing.T, c rueidis.Client) {
	t.Helper()
	if got, err := c.Do(context.Background(), c.B().Ping().Build()).ToString(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
}

func TestNewTLSWithAndWithoutCAFile(t *testing.T) {
	t.Parallel()
	s, f := redistest.StartTLS(t)
	url := "rediss://" + s.Addr() + "/0"
	c, err := New(Options{URL: url, CAFile: f.CAFile})
	if err != nil {
		t.Fatalf("New with the CA file: %v", err)
	}
	defer c.Close()
	ping(t, c)

	_, err = New(Options{URL: url})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "rediss://"+s.Addr()) {
		t.Fatalf("New without the CA file: %v, want x509.UnknownAuthorityError naming the server", err)
	}
	if IsInvalid(err) {
		t.Fatalf("a connection failure reported as invalid settings: %v", err)
	}
}

func TestNewWithACLUser(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, "user app on >hunter2x ~* +@all")
	c, err := New(Options{URL: "redis://app:hunter2x@" + s.Addr() + "/1", ClientName: "eventrt-test"})
	if err != nil {
		t.Fatalf("New as app: %v", err)
	}
	defer c.Close()
	ctx := context.Background()
	if who, err := c.Do(ctx, c.B().AclWhoami().Build()).ToString(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v", who, err)
	}
	if name, err := c.Do(ctx, c.B().ClientGetname().Build()).ToString(); err != nil || name != "eventrt-test" {
		t.Fatalf("CLIENT GETNAME = %q, %v", name, err)
	}
	if err := c.Do(ctx, c.B().Set().Key("k").Value("db1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got := s.Do("EXISTS", "k"); got != "0" { // db 0 stays empty
		t.Fatalf("EXISTS k in db 0 = %s, want 0", got)
	}

	host, port := splitAddr(t, s.Addr())
	for _, o := range []Options{
		{URL: "redis://app:wrong-hunter3y@" + s.Addr()},
		{Host: host, Port: port, Username: "app", Password: "wrong-hunter3y"},
	} {
		_, err := New(o)
		if err == nil {
			t.Fatalf("New with a wrong password succeeded")
		}
		if msg := err.Error(); !strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "hunter") || !strings.Contains(msg, "app:xxxxx@") {
			t.Fatalf("wrong password: error %q, want WRONGPASS, the redacted URL and no password", msg)
		}
	}
	c2, err := New(Options{Host: host, Port: port, Username: "app", Password: "hunter2x"})
	if err != nil {
		t.Fatalf("New from fields: %v", err)
	}
	defer c2.Close()
	ping(t, c2)
	if c2.Mode() != rueidis.ClientModeStandalone {
		t.Fatalf("mode against a standalone server = %s", c2.Mode())
	}
}

func TestNewDetectsCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	host, port := splitAddr(t, cl.Addrs()[1])
	c, err := New(Options{Host: host, Port: port})
	if err != nil {
		t.Fatalf("New against a cluster node: %v", err)
	}
	defer c.Close()
	if c.Mode() != rueidis.ClientModeCluster {
		t.Fatalf("mode = %s, want cluster", c.Mode())
	}
	if n := len(c.Nodes()); n != 3 {
		t.Fatalf("cluster client knows %d nodes, want 3", n)
	}
	testSlotsOnCluster(t, cl, c)
	_, err = New(Options{Host: host, Port: port, DB: 1})
	if err == nil || !strings.Contains(err.Error(), "SELECT is not allowed in cluster mode") {
		t.Fatalf("DB 1 on a cluster: %v", err)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	port := 0
	for _, r := range addr[i+1:] {
		port = port*10 + int(r-'0')
	}
	return addr[:i], port
}

// A Light client keeps the connection settings, opens one connection, carries more commands
// in flight than its ring has slots (callers wait for a slot, none is refused) and values
// larger than its buffers, whole.
func TestLight(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := Options{Host: "127.0.0.1", Port: srv.Port, ClientName: "light"}.ClientOption()
	if err != nil {
		t.Fatal(err)
	}
	light := Light(opt)
	if !reflect.DeepEqual(light.InitAddress, opt.InitAddress) || light.ClientName != "light" || !light.DisableCache {
		t.Fatalf("Light changed the connection settings: %+v", light)
	}
	c, err := rueidis.NewClient(light)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	big := strings.Repeat("v", 4*LightBuffer+3)
	if err := c.Do(ctx, c.B().Set().Key("big").Value(big).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	const n = 4 << LightRingScale
	errs := make(chan error, n)
	for i := range n {
		go func() {
			got, err := c.Do(ctx, c.B().Get().Key("big").Build()).ToString()
			if err == nil && got != big {
				err = errors.New("value changed on the way")
			}
			if i%2 == 0 && err == nil {
				err = c.Do(ctx, c.B().Incr().Key("count").Build()).Error()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Do("GET", "count"); got != strconv.Itoa(n/2) {
		t.Errorf("count = %s, want %d", got, n/2)
	}
	if got := strings.Count(srv.Do("CLIENT", "LIST"), "name=light "); got != 1 {
		t.Errorf("%d connections named light, want 1", got)
	}
}
