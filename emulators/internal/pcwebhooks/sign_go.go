//go:build !(cgo && opensslrsa)

package pcwebhooks

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
)

// SignerImplementation names the RSA implementation webhooks are signed
// with: "go" (crypto/rsa; "boringcrypto" when built with
// GOEXPERIMENT=boringcrypto, which crypto/rsa then calls) or "openssl".
const SignerImplementation = "go"

type goSigner struct{ key *rsa.PrivateKey }

func newSigner(key *rsa.PrivateKey) (signer, error) { return goSigner{key}, nil }

func (s goSigner) sign(body []byte) ([]byte, error) {
	sum := sha256.Sum256(body)
	return rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, sum[:])
}
