package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// Config is the service's configuration, from the environment.
type Config struct {
	config.Common

	// LoginURL is where the token endpoint is: the login host or the
	// org's My Domain.
	LoginURL string `env:"SF_LOGIN_URL, default=https://login.salesforce.com"`
	// Audience is the JWT aud: https://login.salesforce.com (production)
	// or https://test.salesforce.com (sandbox).
	Audience string `env:"SF_AUDIENCE, default=https://login.salesforce.com"`
	// AuthMode is jwt or client_credentials.
	AuthMode string `env:"SF_AUTH_MODE, default=jwt"`
	// ClientID is the connected app's consumer key.
	ClientID string `env:"SF_CLIENT_ID"`
	// ClientSecret is the consumer secret (client_credentials).
	ClientSecret config.Secret `env:"SF_CLIENT_SECRET"`
	// Username is the integration user (jwt).
	Username string `env:"SF_USERNAME"`
	// JWTKeyFile is the PEM RSA private key (PKCS#1 or PKCS#8) that signs
	// JWT assertions.
	JWTKeyFile string `env:"SF_JWT_KEY_FILE"`
	// APIVersion is the REST API version.
	APIVersion string `env:"SF_API_VERSION, default=v62.0"`
	// BatchSize is the most records per collections call (≤ 200).
	BatchSize int `env:"SF_BATCH_SIZE, default=200"`
	// BatchWait is how long a command waits for others to share its call.
	BatchWait time.Duration `env:"SF_BATCH_WAIT, default=5ms"`
	// BudgetPercent is the share of the daily API allocation the adapter
	// may use.
	BudgetPercent int `env:"SF_API_BUDGET_PERCENT, default=80"`
	// BudgetProbeInterval is how often one call is let through while the
	// budget is exhausted, to see whether the rolling window freed some.
	BudgetProbeInterval time.Duration `env:"SF_API_BUDGET_PROBE_INTERVAL, default=5m"`
	// MaxConcurrency bounds concurrent Salesforce calls.
	MaxConcurrency int `env:"SF_MAX_CONCURRENCY, default=4"`
	// HTTPTimeout bounds one HTTP exchange with Salesforce.
	HTTPTimeout time.Duration `env:"SF_HTTP_TIMEOUT, default=30s"`
	// ConsumerConcurrency is how many commands a replica holds at once
	// while they wait for their batch; at least twice SF_BATCH_SIZE lets
	// one batch fill while another is written.
	ConsumerConcurrency int `env:"CONSUMER_CONCURRENCY, default=400"`
	// PollEnabled runs the opportunity poller (on one replica, under a
	// lease); off, the adapter only writes.
	PollEnabled bool `env:"SF_POLL_ENABLED, default=true"`
	// PollInterval is the time between the starts of two polls.
	PollInterval time.Duration `env:"SF_POLL_INTERVAL, default=15s"`
	// PollOverlap is how far below the watermark a poll asks, for records
	// whose SystemModstamp was taken before, but committed after, the
	// newest one seen.
	PollOverlap time.Duration `env:"SF_POLL_OVERLAP, default=2m"`
	// PollQuickOverlap is how far below the watermark the quick polls
	// between full ones ask (at most PollOverlap), and the least time
	// between two quick polls; polls in between ask from the watermark.
	PollQuickOverlap time.Duration `env:"SF_POLL_QUICK_OVERLAP, default=5s"`
	// PollOverlapEvery is the time between full polls (asking from the
	// watermark minus PollOverlap) while a late commit is still possible.
	PollOverlapEvery time.Duration `env:"SF_POLL_OVERLAP_EVERY, default=30s"`
	// DeadLetterRetention is how long dead letters are kept after an
	// operator replayed them (0: forever); pending ones are kept until
	// replayed.
	DeadLetterRetention time.Duration `env:"SF_DEAD_LETTER_RETENTION, default=720h"`
	// AccountCacheRetention is how long a cached customer account is kept
	// after it was last resolved (0: forever).
	AccountCacheRetention time.Duration `env:"SF_ACCOUNT_CACHE_RETENTION, default=9600h"`
}

// loadConfig reads and checks the configuration.
func loadConfig(ctx context.Context) (Config, error) {
	cfg := Config{}
	cfg.HTTPAddr = ":8091"
	if err := config.Load(ctx, &cfg); err != nil {
		return Config{}, err
	}
	switch {
	case cfg.AuthMode != sfclient.AuthJWT && cfg.AuthMode != sfclient.AuthClientCredentials:
		return Config{}, fmt.Errorf("SF_AUTH_MODE %q: want %s or %s", cfg.AuthMode, sfclient.AuthJWT, sfclient.AuthClientCredentials)
	case cfg.BatchSize < 1 || cfg.BatchSize > sfclient.MaxCollection:
		return Config{}, fmt.Errorf("SF_BATCH_SIZE %d: want 1..%d", cfg.BatchSize, sfclient.MaxCollection)
	case cfg.BudgetPercent < 1 || cfg.BudgetPercent > 100:
		return Config{}, fmt.Errorf("SF_API_BUDGET_PERCENT %d: want 1..100", cfg.BudgetPercent)
	case cfg.MaxConcurrency < 1:
		return Config{}, fmt.Errorf("SF_MAX_CONCURRENCY %d: want at least 1", cfg.MaxConcurrency)
	case cfg.ConsumerConcurrency < cfg.BatchSize:
		return Config{}, fmt.Errorf("CONSUMER_CONCURRENCY %d is below SF_BATCH_SIZE %d: batches could never fill", cfg.ConsumerConcurrency, cfg.BatchSize)
	case cfg.BatchWait < 0 || cfg.HTTPTimeout <= 0:
		return Config{}, fmt.Errorf("SF_BATCH_WAIT must not be negative and SF_HTTP_TIMEOUT must be positive")
	case cfg.DeadLetterRetention < 0 || cfg.AccountCacheRetention < 0:
		return Config{}, fmt.Errorf("SF_DEAD_LETTER_RETENTION and SF_ACCOUNT_CACHE_RETENTION must not be negative (0 keeps rows forever)")
	case cfg.PollInterval <= 0 || cfg.PollOverlap < 0:
		return Config{}, fmt.Errorf("SF_POLL_INTERVAL must be positive and SF_POLL_OVERLAP not negative")
	case cfg.PollQuickOverlap <= 0 || cfg.PollOverlapEvery <= 0:
		return Config{}, fmt.Errorf("SF_POLL_QUICK_OVERLAP and SF_POLL_OVERLAP_EVERY must be positive")
	}
	return cfg, nil
}

// credentials builds the Salesforce credentials, reading the JWT key file
// in jwt mode.
func (c Config) credentials() (sfclient.Credentials, error) {
	creds := sfclient.Credentials{
		Mode:         c.AuthMode,
		LoginURL:     c.LoginURL,
		Audience:     c.Audience,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret.Reveal(),
		Username:     c.Username,
	}
	if c.AuthMode == sfclient.AuthJWT {
		if c.JWTKeyFile == "" {
			return sfclient.Credentials{}, fmt.Errorf("SF_JWT_KEY_FILE is required with SF_AUTH_MODE=jwt")
		}
		pemBytes, err := os.ReadFile(c.JWTKeyFile)
		if err != nil {
			return sfclient.Credentials{}, fmt.Errorf("SF_JWT_KEY_FILE: %w", err)
		}
		key, err := sfclient.ParsePrivateKey(pemBytes)
		if err != nil {
			return sfclient.Credentials{}, fmt.Errorf("SF_JWT_KEY_FILE %s: %w", c.JWTKeyFile, err)
		}
		creds.Key = key
	}
	return creds, nil
}
