package pcwebhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
)

// hangGuard bounds every wait in these tests so a bug fails the test
// instead of hanging it; nothing asserts on how long anything took.
const hangGuard = 15 * time.Second

// sharedCADir holds one CA generated in TestMain and copied into each
// test's own directory, so tests pay for one RSA key per dispatcher rather
// than two. Tests that need a fresh CA make their own directory.
var sharedCADir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pcwebhooks-ca-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, _, _, _, err := loadOrCreateCA(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedCADir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// copyCA gives a test its own CA directory holding the shared CA.
func copyCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{CACertFile, CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(sharedCADir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// env is one emulator (dispatcher behind an HTTP server, mounted the way
// the Partner Center server mounts it) plus its CA directory.
type env struct {
	t     *testing.T
	d     *Dispatcher
	srv   *httptest.Server
	caDir string
}

// newEnv starts a dispatcher with test-friendly timings; adjust tweaks the
// config before New.
func newEnv(t *testing.T, adjust func(*Config)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := Config{
		PublicBaseURL: base,
		CADir:         copyCA(t),
		BackoffBase:   time.Millisecond,
		BackoffMax:    2 * time.Millisecond,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := chi.NewRouter()
	r.Mount("/webhooks/v1", d.Routes())
	r.Mount("/_emulator/webhooks", d.ControlRoutes())
	r.Method(http.MethodGet, d.CertificatePath(), d.CertificateHandler())
	r.Method(http.MethodHead, d.CertificatePath(), d.CertificateHandler())
	srv.Config.Handler = r
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	return &env{t: t, d: d, srv: srv, caDir: cfg.CADir}
}

// call makes a request to the emulator and returns status, headers and body.
func (e *env) call(method, path, contentType string, body string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

// register POSTs a registration and fails the test unless it succeeds.
func (e *env) register(url string, msHeader bool, events ...string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"WebhookUrl": url, "WebhookEvents": events, "SignatureTokenToMsSignatureHeader": msHeader,
	})
	st, _, b := e.call(http.MethodPost, "/webhooks/v1/registration", "application/json", string(body))
	if st != http.StatusOK {
		e.t.Fatalf("register: %d %s", st, b)
	}
}

// addFault injects a fault through the control API.
func (e *env) addFault(spec string) FaultView {
	e.t.Helper()
	st, _, b := e.call(http.MethodPost, "/_emulator/webhooks/faults", "application/json", spec)
	if st != http.StatusCreated {
		e.t.Fatalf("add fault %s: %d %s", spec, st, b)
	}
	var f FaultView
	if err := json.Unmarshal(b, &f); err != nil {
		e.t.Fatalf("decoding fault: %v", err)
	}
	return f
}

// waitFor polls cond until it holds, failing after hangGuard.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// settled waits until delivery id reaches status and returns it.
func (e *env) settled(id, status string) Delivery {
	e.t.Helper()
	var got Delivery
	e.waitFor("delivery "+id+" to be "+status, func() bool {
		got, _ = e.d.Delivery(id)
		return got.Status == status
	})
	return got
}

// received is one request a receiver got.
type received struct {
	body   []byte
	header http.Header
}

// receiver is a webhook endpoint that records every request and answers
// with the status chosen by respond (by 1-based request number).
type receiver struct {
	srv  *httptest.Server
	reqs chan received
	hits atomic.Int64

	mu      sync.Mutex
	respond func(n int) int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{reqs: make(chan received, 1024), respond: func(int) int { return http.StatusAccepted }}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n := int(rc.hits.Add(1))
		rc.mu.Lock()
		status := rc.respond(n)
		rc.mu.Unlock()
		rc.reqs <- received{body: b, header: r.Header.Clone()}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setRespond(f func(n int) int) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

// next returns the next request, failing the test after hangGuard.
func (rc *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-rc.reqs:
		return r
	case <-time.After(hangGuard):
		t.Fatalf("receiver got no request")
		return received{}
	}
}

// eventOf decodes a delivery body.
func eventOf(t *testing.T, b []byte) eventBody {
	t.Helper()
	var ev eventBody
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decoding event %s: %v", b, err)
	}
	return ev
}

// lastDelivery returns the newest log entry.
func (e *env) lastDelivery() Delivery {
	e.t.Helper()
	all := e.d.Deliveries()
	if len(all) == 0 {
		e.t.Fatalf("delivery log is empty")
	}
	return all[len(all)-1]
}
