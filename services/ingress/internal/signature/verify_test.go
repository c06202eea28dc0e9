package signature_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cosell/cosell/services/ingress/internal/signature"
	"github.com/cosell/cosell/services/ingress/internal/signature/signaturetest"
)

var body = []byte(`{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/abc","ResourceName":"referral","AuditUri":null,"ResourceChangeUtcDate":"2018-02-17T00:05:39.5485487+00:00"}`)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type fixture struct {
	ca      *signaturetest.CA
	signer  *signaturetest.Signer
	fetcher *signaturetest.Fetcher
	clock   *clock
	v       *signature.Verifier
}

func newFixture(t *testing.T, policy signature.URLPolicy) *fixture {
	t.Helper()
	ca := signaturetest.NewCA(t, signaturetest.Organization)
	f := &fixture{
		ca:      ca,
		signer:  ca.Issue(t, signaturetest.LeafOptions{}),
		fetcher: signaturetest.NewFetcher(),
		clock:   &clock{t: time.Now()},
	}
	if policy.Hosts == nil {
		policy.Hosts = signature.DefaultCertHosts()
	}
	store, err := signature.NewCertStore(signature.CertStoreConfig{
		Fetcher:      f.fetcher,
		Roots:        ca.Pool(),
		Organization: signaturetest.Organization,
		Now:          f.clock.Now,
	})
	if err != nil {
		t.Fatalf("NewCertStore: %v", err)
	}
	f.v = signature.NewVerifier(policy, store)
	f.fetcher.Serve(signaturetest.CertURL, f.signer.DER)
	return f
}

func TestVerify(t *testing.T) {
	const evilURL = "https://evil.example.com/cert/pcnotifications-dispatch.microsoft.com.cer"
	const httpURL = "http://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer"
	tests := []struct {
		name string
		// prepare returns the headers and body to verify.
		prepare   func(t *testing.T, f *fixture) (http.Header, []byte)
		policy    signature.URLPolicy
		want      error
		wantFetch int64
	}{
		{
			name: "good signature in Authorization",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				return f.signer.Headers(t, body, signaturetest.CertURL), body
			},
			wantFetch: 1,
		},
		{
			name: "x-ms-signature header mode",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Set("x-ms-signature", h.Get("Authorization"))
				h.Del("Authorization")
				return h, body
			},
			wantFetch: 1,
		},
		{
			name: "algorithm header in upper case",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Set("x-ms-signature-algorithm", "RSA-SHA256")
				return h, body
			},
			wantFetch: 1,
		},
		{
			name: "tampered body",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				tampered := append([]byte(nil), body...)
				tampered[len(tampered)-3] = '1'
				return h, tampered
			},
			want:      signature.ErrBadSignature,
			wantFetch: 1,
		},
		{
			name: "signed with another key",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				other := f.ca.Issue(t, signaturetest.LeafOptions{})
				return f.signer.WithKeyOf(other).Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrBadSignature,
			wantFetch: 1,
		},
		{
			name: "garbage signature",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Set("Authorization", "Signature not*base64")
				return h, body
			},
			want: signature.ErrBadSignature,
		},
		{
			name: "untrusted host is never fetched",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				f.fetcher.Serve(evilURL, f.signer.DER)
				return f.signer.Headers(t, body, evilURL), body
			},
			want: signature.ErrUntrustedCertURL,
		},
		{
			name: "allowed host on another port is never fetched",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				return f.signer.Headers(t, body, "https://3psostorageacct.blob.core.windows.net:8443/cert/x.cer"), body
			},
			want: signature.ErrUntrustedCertURL,
		},
		{
			name: "http URL refused by default",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				f.fetcher.Serve(httpURL, f.signer.DER)
				return f.signer.Headers(t, body, httpURL), body
			},
			want: signature.ErrUntrustedCertURL,
		},
		{
			name:   "http URL accepted when allowed",
			policy: signature.URLPolicy{Hosts: signature.DefaultCertHosts(), AllowHTTP: true},
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				f.fetcher.Serve(httpURL, f.signer.DER)
				return f.signer.Headers(t, body, httpURL), body
			},
			wantFetch: 1,
		},
		{
			name:   "configured emulator host with port",
			policy: signature.URLPolicy{Hosts: []string{"127.0.0.1:8081"}, AllowHTTP: true},
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				u := "http://127.0.0.1:8081/cert/pcnotifications-dispatch.microsoft.com.cer"
				f.fetcher.Serve(u, f.signer.DER)
				return f.signer.Headers(t, body, u), body
			},
			wantFetch: 1,
		},
		{
			name: "file URL refused",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				return f.signer.Headers(t, body, "file:///etc/passwd"), body
			},
			want: signature.ErrUntrustedCertURL,
		},
		{
			name: "chain to an unknown CA",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				rogue := signaturetest.NewCA(t, signaturetest.Organization).Issue(t, signaturetest.LeafOptions{})
				f.fetcher.Serve(signaturetest.CertURL, rogue.DER)
				return rogue.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "wrong subject organisation",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				s := f.ca.Issue(t, signaturetest.LeafOptions{Organization: "Contoso Ltd"})
				f.fetcher.Serve(signaturetest.CertURL, s.DER)
				return s.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "wrong issuer organisation",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				// A trusted root that is not Microsoft's issued it.
				other := signaturetest.NewCA(t, "Contoso Ltd")
				f.v = rebuild(t, f, other)
				s := other.Issue(t, signaturetest.LeafOptions{})
				f.fetcher.Serve(signaturetest.CertURL, s.DER)
				return s.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "expired certificate",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				s := f.ca.Issue(t, signaturetest.LeafOptions{
					NotBefore: time.Now().Add(-48 * time.Hour),
					NotAfter:  time.Now().Add(-time.Hour),
				})
				f.fetcher.Serve(signaturetest.CertURL, s.DER)
				return s.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "key usage without digital signature",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				s := f.ca.Issue(t, signaturetest.LeafOptions{KeyUsage: x509.KeyUsageKeyEncipherment})
				f.fetcher.Serve(signaturetest.CertURL, s.DER)
				return s.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "RSA key too small",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				s := f.ca.Issue(t, signaturetest.LeafOptions{Bits: 1024})
				f.fetcher.Serve(signaturetest.CertURL, s.DER)
				return s.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "certificate URL serves garbage",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				f.fetcher.Serve(signaturetest.CertURL, []byte("<html>not a certificate</html>"))
				return f.signer.Headers(t, body, signaturetest.CertURL), body
			},
			want:      signature.ErrCertificate,
			wantFetch: 1,
		},
		{
			name: "missing signature",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Del("Authorization")
				return h, body
			},
			want: signature.ErrMissingHeader,
		},
		{
			name: "Authorization with another scheme",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Set("Authorization", "Bearer "+f.signer.Sign(t, body))
				return h, body
			},
			want: signature.ErrMissingHeader,
		},
		{
			name: "missing certificate URL",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Del("x-ms-certificate-url")
				return h, body
			},
			want: signature.ErrMissingHeader,
		},
		{
			name: "missing algorithm",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Del("x-ms-signature-algorithm")
				return h, body
			},
			want: signature.ErrMissingHeader,
		},
		{
			name: "unsupported algorithm",
			prepare: func(t *testing.T, f *fixture) (http.Header, []byte) {
				h := f.signer.Headers(t, body, signaturetest.CertURL)
				h.Set("x-ms-signature-algorithm", "rsa-sha1")
				return h, body
			},
			want: signature.ErrMissingHeader,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.policy)
			h, b := tc.prepare(t, f)
			err := f.v.Verify(context.Background(), h, b)
			if tc.want == nil && err != nil {
				t.Fatalf("Verify: %v, want success", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if got := f.fetcher.Calls(); got != tc.wantFetch {
				t.Errorf("fetcher called %d times, want %d", got, tc.wantFetch)
			}
		})
	}
}

// rebuild returns a verifier for f that trusts roots instead of f.ca.
func rebuild(t *testing.T, f *fixture, root *signaturetest.CA) *signature.Verifier {
	t.Helper()
	store, err := signature.NewCertStore(signature.CertStoreConfig{
		Fetcher:      f.fetcher,
		Roots:        root.Pool(),
		Organization: signaturetest.Organization,
		Now:          f.clock.Now,
	})
	if err != nil {
		t.Fatalf("NewCertStore: %v", err)
	}
	return signature.NewVerifier(signature.URLPolicy{Hosts: signature.DefaultCertHosts()}, store)
}

func TestCertificateIsCachedAndBurstFetchesOnce(t *testing.T) {
	f := newFixture(t, signature.URLPolicy{})
	f.fetcher.Block = make(chan struct{})
	h := f.signer.Headers(t, body, signaturetest.CertURL)

	const burst = 20
	errs := make(chan error, burst)
	for range burst {
		go func() { errs <- f.v.Verify(context.Background(), h, body) }()
	}
	close(f.fetcher.Block) // let the single download finish
	for range burst {
		if err := <-errs; err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if err := f.v.Verify(context.Background(), h, body); err != nil {
		t.Fatalf("Verify after the burst: %v", err)
	}
	if got := f.fetcher.Calls(); got != 1 {
		t.Fatalf("fetcher called %d times, want 1", got)
	}
}

func TestCacheHonoursNotAfter(t *testing.T) {
	f := newFixture(t, signature.URLPolicy{})
	start := time.Now()
	short := f.ca.Issue(t, signaturetest.LeafOptions{NotAfter: start.Add(time.Hour)})
	f.fetcher.Serve(signaturetest.CertURL, short.DER)
	h := short.Headers(t, body, signaturetest.CertURL)

	if err := f.v.Verify(context.Background(), h, body); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	f.clock.Set(start.Add(30 * time.Minute))
	if err := f.v.Verify(context.Background(), h, body); err != nil {
		t.Fatalf("Verify within validity: %v", err)
	}
	if got := f.fetcher.Calls(); got != 1 {
		t.Fatalf("fetcher called %d times within validity, want 1", got)
	}
	f.clock.Set(start.Add(2 * time.Hour))
	if err := f.v.Verify(context.Background(), h, body); !errors.Is(err, signature.ErrCertificate) {
		t.Fatalf("Verify after NotAfter: %v, want ErrCertificate", err)
	}
	if got := f.fetcher.Calls(); got != 2 {
		t.Fatalf("fetcher called %d times, want 2 (the cached copy expired)", got)
	}
}

func TestRenewedCertificateAtSameURLIsPickedUp(t *testing.T) {
	f := newFixture(t, signature.URLPolicy{})
	start := f.clock.Now()
	if err := f.v.Verify(context.Background(), f.signer.Headers(t, body, signaturetest.CertURL), body); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	renewed := f.ca.Issue(t, signaturetest.LeafOptions{})
	f.fetcher.Serve(signaturetest.CertURL, renewed.DER)
	h := renewed.Headers(t, body, signaturetest.CertURL)

	// A mismatch right after a download does not download again, so
	// unsigned floods cannot make ingress hammer the certificate host.
	if err := f.v.Verify(context.Background(), h, body); !errors.Is(err, signature.ErrBadSignature) {
		t.Fatalf("Verify with a fresh cache: %v, want ErrBadSignature", err)
	}
	if got := f.fetcher.Calls(); got != 1 {
		t.Fatalf("fetcher called %d times, want 1", got)
	}
	f.clock.Set(start.Add(10 * time.Minute))
	if err := f.v.Verify(context.Background(), h, body); err != nil {
		t.Fatalf("Verify after renewal: %v", err)
	}
	if got := f.fetcher.Calls(); got != 2 {
		t.Fatalf("fetcher called %d times, want 2", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	f := newFixture(t, signature.URLPolicy{})
	store, err := signature.NewCertStore(signature.CertStoreConfig{
		Fetcher:      f.fetcher,
		Roots:        f.ca.Pool(),
		Organization: signaturetest.Organization,
		MaxEntries:   1,
	})
	if err != nil {
		t.Fatalf("NewCertStore: %v", err)
	}
	v := signature.NewVerifier(signature.URLPolicy{Hosts: signature.DefaultCertHosts()}, store)
	other := "https://3psostorageacct.blob.core.windows.net/cert/other.cer"
	f.fetcher.Serve(other, f.signer.DER)
	for _, u := range []string{signaturetest.CertURL, other, signaturetest.CertURL} {
		if err := v.Verify(context.Background(), f.signer.Headers(t, body, u), body); err != nil {
			t.Fatalf("Verify %s: %v", u, err)
		}
	}
	if got := f.fetcher.Calls(); got != 3 {
		t.Fatalf("fetcher called %d times, want 3 (one entry evicts the other)", got)
	}
}
