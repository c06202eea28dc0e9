package pcclient_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

// newClient returns a client on emu using the password grant, with short
// backoffs so retries do not slow the tests down.
func newClient(t *testing.T, emu *pcemutest.Emulator, adjust func(*pcclient.Config)) *pcclient.Client {
	t.Helper()
	ep := &auth.Endpoint{TokenURL: emu.URL + "/" + pcemutest.TenantID + "/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	cfg := pcclient.Config{
		APIBaseURL:        emu.URL,
		WebhookAPIBaseURL: emu.URL,
		Tokens:            auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password)),
		MaxConcurrency:    4,
		BackoffInitial:    5 * time.Millisecond,
		BackoffMax:        20 * time.Millisecond,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := pcclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetReferral(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	seeded := emu.SeedInbound("Contoso migration", false)

	got, err := c.GetReferral(context.Background(), seeded.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != seeded.ID || got.EngagementID != seeded.EngagementID || got.ETag != seeded.ETag {
		t.Errorf("got %+v, want the seeded referral %+v", got, seeded)
	}
	want, err := time.Parse(time.RFC3339Nano, seeded.UpdatedDateTime)
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.Equal(want) {
		t.Errorf("UpdatedAt = %s, want %s", got.UpdatedAt, want)
	}
	if len(got.Raw) == 0 {
		t.Error("Raw is empty")
	}

	_, err = c.GetReferral(context.Background(), "00000000-0000-0000-0000-000000000000")
	if !pcclient.IsNotFound(err) {
		t.Fatalf("unknown referral: err = %v, want a 404", err)
	}
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Code != "itemNotFound" {
		t.Errorf("404 decoded as %+v, want code itemNotFound", ae)
	}
}

func TestListReferralsFollowsNextLink(t *testing.T) {
	emu := pcemutest.Start(t, "-page-size", "3")
	c := newClient(t, emu, nil)
	want := map[string]bool{}
	for range 7 {
		want[emu.SeedInbound("r", false).ID] = true
	}

	var got []pcclient.Referral
	pages := 0
	err := c.ListReferrals(context.Background(), pcclient.ListQuery{OrderBy: "updatedDateTime desc"}, func(page []pcclient.Referral) (bool, error) {
		pages++
		got = append(got, page...)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 || len(got) != 7 {
		t.Fatalf("got %d referrals in %d pages, want 7 in 3", len(got), pages)
	}
	for i, r := range got {
		if !want[r.ID] {
			t.Errorf("unexpected referral %s", r.ID)
		}
		if i > 0 && r.UpdatedAt.After(got[i-1].UpdatedAt) {
			t.Errorf("not newest first at %d: %s after %s", i, r.UpdatedAt, got[i-1].UpdatedAt)
		}
	}

	// fn returning false stops the walk: one page only.
	emu.ResetCounters()
	err = c.ListReferrals(context.Background(), pcclient.ListQuery{OrderBy: "updatedDateTime desc"}, func([]pcclient.Referral) (bool, error) {
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := emu.Counters()["referrals.list"]; n != 1 {
		t.Errorf("stopped walk made %d list calls, want 1", n)
	}
}

func TestThrottlingHonoursRetryAfter(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ref := emu.SeedInbound("r", false)
	emu.ResetCounters()
	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.get", Kind: "429", Count: 2, RetryAfter: 1})

	start := time.Now()
	if _, err := c.GetReferral(context.Background(), ref.ID); err != nil {
		t.Fatal(err)
	}
	if n := emu.Counters()["referrals.get"]; n != 3 {
		t.Errorf("referrals.get called %d times, want 3 (two throttled, one served)", n)
	}
	// Retry-After is a lower bound the client must respect, not a timing
	// expectation: two throttles of 1 s each mean at least 2 s passed.
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("retried after %s, before the 2 s Partner Center asked for", waited)
	}
}

func TestLongRetryAfterIsReturnedToTheCaller(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, func(cfg *pcclient.Config) { cfg.MaxRetryAfter = 500 * time.Millisecond })
	ref := emu.SeedInbound("r", false)
	emu.ResetCounters()
	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.get", Kind: "429", Count: 1, RetryAfter: 7})

	_, err := c.GetReferral(context.Background(), ref.ID)
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.RetryAfter != 7*time.Second {
		t.Fatalf("err = %v, want a 429 carrying Retry-After 7s", err)
	}
	if n := emu.Counters()["referrals.get"]; n != 1 {
		t.Errorf("referrals.get called %d times, want 1 (no inline wait beyond MaxRetryAfter)", n)
	}
}

func TestServerErrorsAreRetriedWithinBounds(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, func(cfg *pcclient.Config) { cfg.MaxAttempts = 3 })
	ref := emu.SeedInbound("r", false)

	emu.ResetCounters()
	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.get", Kind: "500", Count: 2})
	if _, err := c.GetReferral(context.Background(), ref.ID); err != nil {
		t.Fatalf("two 500s then success: %v", err)
	}
	if n := emu.Counters()["referrals.get"]; n != 3 {
		t.Errorf("referrals.get called %d times, want 3", n)
	}

	emu.ResetCounters()
	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.get", Kind: "503", Count: 10})
	_, err := c.GetReferral(context.Background(), ref.ID)
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "serviceNotAvailable" || !ae.Temporary() {
		t.Fatalf("err = %v, want a temporary 503 serviceNotAvailable", err)
	}
	if n := emu.Counters()["referrals.get"]; n != 3 {
		t.Errorf("referrals.get called %d times, want MaxAttempts = 3", n)
	}
}

func TestUnauthorizedRefreshesTheTokenOnce(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ref := emu.SeedInbound("r", false)
	if _, err := c.GetReferral(context.Background(), ref.ID); err != nil {
		t.Fatal(err)
	}
	emu.ResetCounters()
	emu.ExpireTokens()

	if _, err := c.GetReferral(context.Background(), ref.ID); err != nil {
		t.Fatalf("after the token expired: %v", err)
	}
	counters := emu.Counters()
	if counters["referrals.get"] != 2 || counters["token"] != 1 {
		t.Errorf("counters %v, want 2 GETs (401, then success) and 1 token request", counters)
	}
}

func TestRegistrationRoundTrip(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ctx := context.Background()
	if _, found, err := c.GetRegistration(ctx); err != nil || found {
		t.Fatalf("fresh tenant: found=%v err=%v, want none", found, err)
	}
	reg := pcclient.Registration{WebhookURL: "http://127.0.0.1:1/hook", WebhookEvents: []string{"referral-created"}, SignatureTokenToMsSignatureHeader: true}
	created, err := c.CreateRegistration(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if created.SubscriberID == "" || created.WebhookURL != reg.WebhookURL {
		t.Errorf("created %+v", created)
	}
	_, err = c.CreateRegistration(ctx, reg)
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "409" {
		t.Fatalf("second POST: err = %v, want 409 in the CSP error shape", err)
	}
	reg.WebhookURL = "http://127.0.0.1:2/hook"
	if _, err := c.UpdateRegistration(ctx, reg); err != nil {
		t.Fatal(err)
	}
	got, found, err := c.GetRegistration(ctx)
	if err != nil || !found || got.WebhookURL != reg.WebhookURL {
		t.Fatalf("after PUT: %+v found=%v err=%v", got, found, err)
	}
}
