package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// The partnercenter-adapter exposes backfill and login as subcommands of
// its binary, not as HTTP endpoints (they need its credentials, which the
// CLI never holds). cosellctl runs that binary with the caller's
// environment, so an operator runs them where the adapter's configuration
// is (its pod, or a shell with its variables).

// adapterBinary finds the partnercenter-adapter binary: the flag, else
// next to cosellctl, else on PATH.
func adapterBinary(flagValue string) (string, error) {
	const name = "partnercenter-adapter"
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return "", fmt.Errorf("--partnercenter-adapter-bin: %w", err)
		}
		return flagValue, nil
	}
	if self, err := os.Executable(); err == nil {
		cand := filepath.Join(filepath.Dir(self), name)
		if st, err := os.Stat(cand); err == nil && !st.IsDir() {
			return cand, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("the %s binary is not next to cosellctl nor on PATH; give --partnercenter-adapter-bin", name)
	}
	return p, nil
}

// noJSON refuses --json for a command whose output is the adapter's own
// (its JSON log lines, the device-code prompt): cosellctl has no result of
// its own to print as JSON, and ignoring the flag would mislead scripts.
func noJSON(e *env) error {
	if e.opts.json {
		return usagef("--json does not apply: this command shows the partnercenter-adapter's own output (JSON log lines on stderr)")
	}
	return nil
}

// runAdapter runs the partnercenter-adapter with args, its output going to
// the CLI's, in the caller's environment plus DATABASE_URL and NATS_URL
// from the CLI's options.
func runAdapter(ctx context.Context, e *env, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = e.out, e.app.Stderr
	cmd.Stdin = os.Stdin
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.opts.databaseURL, "NATS_URL="+e.opts.natsURL)
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		var xerr *exec.ExitError
		if errors.As(err, &xerr) {
			return fmt.Errorf("%s %s failed (exit status %d); its log is above", filepath.Base(bin), args[0], xerr.ExitCode())
		}
		return fmt.Errorf("run %s: %w", bin, err)
	}
	return nil
}

func runBackfill(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "--since DATE [--partnercenter-adapter-bin PATH]",
		`Publishes a snapshot of every Partner Center referral updated since DATE
(YYYY-MM-DD or RFC 3339), so the mapper applies anything missed, e.g. history
before cosell was installed. Runs 'partnercenter-adapter backfill --since DATE'
with this shell's environment (the adapter's PC_* variables must be set), and
--database-url / --nats-url as DATABASE_URL / NATS_URL.`)
	since := fs.String("since", "", "referrals updated since this `date` (YYYY-MM-DD or RFC 3339)")
	binFlag := fs.String("partnercenter-adapter-bin", "", "`path` of the partnercenter-adapter binary (default: next to cosellctl, else PATH)")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	if _, err := parseSince(*since); err != nil {
		return err
	}
	if err := noJSON(e); err != nil {
		return err
	}
	bin, err := adapterBinary(*binFlag)
	if err != nil {
		return err
	}
	return runAdapter(ctx, e, bin, "backfill", "--since", *since)
}

// parseSince checks a --since value the way the adapter reads it.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, usagef("--since is required (YYYY-MM-DD or RFC 3339)")
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since %q: want a date (2026-01-31) or an RFC 3339 time (2026-01-31T08:00:00Z)", s)
}

func runPCLogin(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "[--partnercenter-adapter-bin PATH]",
		`Runs the one-time device-code consent of the Secure Application Model
('partnercenter-adapter login'): it prints a code and a URL; an admin of the
partner tenant signs in there, and the refresh token is stored encrypted for the
adapter's replicas. Needs the adapter's PC_* variables (PC_AUTH_MODE=sam,
PC_TOKEN_KEY, ...) in this shell.`)
	binFlag := fs.String("partnercenter-adapter-bin", "", "`path` of the partnercenter-adapter binary (default: next to cosellctl, else PATH)")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	if err := noJSON(e); err != nil {
		return err
	}
	bin, err := adapterBinary(*binFlag)
	if err != nil {
		return err
	}
	return runAdapter(ctx, e, bin, "login")
}
