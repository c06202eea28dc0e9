// Package pcemutest runs the real partnercenter-emulator binary for the
// adapter's tests: Main builds it once per test binary, Start runs one
// emulator per test on a free port, and Emulator wraps the emulator's
// control API (seed referrals, inject faults, read counters, approve
// device codes).
package pcemutest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The emulator's development credentials (its flag defaults).
const (
	ClientID     = "5e1c0a7d-9b3f-4c2e-8d6a-1f4b7e9c2a35"
	ClientSecret = "dev-client-secret"
	Username     = "referrals-admin@contoso-partner.onmicrosoft.com"
	Password     = "dev-password"
	TenantID     = "0b5f6e8c-3d1a-4f7e-9c2b-6a4d8e1f3b70"
)

// binaryPath is where Main builds the emulator for this test process; it
// is derived from the pid so no package state is needed.
func binaryPath() string {
	return filepath.Join(os.TempDir(), "cosell-pcemu-"+strconv.Itoa(os.Getpid()))
}

// Main builds the emulator, runs the tests and removes the binary. Call it
// from TestMain: os.Exit(pcemutest.Main(m)).
func Main(m interface{ Run() int }) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pcemutest:", err)
		return 2
	}
	cmd := exec.Command("go", "build", "-o", binaryPath(), "github.com/cosell/cosell/emulators/cmd/partnercenter-emulator")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "pcemutest: build emulator:", err)
		return 2
	}
	defer os.Remove(binaryPath())
	return m.Run()
}

// repoRoot is the directory holding go.work above the working directory.
func repoRoot() (string, error) {
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
			return "", fmt.Errorf("no go.work above %s", dir)
		}
		dir = parent
	}
}

// Emulator is one running emulator.
type Emulator struct {
	// URL is its base URL (every host's paths and the control API).
	URL string
	t   testing.TB
}

// Start runs an emulator for t with extra flags (e.g. "-page-size", "3")
// and stops it when the test ends.
func Start(t testing.TB, args ...string) *Emulator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pcemutest: free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(binaryPath(), append([]string{"-addr", addr, "-log-level", "warn"}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("pcemutest: start emulator: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed emulator says nothing
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("emulator log:\n%s", logs.String())
		}
	})
	e := &Emulator{URL: "http://" + addr, t: t}
	for i := 0; ; i++ {
		select {
		case <-exited:
			t.Fatalf("pcemutest: emulator exited at start:\n%s", logs.String())
		default:
		}
		res, err := http.Get(e.URL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return e
			}
		}
		if i > 300 {
			t.Fatalf("pcemutest: emulator not healthy: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call makes a control API request and decodes a JSON answer into out
// (when non-nil), failing the test on an unexpected status.
func (e *Emulator) call(method, path string, body any, want int, out any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatalf("pcemutest: encode: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.URL+path, rd)
	if err != nil {
		e.t.Fatalf("pcemutest: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("pcemutest: %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		e.t.Fatalf("pcemutest: %s %s: status %d, want %d: %s", method, path, res.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("pcemutest: %s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// Referral is the part of a referral the tests look at.
type Referral struct {
	ID              string `json:"id"`
	EngagementID    string `json:"engagementId"`
	OrganizationID  string `json:"organizationId"`
	UpdatedDateTime string `json:"updatedDateTime"`
	ETag            string `json:"eTag"`
	Name            string `json:"name"`
	// ExternalReferenceID, Status and Substatus matter to the outbound
	// tests.
	ExternalReferenceID string `json:"externalReferenceId"`
	Status              string `json:"status"`
	Substatus           string `json:"substatus"`
}

// SeedInbound creates an inbound referral as a Microsoft seller would,
// without Microsoft's related referral unless related is true, and returns
// the partner's referral.
func (e *Emulator) SeedInbound(name string, related bool) Referral {
	e.t.Helper()
	var out struct {
		Referral Referral `json:"referral"`
	}
	e.call(http.MethodPost, "/_emulator/referrals?related="+strconv.FormatBool(related), map[string]any{"name": name}, http.StatusCreated, &out)
	return out.Referral
}

// Edit changes a referral's name as a Microsoft seller would, and returns
// the updated referral.
func (e *Emulator) Edit(id, name string) Referral {
	e.t.Helper()
	var out Referral
	e.call(http.MethodPatch, "/_emulator/referrals/"+id, []map[string]any{{"op": "replace", "path": "/name", "value": name}}, http.StatusOK, &out)
	return out
}

// Fault is a fault to inject.
type Fault struct {
	Endpoint   string `json:"endpoint"`
	Kind       string `json:"kind"`
	Count      int    `json:"count,omitempty"`
	RetryAfter int    `json:"retryAfter,omitempty"`
	// Latency delays the faulted call ("250ms"); with Kind "latency" it
	// is the whole fault.
	Latency string `json:"latency,omitempty"`
}

// AddFault injects f.
func (e *Emulator) AddFault(f Fault) {
	e.t.Helper()
	e.call(http.MethodPost, "/_emulator/faults", f, http.StatusCreated, nil)
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.t.Helper()
	e.call(http.MethodDelete, "/_emulator/faults", nil, http.StatusNoContent, nil)
}

// Referrals returns every referral the emulator holds, in creation order.
func (e *Emulator) Referrals() []Referral {
	e.t.Helper()
	var out struct {
		Referrals []Referral `json:"referrals"`
	}
	e.call(http.MethodGet, "/_emulator/state", nil, http.StatusOK, &out)
	return out.Referrals
}

// Counters returns the calls per endpoint name so far.
func (e *Emulator) Counters() map[string]int {
	e.t.Helper()
	var out struct {
		Counters map[string]int `json:"counters"`
	}
	e.call(http.MethodGet, "/_emulator/counters", nil, http.StatusOK, &out)
	return out.Counters
}

// ResetCounters zeroes the counters.
func (e *Emulator) ResetCounters() {
	e.t.Helper()
	e.call(http.MethodDelete, "/_emulator/counters", nil, http.StatusNoContent, nil)
}

// ApproveDeviceCode approves the pending sign-in with userCode.
func (e *Emulator) ApproveDeviceCode(userCode string) {
	e.t.Helper()
	e.call(http.MethodPost, "/_emulator/devicecode/approve", map[string]string{"user_code": userCode}, http.StatusOK, nil)
}

// ExpireTokens makes every issued access token expired (401); refresh
// tokens keep working.
func (e *Emulator) ExpireTokens() {
	e.t.Helper()
	e.call(http.MethodPost, "/_emulator/tokens/expire", nil, http.StatusOK, nil)
}

// TokenStats returns the emulator's token statistics.
func (e *Emulator) TokenStats() map[string]any {
	e.t.Helper()
	var out struct {
		Tokens map[string]any `json:"tokens"`
	}
	e.call(http.MethodGet, "/_emulator/state", nil, http.StatusOK, &out)
	return out.Tokens
}
