package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/httpx"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/admin"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/registration"
)

// pcClient is an adapter client for the emulator; tokens nil means the
// emulator's password grant.
func pcClient(t *testing.T, emu *pcemutest.Emulator, tokens pcclient.TokenSource) *pcclient.Client {
	t.Helper()
	if tokens == nil {
		ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
		tokens = auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password))
	}
	c, err := pcclient.New(pcclient.Config{APIBaseURL: emu.URL, WebhookAPIBaseURL: emu.URL, Tokens: tokens, MaxAttempts: 2,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveWebhook serves wh's routes (API defaults to a client of emu).
func serveWebhook(t *testing.T, emu *pcemutest.Emulator, wh *admin.Webhook) string {
	t.Helper()
	if wh.API == nil {
		wh.API = pcClient(t, emu, nil)
	}
	if wh.Mode == "" {
		wh.Mode = config.ModeWebhook
	}
	srv := httpx.New(httpx.Config{})
	wh.Routes(srv.Router())
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// receiver is a webhook endpoint counting what Partner Center delivers.
func receiver(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/webhooks/partnercenter", &n
}

func call(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

type errorAnswer struct {
	Error struct {
		Code              string `json:"code"`
		Message           string `json:"message"`
		UpstreamStatus    int    `json:"upstreamStatus"`
		RetryAfterSeconds int    `json:"retryAfterSeconds"`
	} `json:"error"`
	Webhook *admin.WebhookView `json:"webhook"`
}

func TestWebhookShowRegisterAndTest(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, delivered := receiver(t)
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours, RegisterAtStart: true})
	pc := pcClient(t, emu, nil)
	ctx := t.Context()

	status, _, body := call(t, http.MethodGet, base+"/admin/webhook", "")
	v := decode[admin.WebhookView](t, body)
	if status != http.StatusOK || v.Verdict != admin.VerdictMissing || v.Current != nil || v.Mode != "webhook" || !v.WebhooksEnabled ||
		!v.RegistersAtStart || v.Wanted.WebhookURL != ours || !slices.Equal(v.Wanted.WebhookEvents, registration.Events()) {
		t.Fatalf("show before any registration: %d %s", status, body)
	}

	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", `{}`)
	res := decode[admin.RegisterResult](t, body)
	if status != http.StatusOK || res.Action != "create" || res.Outcome != "created" || !res.Changed || res.Webhook.Verdict != admin.VerdictRegistered {
		t.Fatalf("first register: %d %s", status, body)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", "")
	res = decode[admin.RegisterResult](t, body)
	if status != http.StatusOK || res.Outcome != "unchanged" || res.Changed {
		t.Fatalf("second register: %d %s", status, body)
	}
	status, _, body = call(t, http.MethodGet, base+"/admin/webhook", "")
	v = decode[admin.WebhookView](t, body)
	if status != http.StatusOK || v.Verdict != admin.VerdictRegistered || !v.URLMatches || len(v.MissingEvents) != 0 || v.Current.WebhookURL != ours {
		t.Fatalf("show after register: %d %s", status, body)
	}

	// A test event: test-created is added first, then Partner Center
	// delivers to our receiver and reports it completed.
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/test", "")
	tr := decode[admin.TestResult](t, body)
	if status != http.StatusOK || tr.CorrelationID == "" || !tr.AddedTestEvent || tr.Status == "" || tr.WebhookURL != ours || tr.RequestedAt.IsZero() {
		t.Fatalf("test: %d %s", status, body)
	}
	reg, _, err := pc.GetRegistration(ctx)
	if err != nil || !slices.Contains(reg.WebhookEvents, registration.TestEvent) || len(registration.MissingEvents(reg)) != 0 {
		t.Fatalf("registration after test: %+v %v", reg, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body = call(t, http.MethodGet, base+"/admin/webhook/test/"+tr.CorrelationID, "")
		st := decode[pcclient.ValidationStatus](t, body)
		if status == http.StatusOK && st.Status == "completed" && len(st.Results) > 0 && st.Results[0].ResponseCode == "Accepted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("validation status never completed: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if delivered.Load() < 1 {
		t.Errorf("the receiver got no test event")
	}
	// Still registered (extra events do not matter); a second test adds nothing.
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", "{}")
	if res := decode[admin.RegisterResult](t, body); status != http.StatusOK || res.Outcome != "unchanged" {
		t.Errorf("register after test: %d %s", status, body)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/test", "")
	if tr := decode[admin.TestResult](t, body); status != http.StatusOK || tr.AddedTestEvent {
		t.Errorf("second test: %d %s", status, body)
	}
	// Partner Center allows two a minute: the third is throttled, and says so.
	status, h, body := call(t, http.MethodPost, base+"/admin/webhook/test", "")
	e := decode[errorAnswer](t, body)
	if status != http.StatusTooManyRequests || e.Error.Code != "partnerCenterThrottled" || e.Error.UpstreamStatus != 429 ||
		e.Error.RetryAfterSeconds <= 0 || h.Get("Retry-After") == "" {
		t.Errorf("third test within a minute: %d %v %s", status, h, body)
	}

	status, _, body = call(t, http.MethodGet, base+"/admin/webhook/test/9d4e3c1a-0000-4000-8000-000000000404", "")
	if e := decode[errorAnswer](t, body); status != http.StatusNotFound || e.Error.Code != "itemNotFound" {
		t.Errorf("unknown correlation id: %d %s", status, body)
	}
}

func TestWebhookRegistrationElsewhere(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, _ := receiver(t)
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours})
	pc := pcClient(t, emu, nil)
	ctx := t.Context()
	prod := "https://cosell.contoso.example/webhooks/partnercenter"
	if _, err := pc.CreateRegistration(ctx, pcclient.Registration{WebhookURL: prod, WebhookEvents: registration.Events()}); err != nil {
		t.Fatal(err)
	}

	status, _, body := call(t, http.MethodGet, base+"/admin/webhook", "")
	v := decode[admin.WebhookView](t, body)
	if status != http.StatusOK || v.Verdict != admin.VerdictDiffers || v.URLMatches || v.Current.WebhookURL != prod || !strings.Contains(v.Detail, prod) {
		t.Fatalf("show: %d %s", status, body)
	}

	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", `{"overwrite":false}`)
	e := decode[errorAnswer](t, body)
	if status != http.StatusConflict || e.Error.Code != "registrationElsewhere" || !strings.Contains(e.Error.Message, prod) ||
		!strings.Contains(e.Error.Message, "overwrite") || e.Webhook == nil || e.Webhook.Verdict != admin.VerdictDiffers {
		t.Fatalf("register without overwrite: %d %s", status, body)
	}
	if reg, _, err := pc.GetRegistration(ctx); err != nil || reg.WebhookURL != prod {
		t.Fatalf("the registration was touched: %+v %v", reg, err)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/test", "")
	if e := decode[errorAnswer](t, body); status != http.StatusConflict || e.Error.Code != "registrationElsewhere" {
		t.Errorf("test while registered elsewhere: %d %s", status, body)
	}

	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", `{"overwrite":true}`)
	res := decode[admin.RegisterResult](t, body)
	if status != http.StatusOK || res.Outcome != "overwritten" || res.Webhook.Verdict != admin.VerdictRegistered {
		t.Fatalf("register with overwrite: %d %s", status, body)
	}

	// Ours, but lacking events: differs, and register adds them.
	if _, err := pc.UpdateRegistration(ctx, pcclient.Registration{WebhookURL: ours, WebhookEvents: []string{"referral-updated"}}); err != nil {
		t.Fatal(err)
	}
	status, _, body = call(t, http.MethodGet, base+"/admin/webhook", "")
	v = decode[admin.WebhookView](t, body)
	if v.Verdict != admin.VerdictDiffers || !v.URLMatches || len(v.MissingEvents) != 3 {
		t.Errorf("show with missing events: %d %s", status, body)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", `{}`)
	if res := decode[admin.RegisterResult](t, body); status != http.StatusOK || res.Outcome != "updated" || res.Webhook.Verdict != admin.VerdictRegistered {
		t.Errorf("register adding events: %d %s", status, body)
	}
}

func TestWebhookPollOnlyRefusesUnlessForced(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, _ := receiver(t)
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours, Mode: config.ModePollOnly})
	pc := pcClient(t, emu, nil)

	status, _, body := call(t, http.MethodGet, base+"/admin/webhook", "")
	v := decode[admin.WebhookView](t, body)
	if status != http.StatusOK || v.Mode != config.ModePollOnly || v.WebhooksEnabled || v.Verdict != admin.VerdictMissing || !strings.Contains(v.Detail, "poll-only") {
		t.Fatalf("show: %d %s", status, body)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", `{"overwrite":true}`)
	e := decode[errorAnswer](t, body)
	if status != http.StatusConflict || e.Error.Code != "pollOnly" || !strings.Contains(e.Error.Message, "production") || !strings.Contains(e.Error.Message, "force") {
		t.Fatalf("register in poll-only mode: %d %s", status, body)
	}
	if _, found, err := pc.GetRegistration(t.Context()); err != nil || found {
		t.Fatalf("poll-only register wrote a registration: %v %v", found, err)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", `{"force":true}`)
	if res := decode[admin.RegisterResult](t, body); status != http.StatusOK || res.Outcome != "created" {
		t.Fatalf("forced register: %d %s", status, body)
	}
}

func TestWebhookErrors(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, _ := receiver(t)
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours})

	for _, b := range []string{`{"overwirte":true}`, `[1]`, `{"overwrite":"yes"}`} {
		status, _, body := call(t, http.MethodPost, base+"/admin/webhook/register", b)
		if e := decode[errorAnswer](t, body); status != http.StatusBadRequest || e.Error.Code != "invalidRequest" {
			t.Errorf("register %s: %d %s", b, status, body)
		}
	}
	status, _, body := call(t, http.MethodPost, base+"/admin/webhook/test", "")
	if e := decode[errorAnswer](t, body); status != http.StatusConflict || e.Error.Code != "notRegistered" || !strings.Contains(e.Error.Message, "register") {
		t.Errorf("test without a registration: %d %s", status, body)
	}

	// Partner Center down: 502 with its status, for every route.
	emu.AddFault(pcemutest.Fault{Endpoint: "webhooks.registration", Kind: "503", Count: 100})
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/admin/webhook"}, {http.MethodPost, "/admin/webhook/register"}, {http.MethodPost, "/admin/webhook/test"},
		{http.MethodGet, "/admin/webhook/test/9d4e3c1a-0000-4000-8000-000000000001"},
	} {
		status, _, body := call(t, r.method, base+r.path, "")
		e := decode[errorAnswer](t, body)
		if status != http.StatusBadGateway || e.Error.Code != "partnerCenterUnavailable" || e.Error.UpstreamStatus != 503 || !strings.Contains(e.Error.Message, "HTTP 503") {
			t.Errorf("%s %s with Partner Center down: %d %s", r.method, r.path, status, body)
		}
	}
	emu.ClearFaults()

	// No PC_WEBHOOK_URL: nothing to register or test.
	noURL := serveWebhook(t, emu, &admin.Webhook{})
	for _, p := range []string{"/admin/webhook/register", "/admin/webhook/test"} {
		status, _, body := call(t, http.MethodPost, noURL+p, "")
		if e := decode[errorAnswer](t, body); status != http.StatusConflict || e.Error.Code != "noWebhookUrl" || !strings.Contains(e.Error.Message, "PC_WEBHOOK_URL") {
			t.Errorf("%s without a URL: %d %s", p, status, body)
		}
	}
}

// fixedToken is a token source whose token Partner Center refuses.
type fixedToken string

func (f fixedToken) Token(context.Context, string) (string, error) { return string(f), nil }
func (fixedToken) Invalidate(string, string)                       {}

func TestWebhookAuthFailuresCarryNoSecrets(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, _ := receiver(t)
	const bogus = "eyJhbGciOiJub25lIn0.c2VjcmV0LXRva2Vu.sig"
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours, API: pcClient(t, emu, fixedToken(bogus))})
	status, _, body := call(t, http.MethodGet, base+"/admin/webhook", "")
	e := decode[errorAnswer](t, body)
	if status != http.StatusBadGateway || e.Error.Code != "partnerCenterUnauthorized" || e.Error.UpstreamStatus != 401 || bytes.Contains(body, []byte(bogus)) {
		t.Errorf("refused token: %d %s", status, body)
	}

	ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret, Attempts: 1}
	const wrong = "not-the-password-42"
	bad := pcClient(t, emu, auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, wrong)))
	base = serveWebhook(t, emu, &admin.Webhook{URL: ours, API: bad})
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", "")
	e = decode[errorAnswer](t, body)
	if status != http.StatusBadGateway || e.Error.Code != "partnerCenterSignInFailed" || e.Error.UpstreamStatus < 400 ||
		bytes.Contains(body, []byte(wrong)) || bytes.Contains(body, []byte(pcemutest.ClientSecret)) {
		t.Errorf("sign-in refused: %d %s", status, body)
	}
}

func TestWebhookThrottled(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, _ := receiver(t)
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours})
	emu.AddFault(pcemutest.Fault{Endpoint: "webhooks.registration", Kind: "429", RetryAfter: 30, Count: 1})
	status, h, body := call(t, http.MethodGet, base+"/admin/webhook", "")
	e := decode[errorAnswer](t, body)
	if status != http.StatusTooManyRequests || e.Error.Code != "partnerCenterThrottled" || e.Error.UpstreamStatus != 429 ||
		e.Error.RetryAfterSeconds != 30 || h.Get("Retry-After") != "30" {
		t.Errorf("throttled: %d %v %s", status, h, body)
	}
}

// TestWebhookRegisterHoldsTheRegistrationLease: register waits for the
// lease the start-up registration holds, and says so when it stays busy.
func TestWebhookRegisterHoldsTheRegistrationLease(t *testing.T) {
	emu := pcemutest.Start(t)
	ours, _ := receiver(t)
	pool := storetest.NewDB(t, "partnercenter-adapter", storetest.RepoMigrations(t, "partnercenter-adapter"))
	const name = "partnercenter-adapter/registration"
	base := serveWebhook(t, emu, &admin.Webhook{URL: ours, Lease: store.NewLease(pool, name), LeaseWait: 300 * time.Millisecond})

	// Another replica holds the lease (its start-up registration retrying).
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- store.NewLease(pool, name).Run(context.Background(), func(context.Context) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	status, _, body := call(t, http.MethodPost, base+"/admin/webhook/register", "")
	if e := decode[errorAnswer](t, body); status != http.StatusServiceUnavailable || e.Error.Code != "registrationBusy" {
		t.Errorf("register while the lease is held: %d %s", status, body)
	}
	if _, found, err := pcClient(t, emu, nil).GetRegistration(t.Context()); err != nil || found {
		t.Fatalf("registered without the lease: %v %v", found, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	status, _, body = call(t, http.MethodPost, base+"/admin/webhook/register", "")
	if res := decode[admin.RegisterResult](t, body); status != http.StatusOK || res.Outcome != "created" {
		t.Errorf("register once the lease is free: %d %s", status, body)
	}
}
