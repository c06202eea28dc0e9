package signature

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Fetcher downloads the bytes of a certificate URL that URLPolicy already
// allowed. Tests substitute a fake to assert it is never called for
// untrusted URLs.
type Fetcher interface {
	Fetch(ctx context.Context, u *url.URL) ([]byte, error)
}

// HTTPFetcher is the production Fetcher: one GET, no redirects (a redirect
// could lead off the allow-list), a timeout, and a size limit, so a hostile
// or broken server can neither stall verification nor exhaust memory.
type HTTPFetcher struct {
	client   *http.Client
	maxBytes int64
}

// NewHTTPFetcher returns a fetcher that gives up after timeout and refuses
// bodies larger than maxBytes. transport may be nil for the default one; it
// is where tests and TLS configuration plug in.
func NewHTTPFetcher(transport http.RoundTripper, timeout time.Duration, maxBytes int64) *HTTPFetcher {
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &HTTPFetcher{
		client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		maxBytes: maxBytes,
	}
}

// Fetch GETs u. Transport failures and 5xx wrap ErrCertUnavailable (the
// sender should retry); any other non-200 answer or an oversized body wraps
// ErrCertificate (the URL does not serve a certificate).
func (f *HTTPFetcher) Fetch(ctx context.Context, u *url.URL) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: building request: %v", ErrCertificate, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("%w: certificate host answered %d", ErrCertUnavailable, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: certificate host answered %d", ErrCertificate, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading certificate: %v", ErrCertUnavailable, err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, fmt.Errorf("%w: certificate larger than %d bytes", ErrCertificate, f.maxBytes)
	}
	return body, nil
}
