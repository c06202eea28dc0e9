// Package config is ingress's typed configuration: the settings every
// cosell service has (libs/config.Common) plus the webhook's, all from the
// environment, with defaults declared on the fields.
package config

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	libconfig "github.com/cosell/cosell/libs/config"
)

// Config is the effective configuration of one ingress process.
type Config struct {
	libconfig.Common

	// MaxBodyBytes bounds a delivery's body; larger ones get 413.
	MaxBodyBytes int64 `env:"WEBHOOK_MAX_BODY_BYTES, default=65536"`
	// CertHosts is the allow-list of certificate URL hosts ("host" for the
	// scheme's default port, "host:port" otherwise). The default is the
	// only host Microsoft documents.
	CertHosts []string `env:"WEBHOOK_CERT_HOSTS, default=3psostorageacct.blob.core.windows.net"`
	// CertAllowHTTP permits http:// certificate URLs (the local emulator).
	CertAllowHTTP bool `env:"WEBHOOK_CERT_ALLOW_HTTP, default=false"`
	// TrustedCAFile is a PEM file of trust anchors; empty means the system
	// roots.
	TrustedCAFile string `env:"WEBHOOK_TRUSTED_CA_FILE"`
	// RequiredOrg is the O= the certificate's subject and issuer must carry.
	RequiredOrg string `env:"WEBHOOK_REQUIRED_ORG, default=Microsoft Corporation"`
	// PublishTimeout bounds the wait for JetStream's ack; past it the
	// answer is 503 and Partner Center retries.
	PublishTimeout time.Duration `env:"WEBHOOK_PUBLISH_TIMEOUT, default=2s"`
	// CertFetchTimeout bounds a certificate download.
	CertFetchTimeout time.Duration `env:"WEBHOOK_CERT_FETCH_TIMEOUT, default=5s"`
}

// Load reads the configuration from env, or from the process environment
// when env is nil, and reports every invalid setting at once.
func Load(ctx context.Context, env map[string]string) (Config, error) {
	var c Config
	var err error
	if env == nil {
		err = libconfig.Load(ctx, &c)
	} else {
		err = libconfig.LoadFrom(ctx, &c, env)
	}
	if err != nil {
		return Config{}, err
	}
	var hosts []string
	for _, h := range c.CertHosts {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	c.CertHosts = hosts
	c.RequiredOrg = strings.TrimSpace(c.RequiredOrg)

	var errs []error
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("WEBHOOK_MAX_BODY_BYTES must be positive"))
	}
	if len(c.CertHosts) == 0 {
		errs = append(errs, errors.New("WEBHOOK_CERT_HOSTS must list at least one host"))
	}
	if c.RequiredOrg == "" {
		errs = append(errs, errors.New("WEBHOOK_REQUIRED_ORG must not be empty"))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("WEBHOOK_PUBLISH_TIMEOUT must be positive"))
	}
	if c.CertFetchTimeout <= 0 {
		errs = append(errs, errors.New("WEBHOOK_CERT_FETCH_TIMEOUT must be positive"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	return c, nil
}
