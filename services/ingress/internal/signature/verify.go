package signature

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// Header names and values of a Partner Center delivery. Go canonicalises
// header names, so lookups are case-insensitive.
const (
	HeaderAuthorization  = "Authorization"
	HeaderSignature      = "X-Ms-Signature"
	HeaderCertificateURL = "X-Ms-Certificate-Url"
	HeaderAlgorithm      = "X-Ms-Signature-Algorithm"
	// Scheme prefixes the base64 signature in either signature header.
	Scheme = "Signature"
	// Algorithm is the only signature algorithm Partner Center uses.
	Algorithm = "rsa-sha256"
)

// Verifier checks the signature of a delivery. It is safe for concurrent
// use.
type Verifier struct {
	policy URLPolicy
	certs  *CertStore
}

// NewVerifier returns a Verifier that fetches only what policy allows and
// takes certificates from certs.
func NewVerifier(policy URLPolicy, certs *CertStore) *Verifier {
	return &Verifier{policy: policy, certs: certs}
}

// Verify checks h and the raw body bytes. It returns nil only when the body
// was signed by a trusted certificate; otherwise the error wraps one of the
// package's sentinel errors.
func (v *Verifier) Verify(ctx context.Context, h http.Header, body []byte) error {
	sig, err := signatureFromHeaders(h)
	if err != nil {
		return err
	}
	if alg := strings.TrimSpace(h.Get(HeaderAlgorithm)); !strings.EqualFold(alg, Algorithm) {
		if alg == "" {
			return fmt.Errorf("%w: %s is absent", ErrMissingHeader, HeaderAlgorithm)
		}
		return fmt.Errorf("%w: algorithm %q, want %s", ErrMissingHeader, alg, Algorithm)
	}
	rawURL := strings.TrimSpace(h.Get(HeaderCertificateURL))
	if rawURL == "" {
		return fmt.Errorf("%w: %s is absent", ErrMissingHeader, HeaderCertificateURL)
	}
	// The allow-list is checked before anything touches the network.
	u, err := v.policy.Check(rawURL)
	if err != nil {
		return err
	}
	cert, err := v.certs.get(ctx, u)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if err := v.check(cert, digest[:], sig); err == nil {
		return nil
	}
	// The certificate may have been renewed at the same URL since we
	// cached it: try a fresh copy once (rate-limited by the store).
	fresh, err := v.certs.refresh(ctx, u, cert)
	if err != nil {
		return err
	}
	if fresh == nil {
		return fmt.Errorf("%w: RSA-SHA256 verification failed", ErrBadSignature)
	}
	return v.check(fresh, digest[:], sig)
}

func (v *Verifier) check(c *cachedCert, digest, sig []byte) error {
	now := v.certs.cfg.Now()
	if now.Before(c.cert.NotBefore) || now.After(c.cert.NotAfter) {
		return fmt.Errorf("%w: outside its validity period", ErrCertificate)
	}
	if err := rsa.VerifyPKCS1v15(c.key, crypto.SHA256, digest, sig); err != nil {
		return fmt.Errorf("%w: RSA-SHA256 verification failed", ErrBadSignature)
	}
	return nil
}

// signatureFromHeaders takes the signature from x-ms-signature when the
// registration asked for that header, else from Authorization. Both carry
// "Signature <base64>"; x-ms-signature is also accepted bare.
func signatureFromHeaders(h http.Header) ([]byte, error) {
	value, header := h.Get(HeaderSignature), HeaderSignature
	if value == "" {
		value, header = h.Get(HeaderAuthorization), HeaderAuthorization
	}
	if value == "" {
		return nil, fmt.Errorf("%w: neither %s nor %s is present", ErrMissingHeader, HeaderAuthorization, HeaderSignature)
	}
	fields := strings.Fields(value)
	var encoded string
	switch {
	case len(fields) == 2 && strings.EqualFold(fields[0], Scheme):
		encoded = fields[1]
	case len(fields) == 1 && header == HeaderSignature:
		encoded = fields[0]
	default:
		return nil, fmt.Errorf("%w: %s is not %q", ErrMissingHeader, header, Scheme+" <base64>")
	}
	sig, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("%w: %s is not valid base64", ErrBadSignature, header)
	}
	return sig, nil
}
