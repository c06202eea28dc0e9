package pcwebhooks

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCAWrittenThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "ca")
	first, err := New(Config{PublicBaseURL: "http://127.0.0.1:1", CADir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	keyInfo, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := keyInfo.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %o, want 600", perm)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	fileCA, err := ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !fileCA.Equal(first.CACertificate()) || !fileCA.IsCA || fileCA.Subject.Organization[0] != Organization {
		t.Errorf("CA file = %v", fileCA.Subject)
	}

	second, err := New(Config{PublicBaseURL: "http://127.0.0.1:1", CADir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close(t.Context()) })
	if !second.CACertificate().Equal(first.CACertificate()) {
		t.Fatal("second start made a new CA instead of reading the stored one")
	}
	if second.SigningCertificate().Equal(first.SigningCertificate()) {
		t.Error("signing certificate was not regenerated at start")
	}
	pool, err := LoadCAPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range []*x509.Certificate{first.SigningCertificate(), second.SigningCertificate()} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Errorf("leaf does not chain to the stored CA: %v", err)
		}
	}
}

func TestCADirProblemsAreReported(t *testing.T) {
	t.Run("only the certificate", func(t *testing.T) {
		dir := t.TempDir()
		_, _, certPEM, _, err := generateCA()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{PublicBaseURL: "http://x", CADir: dir}); err == nil || !strings.Contains(err.Error(), "only one") {
			t.Errorf("err = %v, want a half-CA error", err)
		}
	})
	t.Run("mismatched pair", func(t *testing.T) {
		dir := t.TempDir()
		_, _, certPEM, _, err := generateCA()
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, keyPEM, err := generateCA()
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, CACertFile), certPEM, 0o644)
		_ = os.WriteFile(filepath.Join(dir, CAKeyFile), keyPEM, 0o600)
		if _, err := New(Config{PublicBaseURL: "http://x", CADir: dir}); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("err = %v, want a mismatch error", err)
		}
	})
	t.Run("no public URL", func(t *testing.T) {
		if _, err := New(Config{}); err == nil {
			t.Error("New without PublicBaseURL succeeded")
		}
	})
}

func TestInMemoryCA(t *testing.T) {
	d, err := New(Config{PublicBaseURL: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(t.Context()) })
	if _, err := d.SigningCertificate().Verify(x509.VerifyOptions{Roots: d.CAPool()}); err != nil {
		t.Errorf("in-memory chain: %v", err)
	}
	if !strings.HasPrefix(d.CertificateURL(), "http://127.0.0.1:1/cert/") {
		t.Errorf("trailing slash not trimmed: %s", d.CertificateURL())
	}
}

// signedHeader builds delivery headers for body signed by key, naming a
// fixed certificate URL that the test's fetch function answers.
func signedHeader(t *testing.T, body []byte, key *rsa.PrivateKey) http.Header {
	t.Helper()
	sig, err := signBody(key, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Authorization", "Signature "+sig)
	h.Set(HeaderCertificateURL, "https://certs.example/leaf.cer")
	h.Set(HeaderSignatureAlgorithm, "rsa-sha256")
	return h
}

func TestVerifySignatureFailures(t *testing.T) {
	d, err := New(Config{PublicBaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(t.Context()) })
	body := []byte(`{"EventName":"referral-updated"}`)
	good := signedHeader(t, body, d.auth.leafKey)
	serve := func(der []byte) func(string) ([]byte, error) {
		return func(url string) ([]byte, error) {
			if url != "https://certs.example/leaf.cer" {
				return nil, errors.New("unexpected url " + url)
			}
			return der, nil
		}
	}
	leafFetch := serve(d.auth.leafDER)
	if err := VerifySignature(body, good, d.CAPool(), leafFetch); err != nil {
		t.Fatalf("good delivery: %v", err)
	}
	pemFetch := serve(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.auth.leafDER}))
	if err := VerifySignature(body, good, d.CAPool(), pemFetch); err != nil {
		t.Errorf("PEM certificate: %v", err)
	}

	// A certificate from the right CA but the wrong organisation.
	caCert, caKey, _, _, err := generateCA()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	contoso, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "evil", Organization: []string{"Contoso"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}, caCert, &otherKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPool := x509.NewCertPool()
	caPool.AddCert(caCert)

	without := func(name string) http.Header {
		h := good.Clone()
		h.Del(name)
		return h
	}
	with := func(name, value string) http.Header {
		h := good.Clone()
		h.Set(name, value)
		return h
	}
	cases := []struct {
		name   string
		body   []byte
		header http.Header
		pool   *x509.CertPool
		fetch  func(string) ([]byte, error)
		want   error
	}{
		{"no signature", body, without("Authorization"), d.CAPool(), leafFetch, ErrMissingHeader},
		{"no certificate url", body, without(HeaderCertificateURL), d.CAPool(), leafFetch, ErrMissingHeader},
		{"no algorithm", body, without(HeaderSignatureAlgorithm), d.CAPool(), leafFetch, ErrMissingHeader},
		{"other algorithm", body, with(HeaderSignatureAlgorithm, "rsa-sha1"), d.CAPool(), leafFetch, ErrUnsupportedAlgorithm},
		{"bearer scheme", body, with("Authorization", "Bearer abc"), d.CAPool(), leafFetch, ErrSignature},
		{"not base64", body, with("Authorization", "Signature ***"), d.CAPool(), leafFetch, ErrSignature},
		{"signature of other bytes", []byte(`{}`), good, d.CAPool(), leafFetch, ErrSignature},
		{"untrusted root", body, good, caPool, leafFetch, ErrCertificate},
		{"fetch fails", body, good, d.CAPool(), func(string) ([]byte, error) { return nil, errors.New("down") }, ErrCertificate},
		{"garbage certificate", body, good, d.CAPool(), serve([]byte("nope")), ErrCertificate},
		{"wrong organisation", body, signedHeader(t, body, otherKey), caPool, serve(contoso), ErrOrganization},
		{"key does not match certificate", body, signedHeader(t, body, otherKey), d.CAPool(), leafFetch, ErrSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := VerifySignature(c.body, c.header, c.pool, c.fetch); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}

	// x-ms-signature wins over Authorization when both are present.
	h := good.Clone()
	h.Set("Authorization", "Signature "+base64.StdEncoding.EncodeToString([]byte("junk")))
	h.Set(HeaderSignature, good.Get("Authorization"))
	if err := VerifySignature(body, h, d.CAPool(), leafFetch); err != nil {
		t.Errorf("x-ms-signature preferred: %v", err)
	}
}
