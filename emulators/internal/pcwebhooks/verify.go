package pcwebhooks

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Verification failures, matching the documented receiver outcomes
// (missing headers → 400, the rest → 401). VerifySignature wraps them.
var (
	ErrMissingHeader        = errors.New("webhook signature header missing")
	ErrUnsupportedAlgorithm = errors.New("unsupported webhook signature algorithm")
	ErrCertificate          = errors.New("webhook certificate verification failed")
	ErrOrganization         = errors.New("webhook certificate not issued by O=Microsoft Corporation")
	ErrSignature            = errors.New("webhook signature verification failed")
)

// VerifySignature checks a delivery the way Partner Center tells
// receivers to, using only the standard library: the three headers are
// present, the algorithm is rsa-sha256, the certificate fetched from
// x-ms-certificate-url chains to caPool, its subject and issuer carry
// O=Microsoft Corporation, and the RSA-SHA256 PKCS#1 v1.5 signature from
// Authorization or x-ms-signature matches the raw body. It exists for tests
// across the emulators and services; production receivers also pin the
// certificate host.
func VerifySignature(body []byte, header http.Header, caPool *x509.CertPool, fetch func(url string) ([]byte, error)) error {
	sig, err := signatureFrom(header)
	if err != nil {
		return err
	}
	certURL := header.Get(HeaderCertificateURL)
	if certURL == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderCertificateURL)
	}
	alg := header.Get(HeaderSignatureAlgorithm)
	if alg == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignatureAlgorithm)
	}
	if !strings.EqualFold(alg, SignatureAlgorithm) {
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
	}
	raw, err := fetch(certURL)
	if err != nil {
		return fmt.Errorf("%w: fetching %s: %v", ErrCertificate, certURL, err)
	}
	cert, err := ParseCertificate(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     caPool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	if !slices.Contains(cert.Subject.Organization, Organization) || !slices.Contains(cert.Issuer.Organization, Organization) {
		return fmt.Errorf("%w: subject %q, issuer %q", ErrOrganization, cert.Subject.String(), cert.Issuer.String())
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is %T, not RSA", ErrSignature, cert.PublicKey)
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// signatureFrom reads "Signature <base64>" from x-ms-signature, or from
// Authorization when x-ms-signature is absent (as the official sample does).
func signatureFrom(h http.Header) ([]byte, error) {
	name := HeaderSignature
	v := h.Get(name)
	if v == "" {
		name = "Authorization"
		v = h.Get(name)
	}
	if v == "" {
		return nil, fmt.Errorf("%w: Authorization or %s", ErrMissingHeader, HeaderSignature)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Signature") || strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("%w: %s is not of the form \"Signature <base64>\"", ErrSignature, name)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64: %v", ErrSignature, name, err)
	}
	return sig, nil
}

// ParseCertificate accepts a certificate as DER (what the certificate URL
// serves) or PEM.
func ParseCertificate(raw []byte) (*x509.Certificate, error) {
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a certificate", b.Type)
		}
		raw = b.Bytes
	}
	cert, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	return cert, nil
}

// LoadCAPool reads CACertFile from dir into a new pool, as a receiver
// configured with the emulator's CA directory would.
func LoadCAPool(dir string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("reading webhook CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, CACertFile))
	}
	return pool, nil
}

// HTTPFetcher returns a fetch function for VerifySignature that GETs the
// certificate URL with c (nil = http.DefaultClient) and expects a 200.
func HTTPFetcher(c *http.Client) func(url string) ([]byte, error) {
	if c == nil {
		c = http.DefaultClient
	}
	return func(url string) ([]byte, error) {
		resp, err := c.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
}
