package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

// The Partner Center emulator signs with the fastest RSA stack.Build can
// link on this machine (the benchmark's budget depends on it), and the
// services keep Go's own crypto.
func TestEmulatorCryptoIsWhatBuildChose(t *testing.T) {
	got, err := stack.EmulatorCrypto(binDir)
	if err != nil {
		t.Fatal(err)
	}
	choices := stack.EmulatorRSAChoices()
	i := slices.Index(choices, got)
	if i < 0 {
		t.Fatalf("partnercenter-emulator built with %q RSA, want one of %v", got, choices)
	}
	// A slower choice is right only when every faster one fails to build.
	for _, faster := range choices[:i] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := stack.BuildEmulator(ctx, t.TempDir(), faster)
		cancel()
		if err == nil {
			t.Errorf("partnercenter-emulator built with %q RSA, but %q builds here", got, faster)
		}
	}
}

// The emulator's signer gives crypto/rsa's bytes in the build the stack
// uses, checked by the package's own test under the same build flags.
func TestEmulatorSignerMatchesCryptoRSA(t *testing.T) {
	got, err := stack.EmulatorCrypto(binDir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"test", "-count=1", "-run", "^TestSignerMatchesCryptoRSA$"}
	env := []string{"GOTOOLCHAIN=local"}
	switch got {
	case stack.RSAOpenSSL:
		args = append(args, "-tags", "opensslrsa")
		env = append(env, "CGO_ENABLED=1")
	case stack.RSABoringCrypto:
		env = append(env, "CGO_ENABLED=1", "GOEXPERIMENT=boringcrypto")
	}
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append(args, "github.com/cosell/cosell/emulators/internal/pcwebhooks")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s signer: %v\n%s", got, err, out)
	}
}

func TestServicesKeepGoCrypto(t *testing.T) {
	for _, svc := range stack.Services() {
		got, err := stack.BinaryCrypto(binDir, svc)
		if err != nil {
			t.Fatal(err)
		}
		if got != stack.RSAGo {
			t.Errorf("%s built with %q crypto, want Go's own", svc, got)
		}
	}
}
