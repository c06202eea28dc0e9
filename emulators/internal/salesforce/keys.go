package salesforce

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Dev key pair file names written by EnsureDevKeyPair.
const (
	DevCertFile = "jwt-cert.pem"
	DevKeyFile  = "jwt-key.pem"
)

// LoadCertificates reads every CERTIFICATE block of a PEM file: the
// certificates JWT-bearer assertions may be signed with.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT certificate: %w", err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse JWT certificate %s: %w", path, err)
		}
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("JWT certificate %s: RS256 needs an RSA key", path)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return out, nil
}

// EnsureDevKeyPair gives developers a key to sign JWT assertions with when
// no -jwt-cert is configured: it reuses dir/jwt-key.pem and
// dir/jwt-cert.pem when both exist, and otherwise writes a fresh RSA-2048
// key (mode 0600) and a self-signed certificate for it. It returns the
// certificate and key paths.
func EnsureDevKeyPair(dir string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, DevCertFile), filepath.Join(dir, DevKeyFile)
	_, errC := os.Stat(certPath)
	_, errK := os.Stat(keyPath)
	if errC == nil && errK == nil {
		return certPath, keyPath, nil
	}
	if !errors.Is(errC, os.ErrNotExist) && errC != nil {
		return "", "", fmt.Errorf("dev JWT certificate: %w", errC)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create dev key dir: %w", err)
	}
	certPEM, keyPEM, err := NewKeyPair("cosell salesforce-emulator dev JWT signer")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write dev JWT key: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write dev JWT certificate: %w", err)
	}
	return certPath, keyPath, nil
}

// NewKeyPair returns a PEM self-signed certificate and its PKCS#8 RSA
// private key, the material an admin uploads to a connected app and keeps
// for signing. Tests use it to sign assertions.
func NewKeyPair(commonName string) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate RSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return certPEM, keyPEM, nil
}
