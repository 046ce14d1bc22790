package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// TLSFiles is a throwaway PKI for one test: a self-signed CA, a server certificate for
// 127.0.0.1, ::1 and localhost, and a client certificate for mutual TLS, all signed by the CA
// and written as PEM files in a temporary directory.
type TLSFiles struct {
	CAFile   string // the CA certificate
	CertFile string // the server certificate
	KeyFile  string // the server key (PKCS #8)
	// ClientCertFile and ClientKeyFile are a client certificate and key signed by the CA.
	ClientCertFile, ClientKeyFile string
	// Config trusts only the CA and presents no client certificate. Clone it before changing it.
	Config *tls.Config
	// ClientCert is the client certificate, for tls-auth-clients yes; see MutualConfig.
	ClientCert tls.Certificate
}

// MutualConfig returns a client configuration that trusts the CA and presents ClientCert.
func (f *TLSFiles) MutualConfig() *tls.Config {
	c := f.Config.Clone()
	c.Certificates = []tls.Certificate{f.ClientCert}
	return c
}

// ClientOption returns rueidis options for a TLS server at addr trusting the CA (no client
// certificate), with client-side caching off.
func (f *TLSFiles) ClientOption(addr string) rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, TLSConfig: f.Config.Clone()}
}

// NewTLSFiles generates a CA, a server and a client certificate in a temporary directory of t.
func NewTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	f, err := newTLSFiles(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: generate TLS files: %v", err)
	}
	return f
}

func newTLSFiles(dir string) (*TLSFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, ca, err := sign(caTmpl, caKey, nil, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	f := &TLSFiles{
		CAFile:         filepath.Join(dir, "ca.crt"),
		CertFile:       filepath.Join(dir, "server.crt"),
		KeyFile:        filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
	}
	if err := writePEM(f.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, certFile, keyFile string) (tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, _, err := sign(tmpl, key, ca, caKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("%s certificate: %w", cn, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
	}
	if _, err := leaf("redistest server", x509.ExtKeyUsageServerAuth, f.CertFile, f.KeyFile); err != nil {
		return nil, err
	}
	if f.ClientCert, err = leaf("redistest client", x509.ExtKeyUsageClientAuth, f.ClientCertFile, f.ClientKeyFile); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	f.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return f, nil
}

// sign creates a certificate from tmpl for key, signed by parent (self-signed if nil).
func sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func writePEM(path, kind string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// StartTLS starts a redis-server that accepts only TLS connections (port 0, tls-port on a free
// loopback port, which is Server.Port and Server.Addr) with certificates from NewTLSFiles and
// tls-auth-clients no; pass `tls-auth-clients yes` to require client certificates (use
// TLSFiles.MutualConfig then). Extra directives come last and win.
//
// The Server's own client helpers (Do, Client, ClientOption, Stop, Restart) speak TLS to it,
// trusting the generated CA.
func StartTLS(t testing.TB, directives ...string) (*Server, *TLSFiles) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs redis-server (skipped with -short)")
	}
	Binary(t)
	f := NewTLSFiles(t)
	s := &Server{t: t, Dir: t.TempDir(), TLS: f.Config}
	base := append([]string{
		"tls-cert-file " + f.CertFile,
		"tls-key-file " + f.KeyFile,
		"tls-ca-cert-file " + f.CAFile,
		"tls-auth-clients no",
	}, directives...)
	err := launch(s, base, func(port int) ([]string, error) {
		// "port 0" overrides the plaintext port line that Server writes first.
		return []string{"port 0", "tls-port " + strconv.Itoa(port)}, nil
	})
	t.Cleanup(s.Kill)
	if err != nil {
		t.Fatalf("redistest: start TLS redis-server: %v", err)
	}
	return s, f
}
