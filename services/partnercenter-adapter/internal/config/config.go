// Package config is the partnercenter-adapter's typed configuration: the
// settings every cosell service has (libs/config.Common) plus Partner
// Center's, all from the environment, with defaults declared on the fields.
package config

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	libconfig "github.com/cosell/cosell/libs/config"
)

// Authentication modes (PC_AUTH_MODE).
const (
	// AuthSAM is the Secure Application Model: an operator consents once
	// with the device-code flow (`partnercenter-adapter login`) and the
	// adapter keeps the rotating refresh token, encrypted, in Postgres.
	AuthSAM = "sam"
	// AuthPassword uses the resource-owner password grant; only for test
	// tenants, since MFA-protected accounts cannot use it.
	AuthPassword = "password"
)

// Operating modes (PC_MODE).
const (
	// ModeWebhook consumes notifications and runs the sweep; it also
	// registers the webhook when PC_WEBHOOK_REGISTER is set.
	ModeWebhook = "webhook"
	// ModePollOnly runs only the sweep and never touches the webhook
	// registration, so a staging install can run beside production without
	// stealing its notifications.
	ModePollOnly = "poll-only"
)

// Config is the effective configuration of one partnercenter-adapter
// process.
type Config struct {
	libconfig.Common

	// APIBaseURL is the Referrals API host; requests go to
	// {APIBaseURL}/v1.0/engagements/referrals.
	APIBaseURL string `env:"PC_API_BASE_URL, default=https://api.partner.microsoft.com"`
	// WebhookAPIBaseURL is the webhook registration API host.
	WebhookAPIBaseURL string `env:"PC_WEBHOOK_API_BASE_URL, default=https://api.partnercenter.microsoft.com"`
	// LoginBaseURL is the Entra ID host; the token URL is
	// {LoginBaseURL}/{tenant}/oauth2/token.
	LoginBaseURL string `env:"PC_LOGIN_BASE_URL, default=https://login.microsoftonline.com"`
	// TokenURL overrides the whole token URL when set.
	TokenURL string `env:"PC_TOKEN_URL"`
	// TenantID is the partner's Entra tenant.
	TenantID string `env:"PC_TENANT_ID"`
	// ClientID is the application registered for the adapter.
	ClientID string `env:"PC_CLIENT_ID"`
	// ClientSecret is that application's secret.
	ClientSecret libconfig.Secret `env:"PC_CLIENT_SECRET"`
	// AuthMode is sam or password.
	AuthMode string `env:"PC_AUTH_MODE, default=sam"`
	// Username is the Referrals admin user (password mode only).
	Username string `env:"PC_USERNAME"`
	// Password is that user's password (password mode only).
	Password libconfig.Secret `env:"PC_PASSWORD"`
	// TokenKey is the base64 of the 32-byte AES-256 key that seals the
	// refresh token in Postgres (required in sam mode).
	TokenKey libconfig.Secret `env:"PC_TOKEN_KEY"`
	// Mode is webhook or poll-only.
	Mode string `env:"PC_MODE, default=webhook"`
	// SweepInterval is the pause between reconciliation sweeps.
	SweepInterval time.Duration `env:"PC_SWEEP_INTERVAL, default=5m"`
	// SweepOverlap is how far below the watermark a sweep pages, so
	// referrals updated at the boundary (or with a skewed clock) are not
	// missed.
	SweepOverlap time.Duration `env:"PC_SWEEP_OVERLAP, default=2m"`
	// WebhookRegister makes the adapter ensure the webhook registration at
	// start (webhook mode only).
	WebhookRegister bool `env:"PC_WEBHOOK_REGISTER, default=false"`
	// WebhookURL is the public URL of ingress's webhook endpoint.
	WebhookURL string `env:"PC_WEBHOOK_URL"`
	// WebhookOverwrite allows replacing a registration that points
	// elsewhere (Partner Center allows one per tenant).
	WebhookOverwrite bool `env:"PC_WEBHOOK_OVERWRITE, default=false"`
	// MaxConcurrency bounds Partner Center calls in flight across the
	// process.
	MaxConcurrency int `env:"PC_MAX_CONCURRENCY, default=16"`
	// HTTPTimeout bounds one HTTP attempt.
	HTTPTimeout time.Duration `env:"PC_HTTP_TIMEOUT, default=15s"`
	// CommandConcurrency bounds the create and patch commands in flight
	// in this process (each create holds one Postgres connection for its
	// per-opportunity lock, so the pool grows by as much). A burst of
	// opt-ins is bounded by it: each create waits on two Partner Center
	// calls, so 16 (as many as PC_MAX_CONCURRENCY) keeps the client busy
	// where 8 left it half idle (docs/performance.md).
	CommandConcurrency int `env:"PC_COMMAND_CONCURRENCY, default=16"`
	// DeadLetterRetention is how long dead letters are kept after an
	// operator replayed them, and missing-referral records after they were
	// seen (0: forever). Pending dead letters are kept until replayed.
	DeadLetterRetention time.Duration `env:"PC_DEAD_LETTER_RETENTION, default=720h"`
}

// DefaultHTTPAddr is the adapter's listen address unless HTTP_ADDR is set.
const DefaultHTTPAddr = ":8090"

// Load reads the configuration from env, or from the process environment
// when env is nil, and reports every invalid setting at once.
func Load(ctx context.Context, env map[string]string) (Config, error) {
	var c Config
	c.HTTPAddr = DefaultHTTPAddr
	var err error
	if env == nil {
		err = libconfig.Load(ctx, &c)
	} else {
		err = libconfig.LoadFrom(ctx, &c, env)
	}
	if err != nil {
		return Config{}, err
	}
	c.AuthMode = strings.ToLower(strings.TrimSpace(c.AuthMode))
	c.Mode = strings.ToLower(strings.TrimSpace(c.Mode))
	for _, p := range []*string{&c.APIBaseURL, &c.WebhookAPIBaseURL, &c.LoginBaseURL, &c.TokenURL} {
		*p = strings.TrimRight(strings.TrimSpace(*p), "/")
	}

	var errs []error
	for name, v := range map[string]string{
		"PC_API_BASE_URL": c.APIBaseURL, "PC_WEBHOOK_API_BASE_URL": c.WebhookAPIBaseURL, "PC_LOGIN_BASE_URL": c.LoginBaseURL,
	} {
		if err := checkURL(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if c.TokenURL != "" {
		if err := checkURL(c.TokenURL); err != nil {
			errs = append(errs, fmt.Errorf("PC_TOKEN_URL: %w", err))
		}
	}
	if c.TenantID == "" && c.TokenURL == "" {
		errs = append(errs, errors.New("PC_TENANT_ID is required (or PC_TOKEN_URL)"))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("PC_CLIENT_ID is required"))
	}
	switch c.AuthMode {
	case AuthSAM:
		if _, err := c.TokenKeyBytes(); err != nil {
			errs = append(errs, err)
		}
	case AuthPassword:
		if c.Username == "" || c.Password == "" {
			errs = append(errs, errors.New("PC_USERNAME and PC_PASSWORD are required when PC_AUTH_MODE=password"))
		}
		if c.ClientSecret == "" {
			errs = append(errs, errors.New("PC_CLIENT_SECRET is required when PC_AUTH_MODE=password"))
		}
	default:
		errs = append(errs, fmt.Errorf("PC_AUTH_MODE %q: want %s or %s", c.AuthMode, AuthSAM, AuthPassword))
	}
	switch c.Mode {
	case ModeWebhook:
		if c.WebhookRegister {
			if err := checkURL(c.WebhookURL); err != nil {
				errs = append(errs, fmt.Errorf("PC_WEBHOOK_URL (required when PC_WEBHOOK_REGISTER=true): %w", err))
			}
		}
	case ModePollOnly:
	default:
		errs = append(errs, fmt.Errorf("PC_MODE %q: want %s or %s", c.Mode, ModeWebhook, ModePollOnly))
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, errors.New("PC_SWEEP_INTERVAL must be positive"))
	}
	if c.SweepOverlap < 0 {
		errs = append(errs, errors.New("PC_SWEEP_OVERLAP must not be negative"))
	}
	if c.MaxConcurrency <= 0 {
		errs = append(errs, errors.New("PC_MAX_CONCURRENCY must be positive"))
	}
	if c.CommandConcurrency <= 0 {
		errs = append(errs, errors.New("PC_COMMAND_CONCURRENCY must be positive"))
	}
	if c.HTTPTimeout <= 0 {
		errs = append(errs, errors.New("PC_HTTP_TIMEOUT must be positive"))
	}
	if c.DeadLetterRetention < 0 {
		errs = append(errs, errors.New("PC_DEAD_LETTER_RETENTION must not be negative (0 keeps rows forever)"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	return c, nil
}

// TokenKeyBytes decodes PC_TOKEN_KEY into the 32-byte AES-256 key.
func (c Config) TokenKeyBytes() ([]byte, error) {
	if c.TokenKey == "" {
		return nil, errors.New("PC_TOKEN_KEY is required when PC_AUTH_MODE=sam (base64 of 32 random bytes)")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.TokenKey.Reveal()))
	if err != nil {
		return nil, errors.New("PC_TOKEN_KEY is not valid base64")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("PC_TOKEN_KEY decodes to %d bytes, want 32", len(key))
	}
	return key, nil
}

// TokenEndpoint returns the token URL: PC_TOKEN_URL, or
// {PC_LOGIN_BASE_URL}/{PC_TENANT_ID}/oauth2/token.
func (c Config) TokenEndpoint() string {
	if c.TokenURL != "" {
		return c.TokenURL
	}
	return c.LoginBaseURL + "/" + url.PathEscape(c.TenantID) + "/oauth2/token"
}

// DeviceCodeEndpoint returns {PC_LOGIN_BASE_URL}/{PC_TENANT_ID}/oauth2/devicecode.
func (c Config) DeviceCodeEndpoint() string {
	tenant := c.TenantID
	if tenant == "" {
		tenant = "organizations"
	}
	return c.LoginBaseURL + "/" + url.PathEscape(tenant) + "/oauth2/devicecode"
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}
