// Package signaturetest builds the certificates and signed requests that
// tests of Partner Center webhook verification need: a CA, a signing
// certificate issued by it, a fake certificate server, and signature
// headers over a body. It is imported only by tests.
package signaturetest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosell/cosell/services/ingress/internal/signature"
)

// Organization is Microsoft's organisation name, which verification
// requires by default.
const Organization = "Microsoft Corporation"

// CertURL is the certificate URL Partner Center documents.
const CertURL = "https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer"

// CA is a test certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *rsa.PrivateKey
}

// NewCA returns a self-signed CA whose subject organisation is org.
func NewCA(t testing.TB, org string) *CA {
	t.Helper()
	key := newKey(t, 2048)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test Root", Organization: []string{org}},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing CA: %v", err)
	}
	return &CA{Cert: cert, key: key}
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// LeafOptions varies the signing certificate a CA issues.
type LeafOptions struct {
	// Organization of the subject; "" means Organization.
	Organization string
	// NotBefore and NotAfter; zero means an hour ago and a year from now.
	NotBefore, NotAfter time.Time
	// KeyUsage; zero means digital signature and key encipherment.
	KeyUsage x509.KeyUsage
	// Bits of the RSA key; zero means 2048.
	Bits int
}

// Signer is a signing certificate, its DER encoding and private key.
type Signer struct {
	Cert *x509.Certificate
	DER  []byte
	key  *rsa.PrivateKey
}

// Issue returns a signing certificate issued by ca.
func (ca *CA) Issue(t testing.TB, o LeafOptions) *Signer {
	t.Helper()
	if o.Organization == "" {
		o.Organization = Organization
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	if o.KeyUsage == 0 {
		o.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	if o.Bits == 0 {
		o.Bits = 2048
	}
	key := newKey(t, o.Bits)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "pcnotifications-dispatch.microsoft.com", Organization: []string{o.Organization}},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     o.KeyUsage,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issuing leaf: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing leaf: %v", err)
	}
	return &Signer{Cert: cert, DER: der, key: key}
}

// WithKeyOf returns a signer presenting s's certificate but signing with
// other's key, i.e. a forger who copied the public certificate.
func (s *Signer) WithKeyOf(other *Signer) *Signer {
	return &Signer{Cert: s.Cert, DER: s.DER, key: other.key}
}

// Sign returns the base64 RSA-SHA256 PKCS#1 v1.5 signature of body.
func (s *Signer) Sign(t testing.TB, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// Headers returns the headers Partner Center sends for body: the signature
// in Authorization, the certificate URL and the algorithm.
func (s *Signer) Headers(t testing.TB, body []byte, certURL string) http.Header {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Signature "+s.Sign(t, body))
	h.Set("x-ms-certificate-url", certURL)
	h.Set("x-ms-signature-algorithm", "rsa-sha256")
	return h
}

// Fetcher is a fake signature.Fetcher serving certificates from a map and
// counting calls. Safe for concurrent use.
type Fetcher struct {
	mu    sync.Mutex
	certs map[string][]byte
	calls atomic.Int64
	// Block, when not nil, is received from before answering, so tests can
	// hold a download in flight.
	Block chan struct{}
}

// NewFetcher returns a Fetcher serving nothing.
func NewFetcher() *Fetcher { return &Fetcher{certs: map[string][]byte{}} }

// Serve makes u answer with der.
func (f *Fetcher) Serve(u string, der []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs[u] = der
}

// Calls reports how many times Fetch ran.
func (f *Fetcher) Calls() int64 { return f.calls.Load() }

// Fetch implements signature.Fetcher.
func (f *Fetcher) Fetch(ctx context.Context, u *url.URL) ([]byte, error) {
	f.calls.Add(1)
	if f.Block != nil {
		select {
		case <-f.Block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	der, ok := f.certs[u.String()]
	if !ok {
		return nil, fmt.Errorf("%w: fake fetcher: nothing served at %s", signature.ErrCertificate, u)
	}
	return der, nil
}

func newKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("generating %d-bit key: %v", bits, err)
	}
	return key
}
