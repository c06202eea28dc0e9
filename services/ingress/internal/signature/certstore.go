package signature

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// minRSABits is the smallest signing key accepted. Microsoft's certificates
// use 2048-bit keys; anything smaller is forgeable in practice.
const minRSABits = 2048

// CertStoreConfig configures a CertStore.
type CertStoreConfig struct {
	// Fetcher downloads certificates; required.
	Fetcher Fetcher
	// Roots are the trust anchors; nil means the system roots.
	Roots *x509.CertPool
	// Organization must appear as O= in both the certificate's subject and
	// its issuer (Microsoft's sample checks the issuer; hardened receivers
	// also pin the subject). Required.
	Organization string
	// MaxEntries bounds the cache (default 16). Partner Center uses one
	// certificate URL, so a handful is plenty; the bound keeps a flood of
	// distinct allowed URLs from growing memory.
	MaxEntries int
	// MaxAge is how long a certificate is trusted from the cache before it
	// is downloaded again even if it has not expired (default 24h), so a
	// certificate renewed at the same URL is picked up.
	MaxAge time.Duration
	// RefreshAfter is the minimum age of a cached certificate before a
	// signature mismatch may trigger a fresh download (default 1m). It bounds
	// how often unsigned requests can make ingress re-download.
	RefreshAfter time.Duration
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

// CertStore hands out validated signing certificates by URL, caching them
// until the earlier of NotAfter and MaxAge. It is safe for concurrent use.
type CertStore struct {
	cfg   CertStoreConfig
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element // url -> element holding *cachedCert
	lru     *list.List               // front = most recently used
}

// cachedCert is a validated certificate and when it stops being trusted
// from the cache.
type cachedCert struct {
	url       string
	cert      *x509.Certificate
	key       *rsa.PublicKey
	fetchedAt time.Time
	expires   time.Time
}

// NewCertStore checks cfg and returns an empty store.
func NewCertStore(cfg CertStoreConfig) (*CertStore, error) {
	if cfg.Fetcher == nil {
		return nil, fmt.Errorf("signature: a Fetcher is required")
	}
	if cfg.Organization == "" {
		return nil, fmt.Errorf("signature: a required organisation is required")
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 16
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.RefreshAfter <= 0 {
		cfg.RefreshAfter = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &CertStore{cfg: cfg, entries: map[string]*list.Element{}, lru: list.New()}, nil
}

// get returns the certificate for u from the cache or downloads and
// validates it. A burst of requests for an uncached URL downloads once.
func (s *CertStore) get(ctx context.Context, u *url.URL) (*cachedCert, error) {
	key := u.String()
	if c := s.lookup(key); c != nil {
		return c, nil
	}
	return s.fetch(ctx, key, u)
}

// refresh downloads u again after a signature mismatch, unless the cached
// certificate is younger than RefreshAfter (then the mismatch stands). It
// returns nil, nil when no newer certificate is worth trying.
func (s *CertStore) refresh(ctx context.Context, u *url.URL, stale *cachedCert) (*cachedCert, error) {
	if s.cfg.Now().Sub(stale.fetchedAt) < s.cfg.RefreshAfter {
		return nil, nil
	}
	s.mu.Lock()
	if el, ok := s.entries[stale.url]; ok && el.Value.(*cachedCert) == stale {
		s.removeLocked(el)
	}
	s.mu.Unlock()
	c, err := s.get(ctx, u)
	if err != nil {
		return nil, err
	}
	if c == stale {
		return nil, nil
	}
	return c, nil
}

func (s *CertStore) lookup(key string) *cachedCert {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.entries[key]
	if !ok {
		return nil
	}
	c := el.Value.(*cachedCert)
	if !s.cfg.Now().Before(c.expires) {
		s.removeLocked(el)
		return nil
	}
	s.lru.MoveToFront(el)
	return c
}

func (s *CertStore) removeLocked(el *list.Element) {
	delete(s.entries, el.Value.(*cachedCert).url)
	s.lru.Remove(el)
}

func (s *CertStore) store(c *cachedCert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[c.url]; ok {
		s.removeLocked(el)
	}
	s.entries[c.url] = s.lru.PushFront(c)
	for s.lru.Len() > s.cfg.MaxEntries {
		s.removeLocked(s.lru.Back())
	}
}

// fetch downloads key once for every concurrent caller. The download runs
// detached from any one caller's context (the Fetcher has its own timeout),
// so a caller that gives up does not fail the others waiting on it.
func (s *CertStore) fetch(ctx context.Context, key string, u *url.URL) (*cachedCert, error) {
	ch := s.group.DoChan(key, func() (any, error) {
		// Another caller may have stored it between our lookup and here.
		if c := s.lookup(key); c != nil {
			return c, nil
		}
		raw, err := s.cfg.Fetcher.Fetch(context.WithoutCancel(ctx), u)
		if err != nil {
			return nil, err
		}
		c, err := s.validate(key, raw)
		if err != nil {
			return nil, err
		}
		s.store(c)
		return c, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrCertUnavailable, context.Cause(ctx))
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*cachedCert), nil
	}
}

// validate parses raw (DER, or PEM with the leaf first and optional
// intermediates after it) and applies every documented check.
func (s *CertStore) validate(key string, raw []byte) (*cachedCert, error) {
	certs, err := parseCertificates(raw)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	now := s.cfg.Now()
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.cfg.Roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		// Microsoft does not document the extended key usage of the
		// signing certificate, so any is accepted; key usage is below.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%w: chain: %v", ErrCertificate, err)
	}
	if !slices.Contains(leaf.Subject.Organization, s.cfg.Organization) {
		return nil, fmt.Errorf("%w: subject organisation %q, want %q", ErrCertificate, leaf.Subject.Organization, s.cfg.Organization)
	}
	if !slices.Contains(leaf.Issuer.Organization, s.cfg.Organization) {
		return nil, fmt.Errorf("%w: issuer organisation %q, want %q", ErrCertificate, leaf.Issuer.Organization, s.cfg.Organization)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("%w: key usage does not include digital signature", ErrCertificate)
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: public key is %T, want RSA", ErrCertificate, leaf.PublicKey)
	}
	if pub.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("%w: RSA key of %d bits, want at least %d", ErrCertificate, pub.N.BitLen(), minRSABits)
	}
	expires := now.Add(s.cfg.MaxAge)
	if leaf.NotAfter.Before(expires) {
		expires = leaf.NotAfter
	}
	return &cachedCert{url: key, cert: leaf, key: pub, fetchedAt: now, expires: expires}, nil
}

// parseCertificates accepts the .cer format Microsoft serves (one DER
// certificate) and, for deployments that publish a bundle, PEM with the
// leaf first.
func parseCertificates(raw []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(raw, []byte("-----BEGIN")) {
		certs, err := x509.ParseCertificates(raw)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("%w: not a DER certificate", ErrCertificate)
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PEM certificate: %v", ErrCertificate, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrCertificate)
	}
	return certs, nil
}
