package partnercenter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock so tests can expire tokens and see
// timestamps move without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one emulator behind a real loopback listener.
type env struct {
	t     testing.TB
	srv   *Server
	ts    *httptest.Server
	clock *testClock
	token string // a Referrals API access token
}

// newEnv starts an emulator; mutate adjusts the config first.
func newEnv(t testing.TB, mutate func(*Config)) *env {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	clock := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	cfg := Config{
		PublicURL: "http://" + ts.Listener.Addr().String(),
		Now:       clock.Now,
		PageSize:  5,
	}
	cfg.WebhookOptions.BackoffBase = time.Millisecond
	cfg.WebhookOptions.BackoffMax = 5 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e := &env{t: t, srv: srv, ts: ts, clock: clock}
	e.token = e.passwordToken(AudienceReferrals)["access_token"].(string)
	return e
}

// response is a captured HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value, failing the test if it is
// not JSON.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r.body)
	}
	return m
}

// do sends a request. body may be nil, a []byte/string (sent as is) or any
// value (sent as JSON). hdr alternates names and values.
func (e *env) do(method, path string, body any, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	u := path
	if strings.HasPrefix(path, "/") {
		u = e.ts.URL + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// api sends an authenticated Referrals API request.
func (e *env) api(method, path string, body any, hdr ...string) response {
	e.t.Helper()
	return e.do(method, path, body, append([]string{"Authorization", "Bearer " + e.token}, hdr...)...)
}

// form posts a form to the token endpoints.
func (e *env) form(path string, v url.Values) response {
	e.t.Helper()
	resp, err := e.ts.Client().PostForm(e.ts.URL+path, v)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (e *env) passwordForm(resource string) url.Values {
	cfg := e.srv.Config()
	return url.Values{
		"grant_type": {"password"}, "resource": {resource}, "scope": {"openid"},
		"client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret},
		"username": {cfg.Username}, "password": {cfg.Password},
	}
}

// passwordToken signs in with the password grant and returns the token JSON.
func (e *env) passwordToken(resource string) map[string]any {
	e.t.Helper()
	r := e.form("/common/oauth2/token", e.passwordForm(resource))
	if r.status != http.StatusOK {
		e.t.Fatalf("password grant: %d %s", r.status, r.body)
	}
	return r.json(e.t)
}

// validReferral is a co-sell referral body that create accepts.
func validReferral() map[string]any {
	return map[string]any{
		"name":          "Fabrikam data platform",
		"type":          "Shared",
		"qualification": "SalesQualified",
		"customerProfile": map[string]any{
			"name":    "Fabrikam Inc",
			"address": map[string]any{"addressLine1": "1 Main St", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US"},
			"team":    []any{map[string]any{"firstName": "Ann", "lastName": "Lee", "email": "ann@fabrikam.example"}},
		},
		"consent": map[string]any{"consentToShareReferralWithMicrosoftSellers": true, "consentToContact": true},
		"details": map[string]any{
			"notes": "n", "dealValue": 1000, "currency": "USD", "closingDateTime": "2026-06-30T00:00:00Z",
			"requirements": map[string]any{"solutions": []any{map[string]any{"id": "SOL-1-ABC", "type": "Name"}}},
		},
		"team":   []any{map[string]any{"firstName": "Pat", "lastName": "Partner", "email": "pat@contoso.example"}},
		"target": []any{map[string]any{"type": "SolutionProfile", "id": "SOL-1-ABC"}},
	}
}

// create posts a referral and returns the stored document.
func (e *env) create(body map[string]any) map[string]any {
	e.t.Helper()
	r := e.api(http.MethodPost, "/v1.0/engagements/referrals", body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return r.json(e.t)
}

// inbound creates a referral as a Microsoft seller and returns the
// partner's referral and Microsoft's.
func (e *env) inbound(body map[string]any) (ours, ms map[string]any) {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	r := e.do(http.MethodPost, "/_emulator/referrals", body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("control create: %d %s", r.status, r.body)
	}
	m := r.json(e.t)
	ours, _ = m["referral"].(map[string]any)
	ms, _ = m["relatedReferral"].(map[string]any)
	return ours, ms
}

// apiError returns error.code and error.target of an error body.
func apiErr(t testing.TB, r response) (code, target string) {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	code, _ = e["code"].(string)
	target, _ = e["target"].(string)
	if _, ok := e["message"].(string); !ok {
		t.Fatalf("error without message: %s", r.body)
	}
	if _, ok := e["innerError"]; !ok {
		t.Fatalf("error without innerError member: %s", r.body)
	}
	return code, target
}

// dig follows a /-separated path through decoded JSON.
func dig(v any, path string) any {
	for _, seg := range strings.Split(path, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[seg]
	}
	return v
}
