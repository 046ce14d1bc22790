package bundle

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FetchOptions configure the download of a ZIP_URL.
type FetchOptions struct {
	// Client downloads the archive; nil builds one from http.DefaultTransport's settings
	// (proxy from the environment included) and RootCAs.
	Client *http.Client
	// RootCAs replaces the CA pool used to verify the server; nil uses the system pool, which
	// honours SSL_CERT_FILE and SSL_CERT_DIR.
	RootCAs *x509.CertPool
	// Timeout bounds the whole download; DefaultFetchTimeout when zero.
	Timeout time.Duration
}

// DefaultFetchTimeout bounds a ZIP_URL download.
const DefaultFetchTimeout = 60 * time.Second

// maxRedirects matches net/http's own default.
const maxRedirects = 10

// parsePin normalises an optional SHA-256 pin to lower-case hex.
func parsePin(pin string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(pin))
	p = strings.TrimPrefix(p, "sha256:")
	if p == "" {
		return "", nil
	}
	if b, err := hex.DecodeString(p); err != nil || len(b) != 32 {
		return "", fmt.Errorf("bundle: sha256 pin %q: want 64 hex digits (the output of sha256sum)", pin)
	}
	return p, nil
}

// Redact returns raw without credentials, query and fragment, which may carry tokens
// (presigned URLs): what a log line or an error may show.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	q := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	s := u.String()
	if q {
		s += "?REDACTED"
	}
	return s
}

func fetch(ctx context.Context, raw string, allowHTTP bool, opts FetchOptions, lim Limits) ([]byte, string, error) {
	shown := Redact(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, shown, fmt.Errorf("bundle: URL %s cannot be parsed", shown)
	}
	if err := checkScheme(u, allowHTTP); err != nil {
		return nil, shown, fmt.Errorf("bundle %s: %w", shown, err)
	}
	client := &http.Client{}
	if opts.Client != nil {
		c := *opts.Client
		client = &c
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if opts.RootCAs != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
		}
		client.Transport = tr
	}
	prev := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if err := checkScheme(req.URL, allowHTTP); err != nil {
			return fmt.Errorf("redirect to %s: %w", Redact(req.URL.String()), err)
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, shown, fmt.Errorf("bundle %s: %w", shown, redactErr(err, shown))
	}
	req.Header.Set("User-Agent", "eventrt-bundle")
	resp, err := client.Do(req)
	if err != nil {
		return nil, shown, fmt.Errorf("bundle: download failed: %w", redactErr(err, shown))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, shown, fmt.Errorf("bundle %s: download failed: HTTP %s", shown, resp.Status)
	}
	if resp.ContentLength > lim.MaxArchiveBytes {
		return nil, shown, fmt.Errorf("bundle %s: %d bytes, limit %d: %w", shown, resp.ContentLength, lim.MaxArchiveBytes, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, lim.MaxArchiveBytes+1))
	if err != nil {
		return nil, shown, fmt.Errorf("bundle %s: download failed: %w", shown, redactErr(err, shown))
	}
	if int64(len(data)) > lim.MaxArchiveBytes {
		return nil, shown, fmt.Errorf("bundle %s: more than %d bytes: %w", shown, lim.MaxArchiveBytes, ErrTooLarge)
	}
	return data, shown, nil
}

func checkScheme(u *url.URL, allowHTTP bool) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowHTTP:
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("plain http is refused (use https, or allow http explicitly): %w", ErrInsecureURL)
	}
	return fmt.Errorf("scheme %q is not https: %w", u.Scheme, ErrInsecureURL)
}

// redactErr replaces the URL net/http puts in its errors, which would show credentials.
func redactErr(err error, shown string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		c := *ue
		c.URL = shown
		return &c
	}
	return err
}
