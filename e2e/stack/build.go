// Package stack builds and runs the whole cosell system as separate
// processes on one machine: a pinned nats-server built from its Go module,
// both emulators and the four services, against a fresh Postgres database.
// The demo, the benchmark and the end-to-end tests all use it, so they
// exercise the real binaries with the same wiring an operator would use.
package stack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// in the workspace (the Go build cache makes repeated builds cheap).
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
	args := []string{"build", "-o", abs + string(os.PathSeparator)}
	for _, pkg := range Binaries() {
		args = append(args, pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
