package config_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	libconfig "github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/services/ingress/internal/config"
)

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(context.Background(), map[string]string{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.HTTPAddr != ":8080" || c.MaxBodyBytes != 65536 || c.CertAllowHTTP || c.TrustedCAFile != "" ||
		c.RequiredOrg != "Microsoft Corporation" || c.PublishTimeout != 2*time.Second || c.CertFetchTimeout != 5*time.Second ||
		c.LogLevel != slog.LevelInfo || !slices.Equal(c.CertHosts, []string{"3psostorageacct.blob.core.windows.net"}) {
		t.Errorf("defaults %+v", c)
	}
}

func TestLoadOverrides(t *testing.T) {
	c, err := config.Load(context.Background(), map[string]string{
		"HTTP_ADDR":               "127.0.0.1:9000",
		"LOG_LEVEL":               "debug",
		"WEBHOOK_MAX_BODY_BYTES":  "1024",
		"WEBHOOK_CERT_HOSTS":      " 127.0.0.1:8081 , ,example.org",
		"WEBHOOK_CERT_ALLOW_HTTP": "true",
		"WEBHOOK_TRUSTED_CA_FILE": "/tmp/ca.pem",
		"WEBHOOK_REQUIRED_ORG":    "Contoso",
		"WEBHOOK_PUBLISH_TIMEOUT": "500ms",
		"SHUTDOWN_TIMEOUT":        "3s",
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.HTTPAddr != "127.0.0.1:9000" || c.LogLevel != slog.LevelDebug || c.MaxBodyBytes != 1024 || !c.CertAllowHTTP ||
		c.TrustedCAFile != "/tmp/ca.pem" || c.RequiredOrg != "Contoso" || c.PublishTimeout != 500*time.Millisecond ||
		c.ShutdownTimeout != 3*time.Second || !slices.Equal(c.CertHosts, []string{"127.0.0.1:8081", "example.org"}) {
		t.Errorf("overrides %+v", c)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"not a number":      {"WEBHOOK_MAX_BODY_BYTES": "lots"},
		"zero body":         {"WEBHOOK_MAX_BODY_BYTES": "0"},
		"not a bool":        {"WEBHOOK_CERT_ALLOW_HTTP": "maybe"},
		"negative timeout":  {"WEBHOOK_PUBLISH_TIMEOUT": "-1s"},
		"no hosts":          {"WEBHOOK_CERT_HOSTS": " , "},
		"blank org":         {"WEBHOOK_REQUIRED_ORG": "  "},
		"not a duration":    {"WEBHOOK_CERT_FETCH_TIMEOUT": "soon"},
		"unknown log level": {"LOG_LEVEL": "chatty"},
	} {
		if _, err := config.Load(context.Background(), env); err == nil {
			t.Errorf("%s: Load accepted %v", name, env)
		}
	}
}

func TestEffectiveConfigHidesCredentials(t *testing.T) {
	c, err := config.Load(context.Background(), map[string]string{
		"DATABASE_URL": "postgres://app:s3cret@db:5432/cosell?sslmode=disable",
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var buf bytes.Buffer
	libconfig.LogEffective(slog.New(slog.NewJSONHandler(&buf, nil)), c)
	if strings.Contains(buf.String(), "s3cret") || !strings.Contains(buf.String(), "WEBHOOK_CERT_HOSTS") {
		t.Errorf("effective configuration %s", buf.String())
	}
}
