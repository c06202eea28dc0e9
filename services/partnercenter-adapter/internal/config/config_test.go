package config_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
)

func base() map[string]string {
	return map[string]string{
		"PC_TENANT_ID": "tenant",
		"PC_CLIENT_ID": "client",
		"PC_TOKEN_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32)),
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(context.Background(), base())
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8090" || c.AuthMode != config.AuthSAM || c.Mode != config.ModeWebhook ||
		c.SweepInterval != 5*time.Minute || c.SweepOverlap != 2*time.Minute || c.MaxConcurrency != 16 ||
		c.HTTPTimeout != 15*time.Second || c.WebhookRegister || c.WebhookOverwrite || c.CommandConcurrency != 16 {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.TokenEndpoint(); got != "https://login.microsoftonline.com/tenant/oauth2/token" {
		t.Errorf("token endpoint %s", got)
	}
	if c.APIBaseURL != "https://api.partner.microsoft.com" || c.WebhookAPIBaseURL != "https://api.partnercenter.microsoft.com" {
		t.Errorf("base URLs %s %s", c.APIBaseURL, c.WebhookAPIBaseURL)
	}
}

func TestTokenURLOverride(t *testing.T) {
	env := base()
	env["PC_TOKEN_URL"] = "https://login.example.com/x/token/"
	c, err := config.Load(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenEndpoint() != "https://login.example.com/x/token" {
		t.Errorf("token endpoint %s", c.TokenEndpoint())
	}
}

func TestInvalidSettingsAreReportedTogether(t *testing.T) {
	env := map[string]string{
		"PC_TOKEN_KEY":           "c2hvcnQ=",
		"PC_MODE":                "sometimes",
		"PC_WEBHOOK_REGISTER":    "true",
		"PC_MAX_CONCURRENCY":     "0",
		"PC_COMMAND_CONCURRENCY": "-1",
	}
	_, err := config.Load(context.Background(), env)
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"PC_TENANT_ID", "PC_CLIENT_ID", "PC_TOKEN_KEY decodes to 5 bytes", "PC_MODE", "PC_MAX_CONCURRENCY", "PC_COMMAND_CONCURRENCY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestPasswordModeNeedsCredentialsNotAKey(t *testing.T) {
	env := map[string]string{"PC_TENANT_ID": "t", "PC_CLIENT_ID": "c", "PC_AUTH_MODE": "password"}
	if _, err := config.Load(context.Background(), env); err == nil || !strings.Contains(err.Error(), "PC_USERNAME") {
		t.Fatalf("password mode without credentials: %v", err)
	}
	env["PC_USERNAME"], env["PC_PASSWORD"], env["PC_CLIENT_SECRET"] = "u", "p", "s"
	if _, err := config.Load(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookRegistrationNeedsAURLButPollOnlyDoesNot(t *testing.T) {
	env := base()
	env["PC_WEBHOOK_REGISTER"] = "true"
	if _, err := config.Load(context.Background(), env); err == nil || !strings.Contains(err.Error(), "PC_WEBHOOK_URL") {
		t.Fatalf("register without URL: %v", err)
	}
	env["PC_MODE"] = "poll-only"
	if _, err := config.Load(context.Background(), env); err != nil {
		t.Fatalf("poll-only ignores registration settings: %v", err)
	}
}
