package pcwebhooks

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
)

// TestSignerMatchesCryptoRSA checks the build's signer (crypto/rsa, or
// libcrypto with -tags opensslrsa) against crypto/rsa byte for byte, and
// that receivers' verification accepts it.
func TestSignerMatchesCryptoRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{
		[]byte(`{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/abc"}`),
		{},
		make([]byte, 64<<10),
	} {
		got, err := signBody(key, body)
		if err != nil {
			t.Fatalf("%s signer: %v", SignerImplementation, err)
		}
		sum := sha256.Sum256(body)
		want, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		if got != base64.StdEncoding.EncodeToString(want) {
			t.Fatalf("%s signer: signature of a %d-byte body differs from crypto/rsa's", SignerImplementation, len(body))
		}
		raw, _ := base64.StdEncoding.DecodeString(got)
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], raw); err != nil {
			t.Fatalf("%s signer: %v", SignerImplementation, err)
		}
	}
}

// Signing from many goroutines at once, as the delivery workers do, gives
// every body its own correct signature.
func TestSignerConcurrent(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 8 {
				body := fmt.Appendf(nil, `{"worker":%d,"event":%d}`, g, i)
				sig, err := signBase64(s, body)
				if err == nil {
					raw, _ := base64.StdEncoding.DecodeString(sig)
					sum := sha256.Sum256(body)
					err = rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], raw)
				}
				if err != nil {
					errs <- fmt.Errorf("%s signer, worker %d event %d: %w", SignerImplementation, g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSignBody(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/00000000-0000-0000-0000-000000000000","ResourceName":"referral","AuditUri":null,"ResourceChangeUtcDate":"2026-12-07T10:00:00.0000000+00:00"}`)
	s, err := newSigner(key)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := signBase64(s, body); err != nil {
			b.Fatal(err)
		}
	}
}
