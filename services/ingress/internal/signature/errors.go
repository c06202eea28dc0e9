// Package signature verifies Partner Center webhook signatures as Microsoft
// documents them: the three headers must be present, the signing
// certificate is downloaded from x-ms-certificate-url (only from allowed
// hosts), its chain and organisation are checked, and the RSA-SHA256
// (PKCS#1 v1.5) signature is checked over the raw request body.
//
// Certificates are cached by URL until they expire, and concurrent misses
// for one URL share a single download.
package signature

import "errors"

// Verification failures. Verify wraps exactly one of them, so the HTTP edge
// can map each to a status code and a metric outcome with errors.Is.
var (
	// ErrMissingHeader: a signature header is absent or malformed, or the
	// algorithm is not rsa-sha256.
	ErrMissingHeader = errors.New("missing or malformed signature headers")
	// ErrUntrustedCertURL: the certificate URL is not allowed by URLPolicy;
	// nothing was fetched.
	ErrUntrustedCertURL = errors.New("untrusted certificate URL")
	// ErrCertificate: the certificate could not be parsed, does not chain to
	// a trusted root, is outside its validity period, has the wrong
	// organisation, key type or key usage.
	ErrCertificate = errors.New("certificate rejected")
	// ErrCertUnavailable: the certificate could not be downloaded because of
	// a transient fault (network, timeout, 5xx). The sender should retry.
	ErrCertUnavailable = errors.New("certificate unavailable")
	// ErrBadSignature: the signature does not match the body.
	ErrBadSignature = errors.New("signature does not match")
)
