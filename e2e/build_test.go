package e2e_test

import (
	"debug/buildinfo"
	"path/filepath"
	"strings"
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
		info, err := buildinfo.ReadFile(filepath.Join(binDir, svc))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Settings {
			if s.Key == "GOEXPERIMENT" && strings.Contains(s.Value, "boringcrypto") {
				t.Errorf("%s built with GOEXPERIMENT=%s", svc, s.Value)
			}
		}
	}
}
