// Package sfemutest runs the real Salesforce emulator binary for the
// adapter's tests: TestMain builds it once per test binary with Build, and
// each test starts its own process on a free port with Start, talks to it
// like to Salesforce, and reads its call counters, limits and records or
// injects faults through the emulator's control API (/_emulator/).
//
// The adapter may not import the emulator's internal packages, and should
// not: a separate process is exactly what the adapter sees in production,
// an HTTP server somewhere else.
package sfemutest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Credentials the emulator accepts by default.
const (
	ClientID     = "cosell-dev-client-id"
	ClientSecret = "cosell-dev-client-secret"
	Username     = "integration@cosell.example"
	Audience     = "https://login.salesforce.com"
)

// emulatorPkg is the emulator's main package.
const emulatorPkg = "github.com/cosell/cosell/emulators/cmd/salesforce-emulator"

// Build compiles the emulator into dir and returns the binary's path. It
// runs from the workspace root (the nearest directory above the working
// directory holding go.work), so the emulator module resolves as in the
// repository.
func Build(dir string) (string, error) {
	root, err := workspaceRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "salesforce-emulator")
	cmd := exec.Command("go", "build", "-o", bin, emulatorPkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build salesforce emulator: %w\n%s", err, out)
	}
	return bin, nil
}

func workspaceRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find workspace root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find workspace root: no go.work above the working directory")
		}
		dir = parent
	}
}

// Options adjust one emulator process.
type Options struct {
	// APILimit is the org's daily API allocation; 0 keeps the emulator's
	// default.
	APILimit int64
	// Args are further flags.
	Args []string
}

// Emulator is one running emulator process.
type Emulator struct {
	// URL is the base URL: login host and instance at once.
	URL string
	// KeyFile is a PEM (PKCS#1) RSA key whose certificate the emulator
	// trusts for JWT bearer assertions.
	KeyFile string
	// Key is the parsed KeyFile.
	Key *rsa.PrivateKey

	t    testing.TB
	http *http.Client
}

// Start runs the emulator binary bin on a free loopback port until the
// test ends.
func Start(t testing.TB, bin string, o Options) *Emulator {
	t.Helper()
	dir := t.TempDir()
	key, keyFile, certFile, err := writeKeyPair(dir)
	if err != nil {
		t.Fatalf("sfemutest: %v", err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("sfemutest: %v", err)
	}
	args := []string{"-addr", addr, "-jwt-cert", certFile, "-log-level", "warn"}
	if o.APILimit > 0 {
		args = append(args, "-api-limit", strconv.FormatInt(o.APILimit, 10))
	}
	args = append(args, o.Args...)
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("sfemutest: start emulator: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	e := &Emulator{URL: "http://" + addr, KeyFile: keyFile, Key: key, t: t, http: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("sfemutest: emulator exited: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := e.http.Get(e.URL + "/services/data/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sfemutest: emulator not ready: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeKeyPair writes a fresh RSA key (PKCS#1) and a self-signed
// certificate for it into dir.
func writeKeyPair(dir string) (*rsa.PrivateKey, string, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", "", fmt.Errorf("generate key: %w", err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "salesforce-adapter test JWT signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", "", fmt.Errorf("create certificate: %w", err)
	}
	keyFile, certFile := filepath.Join(dir, "jwt-key.pem"), filepath.Join(dir, "jwt-cert.pem")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, "", "", fmt.Errorf("write key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return nil, "", "", fmt.Errorf("write certificate: %w", err)
	}
	return key, keyFile, certFile, nil
}

// control calls the control API and decodes a JSON answer into out.
func (e *Emulator) control(method, path string, in, out any) {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			e.t.Fatalf("sfemutest: encode %s %s: %v", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.URL+"/_emulator"+path, body)
	if err != nil {
		e.t.Fatalf("sfemutest: %v", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("sfemutest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		e.t.Fatalf("sfemutest: %s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("sfemutest: decode %s %s: %v: %s", method, path, err, data)
		}
	}
}

// Counters are the emulator's call counters.
type Counters struct {
	// Calls counts every call by endpoint name ("token", "query",
	// "composite.sobjects", ...), including refused ones.
	Calls map[string]int64 `json:"calls"`
	// Counted counts the calls that counted against the API limit.
	Counted map[string]int64 `json:"countedAgainstLimit"`
	// APIUsage is the org's rolling usage.
	APIUsage struct {
		Used int64 `json:"used"`
		Max  int64 `json:"max"`
	} `json:"apiUsage"`
}

// Counters reads the call counters.
func (e *Emulator) Counters() Counters {
	e.t.Helper()
	var c Counters
	e.control(http.MethodGet, "/counters", nil, &c)
	return c
}

// ResetCounters zeroes the call counters (not the API usage).
func (e *Emulator) ResetCounters() {
	e.t.Helper()
	e.control(http.MethodDelete, "/counters", nil, nil)
}

// Fault is an injected misbehaviour; see emulators/docs/salesforce.md.
type Fault struct {
	Endpoint string  `json:"endpoint,omitempty"`
	Kind     string  `json:"kind"`
	Count    int     `json:"count,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	Latency  string  `json:"latency,omitempty"`
}

// AddFault injects f.
func (e *Emulator) AddFault(f Fault) {
	e.t.Helper()
	e.control(http.MethodPost, "/faults", f, nil)
}

// RevokeTokens ends every session, as an admin revoking the app would.
func (e *Emulator) RevokeTokens() {
	e.t.Helper()
	e.control(http.MethodPost, "/tokens/revoke", nil, nil)
}

// SetUsage sets the org's rolling API usage (and allocation when max > 0).
func (e *Emulator) SetUsage(used, max int64) {
	e.t.Helper()
	e.control(http.MethodPut, "/limits", map[string]int64{"used": used, "max": max}, nil)
}

// Records lists every record of object, as the API would render them.
func (e *Emulator) Records(object string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	e.control(http.MethodGet, "/records/"+object, nil, &out)
	return out
}

// CreateRecord creates a record as the seeded seller and returns it.
func (e *Emulator) CreateRecord(object string, fields map[string]any) map[string]any {
	e.t.Helper()
	var out map[string]any
	e.control(http.MethodPost, "/records/"+object, fields, &out)
	return out
}

// DeleteRecord deletes a record (to the recycle bin).
func (e *Emulator) DeleteRecord(object, id string) {
	e.t.Helper()
	e.control(http.MethodDelete, "/records/"+object+"/"+id, nil, nil)
}

// Record reads one record (also from the recycle bin).
func (e *Emulator) Record(object, id string) map[string]any {
	e.t.Helper()
	var out map[string]any
	e.control(http.MethodGet, "/records/"+object+"/"+id, nil, &out)
	return out
}

// UpdateRecord changes a record as the seeded seller and returns it.
func (e *Emulator) UpdateRecord(object, id string, fields map[string]any) map[string]any {
	e.t.Helper()
	var out map[string]any
	e.control(http.MethodPatch, "/records/"+object+"/"+id, fields, &out)
	return out
}

// AdvanceClock moves the org's clock forward by d.
func (e *Emulator) AdvanceClock(d time.Duration) {
	e.t.Helper()
	e.control(http.MethodPost, "/clock", map[string]string{"advance": d.String()}, nil)
}

// Users returns the ids of the integration user and the seeded seller.
func (e *Emulator) Users() (integration, seller string) {
	e.t.Helper()
	var out struct {
		Integration struct {
			ID string `json:"id"`
		} `json:"integration"`
		Seller struct {
			ID string `json:"id"`
		} `json:"seller"`
	}
	e.control(http.MethodGet, "/users", nil, &out)
	return out.Integration.ID, out.Seller.ID
}
