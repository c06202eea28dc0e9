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

// Emulators are the two emulators' process names.
func Emulators() []string {
	return []string{"partnercenter-emulator", "salesforce-emulator"}
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
// Partner Center emulator is built on its own with the fastest RSA the
// machine can link (see EmulatorRSAChoices).
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
	args := []string{"build", "-o", out}
	for _, pkg := range Binaries() {
		if pkg != emulator {
			args = append(args, pkg)
		}
	}
	if err := goBuild(ctx, root, nil, args...); err != nil {
		return err
	}
	choices := EmulatorRSAChoices()
	for i, rsa := range choices {
		err := BuildEmulator(ctx, binDir, rsa)
		if err == nil || i == len(choices)-1 {
			return err
		}
		// Slower signing changes the benchmark's budget, never what is
		// tested: fall back to the next choice.
		fmt.Fprintf(os.Stderr, "stack: partnercenter-emulator not built with %s RSA (%s), trying %s\n", rsa, buildFailure(err), choices[i+1])
	}
	return nil
}

// buildFailure is the first line of the compiler's complaint in a failed
// goBuild (a missing header, say), without the rest of its output.
func buildFailure(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return lines[0]
}

// The RSA implementations the Partner Center emulator can sign webhooks
// with, as EmulatorCrypto names them.
const (
	RSAOpenSSL      = "openssl"      // the system's libcrypto, through cgo (-tags opensslrsa)
	RSABoringCrypto = "boringcrypto" // GOEXPERIMENT=boringcrypto
	RSAGo           = "go"           // crypto/rsa
)

// EmulatorRSAChoices lists the RSA implementations Build tries for the
// Partner Center emulator, fastest first; the last always builds.
//
// The emulator signs every webhook with RSA-2048, as Partner Center does,
// two per referral. On the benchmark machine one signature takes 1.1 ms
// with crypto/rsa, 0.65 ms with BoringCrypto and 0.3 ms with OpenSSL 3,
// which uses the CPU's wide multiplies: at 200 referrals/s the first costs
// 22 % of a two-core machine, the last 6 %, for work Microsoft's servers
// do in production. PKCS #1 v1.5 signatures are deterministic, so the
// services receive byte-for-byte the same requests either way. Only this
// emulator is built so; the services and their images keep Go's own
// crypto (CGO_ENABLED=0).
//
// Both faster choices need cgo and a C compiler, on linux/amd64 or arm64;
// OpenSSL also its headers (Debian: libssl-dev). COSELL_EMULATOR_RSA
// names one choice to use (falling back to Go's if it does not build).
func EmulatorRSAChoices() []string {
	fast := []string{RSAOpenSSL, RSABoringCrypto}
	switch want := os.Getenv("COSELL_EMULATOR_RSA"); want {
	case RSAGo:
		return []string{RSAGo}
	case RSAOpenSSL, RSABoringCrypto:
		fast = []string{want}
	}
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") || !haveCC() {
		return []string{RSAGo}
	}
	return append(fast, RSAGo)
}

func haveCC() bool {
	cc := strings.Fields(os.Getenv("CC"))
	if len(cc) == 0 {
		cc = []string{"gcc"}
	}
	_, err := exec.LookPath(cc[0])
	return err == nil
}

// BuildEmulator builds the Partner Center emulator into binDir signing
// with rsa, one of EmulatorRSAChoices' names.
func BuildEmulator(ctx context.Context, binDir, rsa string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	args := []string{"build", "-o", abs + string(os.PathSeparator)}
	var env []string
	switch rsa {
	case RSAOpenSSL:
		env = []string{"CGO_ENABLED=1"}
		args = append(args, "-tags", "opensslrsa")
	case RSABoringCrypto:
		env = []string{"GOEXPERIMENT=boringcrypto", "CGO_ENABLED=1"}
	case RSAGo:
	default:
		return fmt.Errorf("unknown emulator RSA %q", rsa)
	}
	return goBuild(ctx, root, env, append(args, Binaries()["partnercenter-emulator"])...)
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
// signs with: "openssl", "boringcrypto" or "go". Build chooses it; the
// benchmark prints it beside its figures.
func EmulatorCrypto(binDir string) (string, error) {
	return BinaryCrypto(binDir, "partnercenter-emulator")
}

// BinaryCrypto reports which crypto the binary name in binDir was built
// with: "openssl" (-tags opensslrsa), "boringcrypto"
// (GOEXPERIMENT=boringcrypto) or "go".
func BinaryCrypto(binDir, name string) (string, error) {
	info, err := buildinfo.ReadFile(filepath.Join(binDir, name))
	if err != nil {
		return "", err
	}
	for _, s := range info.Settings {
		if s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "opensslrsa") {
			return RSAOpenSSL, nil
		}
		if s.Key == "GOEXPERIMENT" && slices.Contains(strings.Split(s.Value, ","), "boringcrypto") {
			return RSABoringCrypto, nil
		}
	}
	return RSAGo, nil
}
