package salesforce

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testKeys is the connected app's key pair, generated once per test binary
// because RSA key generation is slow.
var testKeys = sync.OnceValues(func() (keyPair, error) { return newTestKeyPair() })

type keyPair struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

func newTestKeyPair() (keyPair, error) {
	certPEM, keyPEM, err := NewKeyPair("test")
	if err != nil {
		return keyPair{}, err
	}
	cb, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return keyPair{}, err
	}
	kb, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{cert: cert, key: k.(*rsa.PrivateKey)}, nil
}

// fakeClock is a settable clock so expiry tests never sleep.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is one emulator behind httptest with a client-credentials token.
type harness struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	clock *fakeClock
	keys  keyPair
	token string
}

const v = "/services/data/v62.0"

func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, keys: keys, clock: &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	h.ts = httptest.NewUnstartedServer(nil)
	cfg := Config{
		JWTCerts:  []*x509.Certificate{keys.cert},
		PublicURL: "http://" + h.ts.Listener.Addr().String(),
		Now:       h.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.ts.Config.Handler = h.srv
	h.ts.Start()
	t.Cleanup(func() {
		h.ts.Close()
		_ = h.srv.Close()
	})
	h.token = h.clientCredentials()
	return h
}

func (h *harness) clientCredentials() string {
	h.t.Helper()
	resp, body := h.form("/services/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
	})
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tr tokenResponse
	mustUnmarshal(h.t, body, &tr)
	return tr.AccessToken
}

func (h *harness) form(path string, vals url.Values) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(vals.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.send(req)
}

func (h *harness) send(req *http.Request) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

// do sends an authenticated REST request; body may be a string (sent as
// is), nil, or any value (JSON-encoded). headers are name, value pairs.
func (h *harness) do(method, path string, body any, headers ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.doToken(h.token, method, path, body, headers...)
}

func (h *harness) doToken(token, method, path string, body any, headers ...string) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return h.send(req)
}

// expect checks the status and decodes the body into out (when non-nil).
func (h *harness) expect(method, path string, body any, status int, out any, headers ...string) []byte {
	h.t.Helper()
	resp, b := h.do(method, path, body, headers...)
	if resp.StatusCode != status {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		mustUnmarshal(h.t, b, out)
	}
	return b
}

// expectError checks a REST error array's status, first errorCode and,
// when message is non-empty, its exact message.
func (h *harness) expectError(method, path string, body any, status int, code, message string, headers ...string) []restErr {
	h.t.Helper()
	var errs []restErr
	h.expect(method, path, body, status, &errs, headers...)
	if len(errs) == 0 || errs[0].ErrorCode != code {
		h.t.Fatalf("%s %s: errors %+v, want code %s", method, path, errs, code)
	}
	if message != "" && errs[0].Message != message {
		h.t.Fatalf("%s %s: message %q, want %q", method, path, errs[0].Message, message)
	}
	return errs
}

// restErr is the decoded REST error entry; Fields is nil when absent.
type restErr struct {
	Message   string    `json:"message"`
	ErrorCode string    `json:"errorCode"`
	Fields    *[]string `json:"fields"`
}

func mustUnmarshal(t testing.TB, b []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// newOpp returns a valid Opportunity body with extra fields merged in.
func newOpp(extra map[string]any) map[string]any {
	m := map[string]any{"Name": "Contoso expansion", "StageName": "Prospecting", "CloseDate": "2026-06-30"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// create creates a record and returns its id.
func (h *harness) create(object string, body map[string]any) string {
	h.t.Helper()
	var res struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
	}
	h.expect(http.MethodPost, v+"/sobjects/"+object, body, http.StatusCreated, &res)
	if !res.Success || len(res.ID) != 18 {
		h.t.Fatalf("create %s: %+v", object, res)
	}
	return res.ID
}

func (h *harness) get(object, id string) map[string]any {
	h.t.Helper()
	var rec map[string]any
	h.expect(http.MethodGet, v+"/sobjects/"+object+"/"+id, nil, http.StatusOK, &rec)
	return rec
}

// assertion signs a JWT-bearer assertion with key and the given claims.
func assertion(t *testing.T, key any, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queryResult is a decoded query, queryAll or locator page.
type queryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl,omitempty"`
	Records        []map[string]any `json:"records"`
}
