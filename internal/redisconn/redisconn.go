// Package redisconn owns the translation of eventrt's Redis connection settings (host, port,
// ACL user, password, database, or one redis:// / rediss:// URL, plus a CA file) into a
// validated rueidis.ClientOption, and the redacted description of them that may be logged.
//
// Standalone Redis and Redis Cluster need no separate setting: rueidis.NewClient asks the
// first address for CLUSTER SLOTS and, when the server is not in cluster mode, falls back to
// a single-node client; Client.Mode() tells which one it got. Cluster mode requires DB 0
// (Redis refuses SELECT there, and New reports it). Extra seed addresses for a cluster may be
// given as repeated `addr` query parameters of the URL.
//
// The password never appears in an error or in Redacted. CallContext bounds one round trip
// for every component that talks to Redis.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// Defaults for the fields of Options left zero.
const (
	DefaultHost = "localhost"
	DefaultPort = 6379
)

// ErrInvalid is wrapped by every validation error of Options.
var ErrInvalid = errors.New("invalid redis connection settings")

// IsInvalid reports whether err comes from validating Options (as opposed to connecting).
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// Options are the connection settings. URL, when set, replaces Host, Port, Username,
// Password and DB entirely.
type Options struct {
	Host     string // DefaultHost if empty
	Port     int    // DefaultPort if 0
	Username string // ACL user; empty means the default user
	Password string
	DB       int

	// URL is redis://[user[:password]@]host[:port][/db][?addr=host:port...] or the same with
	// rediss:// for TLS. Special characters in the user or password must be percent-encoded.
	URL string

	// CAFile is a PEM file of CA certificates trusted for rediss:// in addition to the
	// system's store. Certificates are always verified; there is no way to skip it.
	CAFile string

	// ClientName is sent with CLIENT SETNAME so that CLIENT LIST shows who is connected.
	ClientName string
}

// settings is Options resolved: the URL parsed and defaults applied.
type settings struct {
	addrs    []string
	username string
	password string
	db       int
	tls      bool
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func (o Options) resolve() (settings, error) {
	if o.URL != "" {
		return parseURL(o.URL)
	}
	host, port := o.Host, o.Port
	if host == "" {
		host = DefaultHost
	}
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		return settings{}, invalid("Port %d out of range 1..65535", port)
	}
	if strings.ContainsAny(host, "/@?# ") {
		return settings{}, invalid("Host %q is not a host name or IP address", host)
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return settings{}, invalid("Host %q contains a port; set Port instead", host)
	}
	if o.DB < 0 {
		return settings{}, invalid("DB %d is negative", o.DB)
	}
	return settings{
		addrs:    []string{net.JoinHostPort(host, strconv.Itoa(port))},
		username: o.Username,
		password: o.Password,
		db:       o.DB,
	}, nil
}

// parseURL never quotes the raw URL or its userinfo in an error: a password with an
// unescaped '#', '/', '?' or '@' shifts the URL's parts, so any part may hold a piece of it.
func parseURL(raw string) (settings, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return settings{}, invalid("URL is not of the form redis://host:port or rediss://host:port")
	}
	var st settings
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		st.tls = true
	default:
		if strings.ContainsAny(scheme, ":@/") {
			scheme = "?"
		}
		return settings{}, invalid("URL scheme %q is not redis:// or rediss://", scheme)
	}
	if strings.Contains(raw, "#") {
		return settings{}, invalid("URL contains '#' (percent-encode it as %%23 in the password)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return settings{}, invalid("URL cannot be parsed as %s://[user[:password]@]host[:port][/db] "+
			"(percent-encode special characters in the user and password)", scheme)
	}
	if u.User != nil {
		st.username = u.User.Username()
		st.password, _ = u.User.Password()
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = DefaultHost
	}
	if port == "" {
		port = strconv.Itoa(DefaultPort)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return settings{}, invalid("URL port is not a number in 1..65535")
	}
	st.addrs = []string{net.JoinHostPort(host, port)}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if st.db, err = strconv.Atoi(p); err != nil || st.db < 0 {
			return settings{}, invalid("URL path must be /<database number>")
		}
	}
	for name, values := range u.Query() {
		if name != "addr" {
			return settings{}, invalid("URL query parameter %q is not supported (only addr)", name)
		}
		for _, a := range values {
			h, p, err := net.SplitHostPort(a)
			if n, perr := strconv.Atoi(p); err != nil || h == "" || perr != nil || n < 1 || n > 65535 {
				return settings{}, invalid("URL addr %q is not host:port", a)
			}
			st.addrs = append(st.addrs, a)
		}
	}
	return st, nil
}

// ClientOption validates o and returns the rueidis options for it, with client-side caching
// off (its invalidations arrive after keyspace notifications, so reads right after an event
// could be stale).
func (o Options) ClientOption() (rueidis.ClientOption, error) {
	st, err := o.resolve()
	if err != nil {
		return rueidis.ClientOption{}, err
	}
	opt := rueidis.ClientOption{
		InitAddress:  st.addrs,
		Username:     st.username,
		Password:     st.password,
		SelectDB:     st.db,
		ClientName:   o.ClientName,
		DisableCache: true,
	}
	switch {
	case st.tls:
		if opt.TLSConfig, err = tlsConfig(o.CAFile); err != nil {
			return rueidis.ClientOption{}, err
		}
	case o.CAFile != "":
		return rueidis.ClientOption{}, invalid("CAFile %s is set but the connection is not TLS (use a rediss:// URL)", o.CAFile)
	}
	return opt, nil
}

// Settings of a Light client. rueidis sizes each connection for heavy pipelining: a ring of
// 1,024 commands in flight (about 0.3 MiB of resident memory, allocated and initialised when
// the connection opens), 512 KiB read and write buffers, and up to four connections per node
// on a single Redis.
const (
	// LightRingScale makes a ring of 2^6 = 64 commands in flight per connection; a caller
	// finding it full waits for a reply, it is not refused.
	LightRingScale = 6
	// LightBuffer is the read and write buffer of each connection. Larger values and replies
	// pass through it in several reads or writes; nothing is cut.
	LightBuffer = 64 << 10
)

// Light returns co for a client that has a few commands in flight at a time, such as a
// key-mode function's (a read, a transaction, a lease renewal, a health PING) or the one its
// subscriptions use: one connection per node, LightRingScale and LightBuffer. What that saves
// and costs is measured in docs/performance.md. Stream consumers and pattern functions, which
// pipeline many commands at once, keep rueidis' defaults.
func Light(co rueidis.ClientOption) rueidis.ClientOption {
	co.PipelineMultiplex = -1 // one connection per node; rueidis' default follows GOMAXPROCS
	co.RingScaleEachConn = LightRingScale
	co.ReadBufferEachConn = LightBuffer
	co.WriteBufferEachConn = LightBuffer
	return co
}

// tlsConfig trusts the system's store plus caFile. ServerName stays empty so that every node
// (of a cluster, too) is verified against the host it is dialled at.
func tlsConfig(caFile string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, invalid("CAFile: %v", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalid("CAFile %s holds no PEM certificate", caFile)
		}
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Redacted describes o for logs: scheme, user, address(es) and database, with the password
// replaced by "xxxxx". Options that do not validate are described as far as possible.
func (o Options) Redacted() string {
	st, err := o.resolve()
	if err != nil {
		return "<invalid redis settings>"
	}
	u := url.URL{Scheme: "redis", Host: st.addrs[0], Path: "/" + strconv.Itoa(st.db)}
	if st.tls {
		u.Scheme = "rediss"
	}
	switch {
	case st.password != "":
		u.User = url.UserPassword(st.username, "xxxxx")
	case st.username != "":
		u.User = url.User(st.username)
	}
	if len(st.addrs) > 1 {
		u.RawQuery = url.Values{"addr": st.addrs[1:]}.Encode()
	}
	return u.String()
}

// New validates o and connects. rueidis.NewClient dials at once, so an unreachable server, a
// TLS failure or rejected credentials are reported here, with the redacted settings.
func New(o Options) (rueidis.Client, error) {
	opt, err := o.ClientOption()
	if err != nil {
		return nil, err
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.Redacted(), scrub(err, opt.Password))
	}
	return c, nil
}

// scrub guards against a dependency quoting the password back in an error message.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}
