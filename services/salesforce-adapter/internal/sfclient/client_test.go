package sfclient_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// emulatorBin is built once by TestMain; tests only read it.
var emulatorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sfclient-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emulatorBin, err = sfemutest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newClient returns a client on emu with fast retries.
func newClient(t *testing.T, emu *sfemutest.Emulator, mode string, tweak func(*sfclient.Config)) *sfclient.Client {
	t.Helper()
	cfg := sfclient.Config{
		Credentials: sfclient.Credentials{
			Mode:         mode,
			LoginURL:     emu.URL,
			Audience:     sfemutest.Audience,
			ClientID:     sfemutest.ClientID,
			ClientSecret: sfemutest.ClientSecret,
			Username:     sfemutest.Username,
			Key:          emu.Key,
		},
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		Retry:      sfclient.Retry{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := sfclient.New(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func opp(referral, name string) sfclient.Record {
	return sfclient.Record{
		"Referral_Identifier__c": referral,
		"Name":                   name,
		"StageName":              "Prospecting",
		"CloseDate":              "2030-06-30",
	}
}

func TestUpsertCollectionCreatesThenUpdates(t *testing.T) {
	for _, mode := range []string{sfclient.AuthJWT, sfclient.AuthClientCredentials} {
		t.Run(mode, func(t *testing.T) {
			emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
			c := newClient(t, emu, mode, nil)
			ctx := context.Background()

			res, err := c.UpsertCollection(ctx, "Opportunity", "Referral_Identifier__c",
				[]sfclient.Record{opp("ref-1", "First"), opp("ref-2", "Second")})
			if err != nil {
				t.Fatalf("upsert: %v", err)
			}
			for i, r := range res {
				if !r.Success || !r.Created || r.ID == "" {
					t.Fatalf("result %d = %+v, want created", i, r)
				}
			}
			again, err := c.UpsertCollection(ctx, "Opportunity", "Referral_Identifier__c",
				[]sfclient.Record{opp("ref-1", "First renamed")})
			if err != nil {
				t.Fatalf("second upsert: %v", err)
			}
			if !again[0].Success || again[0].Created || again[0].ID != res[0].ID {
				t.Fatalf("second upsert = %+v, want update of %s", again[0], res[0].ID)
			}
			recs := emu.Records("Opportunity")
			if len(recs) != 2 {
				t.Fatalf("%d opportunities, want 2", len(recs))
			}
			found := false
			for _, r := range recs {
				if r["Id"] == res[0].ID && r["Name"] == "First renamed" {
					found = true
				}
			}
			if !found {
				t.Fatalf("update not applied: %v", recs)
			}
			cnt := emu.Counters()
			if cnt.Calls["token"] != 1 || cnt.Calls["composite.sobjects"] != 2 {
				t.Fatalf("calls = %v, want 1 token and 2 collection calls", cnt.Calls)
			}
			if u := c.Usage(); !u.Known || u.Used != cnt.APIUsage.Used || u.Limit != cnt.APIUsage.Max {
				t.Fatalf("usage = %+v, emulator says %+v", u, cnt.APIUsage)
			}
		})
	}
}

func TestSandboxAudienceAndPKCS8Key(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	der, err := x509.MarshalPKCS8PrivateKey(emu.Key)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sfclient.ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatalf("parse PKCS#8: %v", err)
	}
	c := newClient(t, emu, sfclient.AuthJWT, func(cfg *sfclient.Config) {
		cfg.Credentials.Audience = "https://test.salesforce.com"
		cfg.Credentials.Key = key
	})
	if _, err := c.Query(context.Background(), "SELECT Id FROM Account LIMIT 1"); err != nil {
		t.Fatalf("query: %v", err)
	}
}

func TestBadCredentialsAreAnAuthError(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthClientCredentials, func(cfg *sfclient.Config) {
		cfg.Credentials.ClientSecret = "wrong"
	})
	_, err := c.Query(context.Background(), "SELECT Id FROM Account")
	var ae *sfclient.AuthError
	if !errors.As(err, &ae) || ae.Code != "invalid_client" {
		t.Fatalf("err = %v, want an invalid_client AuthError", err)
	}
	if n := emu.Counters().Calls["token"]; n != 1 {
		t.Fatalf("%d token calls, want 1 (credential errors are not retried)", n)
	}
}

func TestReauthenticatesOnceAfterRevocation(t *testing.T) {
	for _, mode := range []string{sfclient.AuthJWT, sfclient.AuthClientCredentials} {
		t.Run(mode, func(t *testing.T) {
			emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
			c := newClient(t, emu, mode, nil)
			ctx := context.Background()
			if _, err := c.Query(ctx, "SELECT Id FROM Account"); err != nil {
				t.Fatalf("first query: %v", err)
			}
			emu.RevokeTokens()
			if _, err := c.Query(ctx, "SELECT Id FROM Account"); err != nil {
				t.Fatalf("query after revocation: %v", err)
			}
			cnt := emu.Counters()
			if cnt.Calls["token"] != 2 || cnt.Calls["query"] != 3 {
				t.Fatalf("calls = %v, want 2 token calls and 3 queries (one refused)", cnt.Calls)
			}
		})
	}
}

func TestRevokedAgainAfterReauthIsAnError(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	emu.AddFault(sfemutest.Fault{Endpoint: "query", Kind: "revoke-token", Count: 2})
	_, err := c.Query(context.Background(), "SELECT Id FROM Account")
	var ae *sfclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code() != sfclient.CodeInvalidSession {
		t.Fatalf("err = %v, want 401 INVALID_SESSION_ID", err)
	}
	if n := emu.Counters().Calls["token"]; n != 2 {
		t.Fatalf("%d token calls, want 2 (exactly one re-authentication)", n)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	emu.AddFault(sfemutest.Fault{Endpoint: "composite.sobjects", Kind: "503", Count: 1})
	emu.AddFault(sfemutest.Fault{Endpoint: "composite.sobjects", Kind: "500", Count: 1})
	res, err := c.UpsertCollection(context.Background(), "Opportunity", "Referral_Identifier__c", []sfclient.Record{opp("ref-x", "X")})
	if err != nil || !res[0].Success {
		t.Fatalf("upsert = %+v, %v; want success after retries", res, err)
	}
	if n := emu.Counters().Calls["composite.sobjects"]; n != 3 {
		t.Fatalf("%d collection calls, want 3", n)
	}
}

func TestServerErrorsGiveUpAfterAttempts(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	emu.AddFault(sfemutest.Fault{Endpoint: "query", Kind: "503", Rate: 1})
	_, err := c.Query(context.Background(), "SELECT Id FROM Account")
	var ae *sfclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !ae.Temporary() {
		t.Fatalf("err = %v, want a temporary 503", err)
	}
	if n := emu.Counters().Calls["query"]; n != 4 {
		t.Fatalf("%d queries, want 4 attempts", n)
	}
}

func TestValidationErrorIsAnItemResult(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	bad := opp("ref-bad", "Bad")
	delete(bad, "CloseDate")
	res, err := c.UpsertCollection(context.Background(), "Opportunity", "Referral_Identifier__c",
		[]sfclient.Record{opp("ref-good", "Good"), bad})
	if err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if !res[0].Success {
		t.Fatalf("good record failed: %+v", res[0])
	}
	if res[1].Success || len(res[1].Errors) == 0 || res[1].Errors[0].Code != "REQUIRED_FIELD_MISSING" ||
		res[1].Errors[0].Message == "" || len(res[1].Errors[0].Fields) == 0 {
		t.Fatalf("bad record = %+v, want REQUIRED_FIELD_MISSING with message and fields", res[1])
	}
	if n := emu.Counters().Calls["composite.sobjects"]; n != 1 {
		t.Fatalf("%d collection calls, want 1 (validation errors are not retried)", n)
	}
}

func TestQueryEscapesValues(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	ctx := context.Background()
	tricky := `O'Brien \ Sons' OR Name != '`
	if _, err := c.CreateCollection(ctx, "Account", []sfclient.Record{{"Name": tricky}, {"Name": "Other"}}); err != nil {
		t.Fatalf("create accounts: %v", err)
	}
	res, err := c.Query(ctx, "SELECT Id, Name FROM Account WHERE Name = "+sfclient.QuoteSOQL(tricky))
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if res.TotalSize != 1 {
		t.Fatalf("%d accounts matched, want exactly the one named %q", res.TotalSize, tricky)
	}
	var rec struct{ Name string }
	if err := json.Unmarshal(res.Records[0], &rec); err != nil || rec.Name != tricky {
		t.Fatalf("record = %s (%v)", res.Records[0], err)
	}
}

func TestBudgetIsNeverExceeded(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{APILimit: 20})
	c := newClient(t, emu, sfclient.AuthJWT, func(cfg *sfclient.Config) {
		cfg.BudgetPercent = 50
		cfg.MaxConcurrency = 4
	})
	ctx := context.Background()
	ok, refused := 0, 0
	for range 30 {
		_, err := c.Query(ctx, "SELECT Id FROM Account")
		switch {
		case err == nil:
			ok++
		case errors.Is(err, sfclient.ErrBudgetExhausted):
			refused++
		default:
			t.Fatalf("query: %v", err)
		}
	}
	cnt := emu.Counters()
	if cnt.APIUsage.Used != 10 || ok != 10 || refused != 20 {
		t.Fatalf("used %d of %d, %d ok, %d refused; want exactly 10 used (50%% of 20)", cnt.APIUsage.Used, cnt.APIUsage.Max, ok, refused)
	}
	if u := c.Usage(); !u.Exhausted || u.Budget != 10 {
		t.Fatalf("usage = %+v, want exhausted at budget 10", u)
	}
}

func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{APILimit: 40})
	c := newClient(t, emu, sfclient.AuthJWT, func(cfg *sfclient.Config) {
		cfg.BudgetPercent = 50
		cfg.MaxConcurrency = 8
	})
	ctx := context.Background()
	errs := make(chan error, 64)
	for range 64 {
		go func() {
			_, err := c.Query(ctx, "SELECT Id FROM Account")
			errs <- err
		}()
	}
	for range 64 {
		if err := <-errs; err != nil && !errors.Is(err, sfclient.ErrBudgetExhausted) {
			t.Fatalf("query: %v", err)
		}
	}
	if used := emu.Counters().APIUsage.Used; used > 20 {
		t.Fatalf("used %d calls, budget is 20", used)
	}
}

func TestBudgetProbesAfterInterval(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{APILimit: 10})
	now := time.Now()
	clock := func() time.Time { return now }
	c := newClient(t, emu, sfclient.AuthJWT, func(cfg *sfclient.Config) {
		cfg.BudgetPercent = 50
		cfg.ProbeInterval = time.Minute
		cfg.Now = clock
	})
	ctx := context.Background()
	emu.SetUsage(5, 10)
	// Usage is unknown, so the first call goes out and learns it.
	if _, err := c.Query(ctx, "SELECT Id FROM Account"); err != nil {
		t.Fatalf("first query: %v", err)
	}
	if _, err := c.Query(ctx, "SELECT Id FROM Account"); !errors.Is(err, sfclient.ErrBudgetExhausted) {
		t.Fatalf("err = %v, want budget exhausted", err)
	}
	// The rolling window freed calls; after the probe interval one call
	// goes through and shows it.
	emu.SetUsage(0, 10)
	now = now.Add(time.Minute)
	if _, err := c.Query(ctx, "SELECT Id FROM Account"); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := c.Query(ctx, "SELECT Id FROM Account"); err != nil {
		t.Fatalf("query after probe: %v", err)
	}
	if u := c.Usage(); u.Exhausted || u.Used != 2 {
		t.Fatalf("usage = %+v, want 2 used and not exhausted", u)
	}
}

func TestOrgLimitExceeded(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{APILimit: 10})
	c := newClient(t, emu, sfclient.AuthJWT, func(cfg *sfclient.Config) { cfg.BudgetPercent = 100 })
	emu.SetUsage(10, 10)
	_, err := c.Query(context.Background(), "SELECT Id FROM Account")
	if !errors.Is(err, sfclient.ErrLimitExceeded) {
		t.Fatalf("err = %v, want ErrLimitExceeded", err)
	}
	if n := emu.Counters().Calls["query"]; n != 1 {
		t.Fatalf("%d queries, want 1 (the org limit is not retried)", n)
	}
}
