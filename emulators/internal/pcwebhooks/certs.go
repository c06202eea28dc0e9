package pcwebhooks

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File names inside Config.CADir. Receivers add CACertFile to their trust
// pool; the key never leaves the directory and is written with mode 0600.
const (
	CACertFile = "webhook-ca.pem"
	CAKeyFile  = "webhook-ca-key.pem"
)

// Organization is the subject organisation of the signing certificate and
// of its issuer. Partner Center's documented receiver check is that the
// certificate was issued by "O=Microsoft Corporation", so the emulator's
// certificates carry it to let receivers exercise that check unchanged.
const Organization = "Microsoft Corporation"

// LeafCommonName is the common name (and DNS name) of the signing
// certificate. It mirrors the file name of the real certificate,
// pcnotifications-dispatch.microsoft.com.cer.
const LeafCommonName = "pcnotifications-dispatch.microsoft.com"

// rsaBits is the key size of the CA and the signing key: the size real
// Microsoft leaf certificates use, and small enough to generate at start
// without delaying it noticeably.
const rsaBits = 2048

// authority is the emulator's CA plus the signing certificate it issued
// at start. It is immutable once built.
type authority struct {
	caCert  *x509.Certificate
	caKey   crypto.Signer
	caPEM   []byte
	leaf    *x509.Certificate
	leafDER []byte
	leafKey *rsa.PrivateKey
	// leafSigner signs the deliveries with leafKey.
	leafSigner signer

	// variants are the deliberately bad certificates used by the
	// wrongOrg and untrustedCert faults, made on first use because few
	// runs need them and each costs an RSA key.
	variantMu sync.Mutex
	variants  map[string]*variantCert
}

// variantCert is a bad certificate and the signer of its key.
type variantCert struct {
	der    []byte
	signer signer
}

// Certificate variants served at CertificatePath()?variant=<name>.
const (
	variantWrongOrg  = "wrong-org"
	variantUntrusted = "untrusted"
)

// variant returns (creating on first use) the named bad certificate:
// wrong-org is issued by the emulator's CA to O=Contoso Ltd; untrusted is
// self-signed with the genuine-looking Microsoft subject.
func (a *authority) variant(name string) (*variantCert, error) {
	a.variantMu.Lock()
	defer a.variantMu.Unlock()
	if v, ok := a.variants[name]; ok {
		return v, nil
	}
	key, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 1, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{LeafCommonName},
	}
	parent, parentKey := a.caCert, a.caKey
	switch name {
	case variantWrongOrg:
		tmpl.Subject = pkix.Name{CommonName: LeafCommonName, Organization: []string{"Contoso Ltd"}}
	case variantUntrusted:
		tmpl.Subject = a.leaf.Subject
		parent, parentKey = tmpl, key
	default:
		return nil, fmt.Errorf("unknown certificate variant %q", name)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("creating %s certificate: %w", name, err)
	}
	if a.variants == nil {
		a.variants = map[string]*variantCert{}
	}
	s, err := newSigner(key)
	if err != nil {
		return nil, fmt.Errorf("%s signer: %w", name, err)
	}
	v := &variantCert{der: der, signer: s}
	a.variants[name] = v
	return v, nil
}

// variantDER returns a variant's certificate if it was made already.
func (a *authority) variantDER(name string) ([]byte, bool) {
	a.variantMu.Lock()
	defer a.variantMu.Unlock()
	v, ok := a.variants[name]
	if !ok {
		return nil, false
	}
	return v.der, true
}

// newAuthority loads the CA from dir (or generates it, writing it to dir
// when dir is not empty) and issues a fresh signing certificate.
func newAuthority(dir string) (*authority, bool, error) {
	caCert, caKey, caPEM, created, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, false, err
	}
	leafKey, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, false, fmt.Errorf("generating signing key: %w", err)
	}
	now := time.Now()
	notAfter := now.AddDate(1, 0, 0)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			CommonName:   LeafCommonName,
			Organization: []string{Organization},
			Locality:     []string{"Redmond"},
			Province:     []string{"WA"},
			Country:      []string{"US"},
		},
		DNSNames:    []string{LeafCommonName},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, false, fmt.Errorf("issuing signing certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, false, fmt.Errorf("parsing signing certificate: %w", err)
	}
	leafSigner, err := newSigner(leafKey)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	return &authority{caCert: caCert, caKey: caKey, caPEM: caPEM, leaf: leaf, leafDER: der, leafKey: leafKey, leafSigner: leafSigner}, created, nil
}

// loadOrCreateCA returns the CA stored in dir, or a new one (written to dir
// unless dir is empty). Exactly one of the two files existing is an error:
// silently replacing half a CA would break receivers that trust the old one.
func loadOrCreateCA(dir string) (*x509.Certificate, crypto.Signer, []byte, bool, error) {
	if dir != "" {
		certPEM, certErr := os.ReadFile(filepath.Join(dir, CACertFile))
		keyPEM, keyErr := os.ReadFile(filepath.Join(dir, CAKeyFile))
		switch {
		case certErr == nil && keyErr == nil:
			cert, key, err := parseCA(certPEM, keyPEM)
			if err != nil {
				return nil, nil, nil, false, fmt.Errorf("loading CA from %s: %w", dir, err)
			}
			return cert, key, certPEM, false, nil
		case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
			// Generate below.
		case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
			return nil, nil, nil, false, fmt.Errorf("reading CA certificate: %w", certErr)
		case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
			return nil, nil, nil, false, fmt.Errorf("reading CA key: %w", keyErr)
		default:
			return nil, nil, nil, false, fmt.Errorf("CA directory %s holds only one of %s and %s; remove it or restore the other", dir, CACertFile, CAKeyFile)
		}
	}
	cert, key, certPEM, keyPEM, err := generateCA()
	if err != nil {
		return nil, nil, nil, false, err
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, nil, false, fmt.Errorf("creating CA directory: %w", err)
		}
		// The key goes first so a crash in between leaves the "only the
		// key" state, which the next start reports instead of trusting.
		if err := writeFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
			return nil, nil, nil, false, err
		}
		if err := writeFileAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
			return nil, nil, nil, false, err
		}
	}
	return cert, key, certPEM, true, nil
}

// generateCA makes a self-signed root whose subject carries the Microsoft
// organisation (receivers check it on the issuer) and an organisational unit
// that says plainly it is the emulator's.
func generateCA() (*x509.Certificate, crypto.Signer, []byte, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			CommonName:         "Partner Center Emulator Root CA",
			Organization:       []string{Organization},
			OrganizationalUnit: []string{"cosell emulator - not issued by Microsoft"},
			Country:            []string{"US"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("encoding CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return cert, key, certPEM, keyPEM, nil
}

// parseCA decodes a PEM CA certificate and its PKCS#8 or PKCS#1 key and
// checks that they belong together and that the certificate may sign.
func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no PEM CERTIFICATE block", CACertFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("%s: certificate is not a CA", CACertFile)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", CAKeyFile)
	}
	var parsed any
	switch kb.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		return nil, nil, fmt.Errorf("%s: unsupported PEM block %q", CAKeyFile, kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: key cannot sign", CAKeyFile)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := signer.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s does not match the key in %s", CACertFile, CAKeyFile)
	}
	return cert, signer, nil
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place, so a reader never sees half a PEM file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(name, perm)
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		_ = os.Remove(name)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}

// randomSerial returns a positive 127-bit serial number, as RFC 5280 asks
// for unpredictable serials of at most 20 octets.
func randomSerial() *big.Int {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		// crypto/rand does not fail on supported platforms (Go 1.24+ aborts
		// the program instead of returning an error), so this is unreachable.
		return big.NewInt(time.Now().UnixNano())
	}
	return n.Add(n, big.NewInt(1))
}
