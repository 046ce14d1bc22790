package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func deflated(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawZip writes one entry whose header says what the test wants, whatever the data is.
func rawZip(t *testing.T, fh *zip.FileHeader, compressed []byte, extra ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(fh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(compressed); err != nil {
		t.Fatal(err)
	}
	for _, n := range extra {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func loadZipBytes(t *testing.T, data []byte, lim Limits) error {
	t.Helper()
	p := writeFile(t, filepath.Join(t.TempDir(), "b.zip"), data)
	_, err := load(t, Source{Path: p, Limits: lim})
	return err
}

func TestRefusedArchives(t *testing.T) {
	zeros := make([]byte, 8<<20)
	zeroDeflated := deflated(t, zeros)
	zeroCRC := crc32.ChecksumIEEE(zeros)
	symlinkHeader := &zip.FileHeader{Name: "m/link.expr", Method: zip.Store}
	symlinkHeader.SetMode(fs.ModeSymlink | 0o777)

	manyNames := make([]string, 12)
	manyContents := make([]string, 12)
	for i := range manyNames {
		manyNames[i] = "m/f" + strings.Repeat("x", i) + ".expr"
		manyContents[i] = "1"
	}

	for name, tc := range map[string]struct {
		data   []byte
		lim    Limits
		target error
		want   string
	}{
		"traversal": {
			data: zipOf(t, []string{"m/f.expr", "../../etc/cron.d/evil.expr"}, []string{"1", "1"}), target: ErrUnsafePath,
			want: "../../etc/cron.d/evil.expr",
		},
		"traversal inside": {
			data: zipOf(t, []string{"m/../../x.expr"}, []string{"1"}), target: ErrUnsafePath, want: "m/../../x.expr",
		},
		"absolute path": {
			data: zipOf(t, []string{"/etc/evil.expr"}, []string{"1"}), target: ErrUnsafePath, want: "/etc/evil.expr",
		},
		"backslash": {
			data: zipOf(t, []string{`..\evil.expr`}, []string{"1"}), target: ErrUnsafePath, want: `evil.expr`,
		},
		"symlink entry": {
			data: rawZip(t, symlinkHeader, []byte("/etc/passwd")), target: ErrUnsafePath, want: "m/link.expr",
		},
		"too many entries": {
			data: zipOf(t, manyNames, manyContents), lim: Limits{MaxEntries: 10}, target: ErrTooManyEntries, want: "12 entries, limit 10",
		},
		"archive too large": {
			data: zipOf(t, []string{"m/f.expr"}, []string{incompressible(4096)}), lim: Limits{MaxArchiveBytes: 1024},
			target: ErrTooLarge, want: "more than 1024 bytes",
		},
		"file too large": {
			// Stored, not compressed: large but no bomb.
			data: rawZip(t, &zip.FileHeader{Name: "m/f.expr", Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(strings.Repeat("x", 4096))),
				CompressedSize64: 4096, UncompressedSize64: 4096}, []byte(strings.Repeat("x", 4096))),
			lim: Limits{MaxFileBytes: 1000}, target: ErrTooLarge, want: `"m/f.expr"`,
		},
		"bomb by ratio": {
			// 8 MiB of zeros in a few KiB; the header is honest but within the file limit.
			data: rawZip(t, &zip.FileHeader{Name: "m/f.expr", Method: zip.Deflate, CRC32: zeroCRC,
				CompressedSize64: uint64(len(zeroDeflated)), UncompressedSize64: uint64(len(zeros))}, zeroDeflated),
			lim: Limits{MaxFileBytes: 16 << 20}, target: ErrBomb, want: "expands more than 100 times",
		},
		"bomb over the total": {
			data: rawZip(t, &zip.FileHeader{Name: "m/f.expr", Method: zip.Deflate, CRC32: zeroCRC,
				CompressedSize64: uint64(len(zeroDeflated)), UncompressedSize64: uint64(len(zeros))}, zeroDeflated),
			lim: Limits{MaxTotalBytes: 1 << 20, MaxFileBytes: 16 << 20}, target: ErrBomb, want: "declare more than",
		},
		"bomb declared": {
			// Default limits: the header is honest and says it all.
			data: rawZip(t, &zip.FileHeader{Name: "m/f.expr", Method: zip.Deflate, CRC32: zeroCRC,
				CompressedSize64: uint64(len(zeroDeflated)), UncompressedSize64: uint64(len(zeros))}, zeroDeflated),
			target: ErrBomb, want: "declares 8388608 bytes from",
		},
		"bomb with a lying header": {
			// The header declares 10 bytes; the data inflates to 8 MiB.
			data: rawZip(t, &zip.FileHeader{Name: "m/f.expr", Method: zip.Deflate, CRC32: 0,
				CompressedSize64: uint64(len(zeroDeflated)), UncompressedSize64: 10}, zeroDeflated),
			target: ErrBomb, want: "beyond the 10 bytes its header declares",
		},
		"bomb in an ignored file": {
			data: rawZip(t, &zip.FileHeader{Name: "assets/blob.bin", Method: zip.Deflate, CRC32: zeroCRC,
				CompressedSize64: uint64(len(zeroDeflated)), UncompressedSize64: 1 << 40}, zeroDeflated, "m.expr"),
			target: ErrBomb, want: "declare more than",
		},
		"duplicate entries": {
			data: zipOf(t, []string{"m/f.expr", "m/f.expr"}, []string{"1", "2"}), target: ErrInvalid, want: "appears twice",
		},
		"not a zip": {
			data: []byte("PK\x03\x04 truncated"), target: nil, want: "not a readable zip archive",
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := loadZipBytes(t, tc.data, tc.lim)
			if err == nil {
				t.Fatal("archive accepted")
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Fatalf("want %v, got %v", tc.target, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if tc.target != nil && tc.target != ErrInvalid && !IsRefused(err) {
				t.Fatalf("IsRefused(%v) = false", err)
			}
		})
	}
}

// incompressible returns n bytes of hex-free noise that deflate cannot shrink.
func incompressible(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return string(b)
}

// A small repetitive file expands far more than MaxRatio but stays under the 1 MiB floor.
func TestSmallRepetitiveEntryAccepted(t *testing.T) {
	data := zipOf(t, []string{"m.expr", "m.test.yaml"}, []string{"1", "cases: []\n#" + strings.Repeat(" ", 500<<10)})
	if err := loadZipBytes(t, data, Limits{}); err != nil {
		t.Fatalf("refused: %v", err)
	}
}

// tlsServer serves data at /b.zip over https on 127.0.0.1.
func tlsServer(t *testing.T, data []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/b.zip":
			w.Write(data)
		case "/to-http":
			http.Redirect(w, r, "http://127.0.0.1:1/b.zip", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	// Handshakes the tests make fail on purpose would be logged.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func rootsOf(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

func TestZipURL(t *testing.T) {
	data := zipMap(t, map[string]string{"metrics/classic.expr": "input", "handler_module.expr": "1"})
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	srv := tlsServer(t, data)
	fetch := FetchOptions{RootCAs: rootsOf(srv)}

	b := mustLoad(t, Source{URL: srv.URL + "/b.zip", Fetch: fetch})
	if b.Form != FormURL || b.SHA256 != digest || len(b.Functions) != 2 {
		t.Fatalf("form %q sha %q functions %v", b.Form, b.SHA256, b.Names())
	}
	if _, err := load(t, Source{URL: srv.URL + "/b.zip", SHA256: digest, Fetch: fetch}); err != nil {
		t.Fatalf("matching pin refused: %v", err)
	}
	_, err := load(t, Source{URL: srv.URL + "/b.zip", SHA256: strings.Repeat("f", 64), Fetch: fetch})
	if !IsChecksum(err) {
		t.Fatalf("mismatching pin: want ErrChecksum, got %v", err)
	}

	// Without the test CA the server is not trusted: verification is really on.
	_, err = load(t, Source{URL: srv.URL + "/b.zip"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server accepted or odd error: %v", err)
	}

	_, err = load(t, Source{URL: srv.URL + "/missing.zip", Fetch: fetch})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}

	_, err = load(t, Source{URL: srv.URL + "/b.zip", Fetch: fetch, Limits: Limits{MaxArchiveBytes: 100}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized download: %v", err)
	}

	_, err = load(t, Source{URL: srv.URL + "/to-http", Fetch: fetch})
	if !errors.Is(err, ErrInsecureURL) {
		t.Fatalf("redirect to http: want ErrInsecureURL, got %v", err)
	}
}

func TestZipURLSecretsNotInErrors(t *testing.T) {
	srv := tlsServer(t, nil)
	raw := strings.Replace(srv.URL, "https://", "https://user:hunter2@", 1) + "/missing.zip?X-Amz-Signature=topsecret"
	_, err := load(t, Source{URL: raw, Fetch: FetchOptions{RootCAs: rootsOf(srv)}})
	if err == nil {
		t.Fatal("404 accepted")
	}
	for _, secret := range []string{"hunter2", "topsecret", "user"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q shows %q", err, secret)
		}
	}
	// A transport error (nothing listens) goes through net/http's url.Error, which quotes
	// the URL.
	_, err = load(t, Source{URL: "https://user:hunter2@127.0.0.1:1/b.zip?sig=topsecret"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("transport error shows a secret or is nil: %v", err)
	}
}

func TestZipURLPlainHTTP(t *testing.T) {
	data := zipMap(t, map[string]string{"m.expr": "1"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	t.Cleanup(srv.Close)
	_, err := load(t, Source{URL: srv.URL + "/b.zip"})
	if !errors.Is(err, ErrInsecureURL) {
		t.Fatalf("want ErrInsecureURL, got %v", err)
	}
	if _, err := load(t, Source{URL: "ftp://127.0.0.1/b.zip"}); !errors.Is(err, ErrInsecureURL) {
		t.Fatalf("ftp: want ErrInsecureURL, got %v", err)
	}
	if _, err := load(t, Source{URL: srv.URL + "/b.zip", AllowHTTP: true}); err != nil {
		t.Fatalf("http with AllowHTTP: %v", err)
	}
}

// TestZipURLWithSSLCertFile proves that the default client honours SSL_CERT_FILE, as a
// container with a private CA relies on. Go reads the variable once per process, so the
// load runs in a child process (this test binary, re-entered below).
func TestZipURLWithSSLCertFile(t *testing.T) {
	if os.Getenv("BUNDLE_TEST_CHILD_URL") != "" {
		return
	}
	data := zipMap(t, map[string]string{"metrics/classic.expr": "input"})
	srv := tlsServer(t, data)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	run := func(extraEnv ...string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSSLCertFileChild$", "-test.v")
		cmd.Env = append(os.Environ(), append([]string{"BUNDLE_TEST_CHILD_URL=" + srv.URL + "/b.zip"}, extraEnv...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("SSL_CERT_FILE=" + ca)
	if err != nil || !strings.Contains(out, "loaded metrics.classic") {
		t.Fatalf("with SSL_CERT_FILE: %v\n%s", err, out)
	}
	out, err = run("SSL_CERT_FILE=" + filepath.Join(t.TempDir(), "empty.pem"))
	if err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("without the CA the child should fail on the certificate: %v\n%s", err, out)
	}
}

// TestSSLCertFileChild is the child of TestZipURLWithSSLCertFile; alone it does nothing.
func TestSSLCertFileChild(t *testing.T) {
	u := os.Getenv("BUNDLE_TEST_CHILD_URL")
	if u == "" {
		t.Skip("child of TestZipURLWithSSLCertFile")
	}
	b, err := load(t, Source{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %s", strings.Join(b.Names(), ","))
}
