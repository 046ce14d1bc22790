package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

func TestStartTLSAcceptsOnlyTLSFromTheCA(t *testing.T) {
	t.Parallel()
	s, f := StartTLS(t)
	ctx := context.Background()

	c, err := rueidis.NewClient(f.ClientOption(s.Addr()))
	if err != nil {
		t.Fatalf("TLS client trusting the CA: %v", err)
	}
	defer c.Close()
	if got, err := c.Do(ctx, c.B().Ping().Build()).ToString(); err != nil || got != "PONG" {
		t.Fatalf("PING over TLS = %q, %v", got, err)
	}

	// The system roots do not know the test CA.
	_, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("TLS client without the CA: err = %v, want x509.UnknownAuthorityError", err)
	}

	// The port speaks TLS only: a plaintext client gets no RESP reply.
	_, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true,
		Dialer: net.Dialer{Timeout: 2 * time.Second}, ConnWriteTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("plaintext client connected to the TLS port")
	}
	t.Logf("plaintext client: %v", err)
}

func TestStartTLSMutual(t *testing.T) {
	t.Parallel()
	s, f := StartTLS(t, "tls-auth-clients yes")
	ctx := context.Background()

	// Without a client certificate the server aborts the handshake (with TLS 1.3 the client
	// sees it as a reset on its first write or read).
	if c, err := rueidis.NewClient(f.ClientOption(s.Addr())); err == nil {
		c.Close()
		t.Fatal("client without a certificate was accepted with tls-auth-clients yes")
	} else {
		t.Logf("client without a certificate: %v", err)
	}

	opt := f.ClientOption(s.Addr())
	opt.TLSConfig = f.MutualConfig()
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	defer c.Close()
	if got, err := c.Do(ctx, c.B().Ping().Build()).ToString(); err != nil || got != "PONG" {
		t.Fatalf("PING over mutual TLS = %q, %v", got, err)
	}
}

func TestNewTLSFilesVerify(t *testing.T) {
	f := NewTLSFiles(t)
	server, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatalf("load server pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: f.Config.RootCAs}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: f.Config.RootCAs}); err == nil {
		t.Error("server certificate verified for example.com")
	}
	if _, err := tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile); err != nil {
		t.Fatalf("load client pair: %v", err)
	}
}
