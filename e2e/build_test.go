package e2e_test

import (
	"testing"

	"github.com/cosell/cosell/e2e/stack"
)

// The Partner Center emulator signs with BoringCrypto wherever stack.Build
// can link it (the benchmark's budget depends on it), and the services
// keep Go's own crypto.
func TestEmulatorCryptoIsWhatBuildChose(t *testing.T) {
	got, err := stack.EmulatorCrypto(binDir)
	if err != nil {
		t.Fatal(err)
	}
	want := "go"
	if stack.WantsBoringCrypto() {
		want = "boringcrypto"
	}
	if got != want {
		t.Errorf("partnercenter-emulator built with %q RSA, want %q", got, want)
	}
}

func TestServicesKeepGoCrypto(t *testing.T) {
	for _, svc := range stack.Services() {
		got, err := stack.BinaryCrypto(binDir, svc)
		if err != nil {
			t.Fatal(err)
		}
		if got != "go" {
			t.Errorf("%s built with %q crypto, want Go's own", svc, got)
		}
	}
}
