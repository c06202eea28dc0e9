// Package stack builds and runs the whole cosell system as separate
// processes on one machine: a pinned nats-server built from its Go module,
// both emulators and the four services, against a fresh Postgres database.
// The demo, the benchmark and the end-to-end tests all use it, so they
// exercise the real binaries with the same wiring an operator would use.
package stack

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Services are the four cosell services, in start order (consumers before
// the edge, so nothing published waits for a consumer to exist).
func Services() []string {
	return []string{"mapper", "salesforce-adapter", "partnercenter-adapter", "ingress"}
}

// Binaries returns the binaries the stack needs and the package each is built from.
func Binaries() map[string]string {
	m := map[string]string{
		"partnercenter-emulator": "github.com/cosell/cosell/emulators/cmd/partnercenter-emulator",
		"salesforce-emulator":    "github.com/cosell/cosell/emulators/cmd/salesforce-emulator",
		"nats-server":            "github.com/nats-io/nats-server/v2",
	}
	for _, s := range Services() {
		m[s] = "github.com/cosell/cosell/services/" + s + "/cmd/" + s
	}
	return m
}

// RepoRoot finds the workspace root (the directory holding go.work) from
// the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.work not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles every binary of the stack into binDir with one `go build`
// in the workspace (the Go build cache makes repeated builds cheap). The
// Partner Center emulator is then rebuilt with a faster RSA where the
// toolchain offers one (see emulatorCrypto).
func Build(ctx context.Context, binDir string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	out := abs + string(os.PathSeparator)
	emulator := Binaries()["partnercenter-emulator"]
	env := emulatorCrypto()
	args := []string{"build", "-o", out}
	for _, pkg := range Binaries() {
		if env == nil || pkg != emulator {
			args = append(args, pkg)
		}
	}
	if err := goBuild(ctx, root, nil, args...); err != nil {
		return err
	}
	if env == nil {
		return nil
	}
	if err := goBuild(ctx, root, env, "build", "-o", out, emulator); err != nil {
		// Slower signing changes the benchmark's budget, never what is
		// tested: fall back to the portable build.
		fmt.Fprintf(os.Stderr, "stack: partnercenter-emulator keeps Go's own RSA (BoringCrypto build failed): %v\n", err)
		return goBuild(ctx, root, nil, "build", "-o", out, emulator)
	}
	return nil
}

// emulatorCrypto returns the build environment that links the Partner
// Center emulator against Go's BoringCrypto module, or nil where that is
// not available or COSELL_EMULATOR_BORINGCRYPTO=0.
//
// The emulator signs every webhook with RSA-2048, as Partner Center does.
// Go's own constant-time RSA takes about 1 ms per signature; BoringCrypto
// about 0.65 ms. At 200 referrals/s (two webhooks each) that difference is
// 7 % of a two-core machine that the benchmark otherwise takes from the
// services under test, for work Microsoft's servers do in production.
// PKCS #1 v1.5 signatures are deterministic, so the services receive
// byte-for-byte the same requests either way. Only this emulator is built
// so; the services and their images keep Go's own crypto (CGO_ENABLED=0).
func emulatorCrypto() []string {
	if os.Getenv("COSELL_EMULATOR_BORINGCRYPTO") == "0" || runtime.GOOS != "linux" ||
		(runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		return nil
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(strings.Fields(cc)[0]); err != nil {
		return nil
	}
	return []string{"GOEXPERIMENT=boringcrypto", "CGO_ENABLED=1"}
}

// goBuild runs the go command in the workspace root with extra environment.
func goBuild(ctx context.Context, root string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "GOTOOLCHAIN=local"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// EmulatorCrypto reports which RSA the Partner Center emulator in binDir
// signs with: "boringcrypto" or "go". Build chooses it; the benchmark
// prints it beside its figures.
func EmulatorCrypto(binDir string) (string, error) {
	return BinaryCrypto(binDir, "partnercenter-emulator")
}

// BinaryCrypto reports which crypto the binary name in binDir was built
// with: "boringcrypto" (GOEXPERIMENT=boringcrypto) or "go".
func BinaryCrypto(binDir, name string) (string, error) {
	info, err := buildinfo.ReadFile(filepath.Join(binDir, name))
	if err != nil {
		return "", err
	}
	for _, s := range info.Settings {
		if s.Key == "GOEXPERIMENT" && slices.Contains(strings.Split(s.Value, ","), "boringcrypto") {
			return "boringcrypto", nil
		}
	}
	return "go", nil
}

// WantsBoringCrypto reports whether Build links the Partner Center
// emulator against BoringCrypto on this machine.
func WantsBoringCrypto() bool { return emulatorCrypto() != nil }
