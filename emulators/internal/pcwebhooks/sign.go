package pcwebhooks

import (
	"crypto/rsa"
	"encoding/base64"
	"fmt"
)

// signer makes RSA-SHA256 PKCS#1 v1.5 signatures with one key. newSigner
// (sign_go.go, or sign_openssl.go with -tags opensslrsa) makes one where
// the key is made: the authority's signing key and each variant's.
// PKCS #1 v1.5 signatures are deterministic, so every implementation
// produces the same bytes for the same key and body.
type signer interface {
	sign(body []byte) ([]byte, error)
}

// signBase64 returns the base64 signature of body, as the delivery headers
// carry it.
func signBase64(s signer, body []byte) (string, error) {
	sig, err := s.sign(body)
	if err != nil {
		return "", fmt.Errorf("signing event: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// signBody signs one body with key, for a one-off signature.
func signBody(key *rsa.PrivateKey, body []byte) (string, error) {
	s, err := newSigner(key)
	if err != nil {
		return "", fmt.Errorf("signing event: %w", err)
	}
	return signBase64(s, body)
}
