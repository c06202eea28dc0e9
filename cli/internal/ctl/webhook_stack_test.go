package ctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/cli/internal/ctl"
	"github.com/cosell/cosell/e2e/stack"
)

// TestWebhookAgainstStack runs webhook show, test --wait and register
// against a running system, whose partnercenter-adapter registered the
// webhook at start (PC_WEBHOOK_REGISTER=true in e2e/stack).
func TestWebhookAgainstStack(t *testing.T) {
	sys := startSystem(t)

	t.Run("ShowRegistered", func(t *testing.T) {
		out := sys.mustRun(t, "webhook", "show")
		t.Logf("cosellctl webhook show:\n%s", out)
		if !containsLine(out, "Verdict:", "REGISTERED") || !containsLine(out, "Registered URL:", sys.WebhookURL) || !containsLine(out, "Mode:", "webhook") {
			t.Errorf("webhook show:\n%s", out)
		}
		var v ctl.WebhookView
		sys.mustJSON(t, &v, "webhook", "show")
		if v.Verdict != "registered" || v.Current == nil || v.Current.WebhookURL != sys.WebhookURL || !v.URLMatches ||
			len(v.MissingEvents) != 0 || v.Mode != "webhook" || !v.WebhooksEnabled || !v.RegistersAtStart {
			t.Errorf("webhook show --json = %+v", v)
		}
	})

	// Partner Center allows two test events a minute: exactly two here.
	t.Run("TestWaitConfirmsDelivery", func(t *testing.T) {
		var res ctl.WebhookTestResult
		sys.mustJSON(t, &res, "webhook", "test", "--wait", "30s")
		if res.CorrelationID == "" || res.WebhookURL != sys.WebhookURL || !res.AddedTestEvent || res.Delivery == nil {
			t.Fatalf("webhook test --wait --json = %+v", res)
		}
		d := res.Delivery
		if !strings.HasSuffix(d.ResourceURI, "/"+res.CorrelationID) || d.Deliveries < 1 || d.ReceivedAt.Before(res.RequestedAt.Add(-time.Second)) ||
			d.DeliveredInMs > 30_000 {
			t.Errorf("delivery = %+v (requested at %s)", d, res.RequestedAt)
		}
		if res.Status != "completed" && res.Status != "pending" {
			t.Errorf("Partner Center's status after delivery = %q %+v", res.Status, res.Results)
		}
		// The row is ingress's own record of the verified event.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := sys.db.Int(ctx, `SELECT count(*) FROM ingress.test_events WHERE resource_uri = $1`, d.ResourceURI)
		if err != nil || n < 1 {
			t.Errorf("ingress.test_events rows for %s: %d, %v", d.ResourceURI, n, err)
		}

		out := sys.mustRun(t, "webhook", "test", "--wait", "30s")
		t.Logf("cosellctl webhook test --wait 30s:\n%s", out)
		if !containsLine(out, "Correlation id:") || !containsLine(out, "Delivered:", "yes, in") || strings.Contains(out, "added test-created") {
			t.Errorf("webhook test --wait:\n%s", out)
		}
	})

	t.Run("RegisterIsIdempotent", func(t *testing.T) {
		var res ctl.WebhookRegisterResult
		sys.mustJSON(t, &res, "webhook", "register")
		if res.Outcome != "unchanged" || res.Changed || res.Webhook.Verdict != "registered" {
			t.Errorf("webhook register --json = %+v", res)
		}
		out := sys.mustRun(t, "webhook", "register")
		t.Logf("cosellctl webhook register:\n%s", out)
		if !strings.Contains(out, "Webhook registration unchanged: the registration already points at "+sys.WebhookURL) {
			t.Errorf("webhook register:\n%s", out)
		}
	})

	t.Run("RegisterRefusesARegistrationElsewhere", func(t *testing.T) {
		const prod = "https://cosell.contoso.example/webhooks/partnercenter"
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		putRegistration(t, ctx, sys.PCURL, prod)

		var v ctl.WebhookView
		sys.mustJSON(t, &v, "webhook", "show")
		if v.Verdict != "differs" || v.URLMatches || v.Current == nil || v.Current.WebhookURL != prod {
			t.Errorf("webhook show after another install registered = %+v", v)
		}
		code, out, errOut := sys.run(t, "webhook", "register")
		t.Logf("cosellctl webhook register (elsewhere): exit %d\n%s", code, errOut)
		if code != 1 || out != "" || !strings.Contains(errOut, "registrationElsewhere") || !strings.Contains(errOut, prod) ||
			!strings.Contains(errOut, "overwrite") {
			t.Errorf("webhook register without --overwrite: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if reg, err := sys.pc.Registration(ctx); err != nil || reg.WebhookURL != prod {
			t.Fatalf("the registration elsewhere was touched: %+v %v", reg, err)
		}

		var res ctl.WebhookRegisterResult
		sys.mustJSON(t, &res, "webhook", "register", "--overwrite")
		if res.Outcome != "overwritten" || !res.Changed || res.Webhook.Verdict != "registered" {
			t.Errorf("webhook register --overwrite = %+v", res)
		}
		if err := sys.pc.WaitRegistered(ctx, sys.WebhookURL); err != nil {
			t.Error(err)
		}
	})
}

// putRegistration points the tenant's webhook registration at target with
// Partner Center's own API, as another install would.
func putRegistration(t *testing.T, ctx context.Context, pcURL, target string) {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"}, "resource": {"https://api.partnercenter.microsoft.com"},
		"client_id": {stack.PCClientID}, "client_secret": {stack.PCClientSecret},
		"username": {stack.PCUsername}, "password": {stack.PCPassword},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pcURL+"/"+stack.PCTenantID+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	doJSON(t, req, &tok)
	body, err := json.Marshal(map[string]any{"WebhookUrl": target, "WebhookEvents": []string{"referral-created", "referral-updated",
		"related-referral-created", "related-referral-updated"}})
	if err != nil {
		t.Fatal(err)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, pcURL+"/webhooks/v1/registration", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	doJSON(t, req, nil)
}

func doJSON(t *testing.T, req *http.Request, out any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, res.StatusCode, b.String())
	}
	if out != nil {
		if err := json.Unmarshal(b.Bytes(), out); err != nil {
			t.Fatal(fmt.Errorf("%s %s: %w", req.Method, req.URL, err))
		}
	}
}
