package pcwebhooks

import (
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"sync"
)

// signers holds one signer per private key, made on first use: the
// signing key of the authority and the fault variants' keys.
var signers sync.Map // *rsa.PrivateKey → signer

// signBody returns the base64 RSA-SHA256 PKCS#1 v1.5 signature of body.
// PKCS #1 v1.5 signatures are deterministic, so every signer
// implementation produces the same bytes for the same key and body.
func signBody(key *rsa.PrivateKey, body []byte) (string, error) {
	s, ok := signers.Load(key)
	if !ok {
		fresh, err := newSigner(key)
		if err != nil {
			return "", fmt.Errorf("signing event: %w", err)
		}
		s, _ = signers.LoadOrStore(key, fresh)
	}
	sig, err := s.(signer).sign(body)
	if err != nil {
		return "", fmt.Errorf("signing event: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// signer makes RSA-SHA256 PKCS#1 v1.5 signatures with one key.
type signer interface {
	sign(body []byte) ([]byte, error)
}
